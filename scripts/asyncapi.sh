#!/usr/bin/env bash
# Check the MQTT interface document (docs/asyncapi.yaml) with the AsyncAPI CLI, or render it.
#
#   scripts/asyncapi.sh          validate docs/asyncapi.yaml (and the JSON Schemas it references)
#   scripts/asyncapi.sh html     also render it as HTML into build/asyncapi-html/
#
# The CLI (and, for html, the HTML template) are installed from npm into .asyncapi/ on the
# first run, at the pinned versions below; later runs reuse them and need no network.
# Needs node >= 18 and npm. The 4.x CLI is the newest line that runs on node 20 (5.x and
# later need node 24).
set -euo pipefail
case "${1:-}" in
    "" | html) ;;
    *) echo "usage: scripts/asyncapi.sh [html]" >&2; exit 2 ;;
esac
cd "$(dirname "$0")/.."
ROOT=$PWD

CLI_VERSION=4.1.1
HTML_TEMPLATE_VERSION=2.3.14  # the last line for generator 1.x, the one the 4.x CLI runs
PREFIX=.asyncapi
DOC=docs/asyncapi.yaml
OUT=build/asyncapi-html

# no update check, no usage analytics (the CLI would send each command to a metrics
# service): CI runs offline after the first install
export NO_UPDATE_NOTIFIER=1
# the HTML template depends on puppeteer (for its PDF output only): no Chrome download
export PUPPETEER_SKIP_DOWNLOAD=1
export ASYNCAPI_METRICS_CONFIG_PATH="$ROOT/$PREFIX/analytics.json"
export NODE_NO_WARNINGS=1

install() {  # install PACKAGE@VERSION into $PREFIX unless that exact version is there
    local pkg=$1 version=$2 stamp="$PREFIX/.installed-${1//\//+}-$2"
    [ -f "$stamp" ] && return 0
    command -v npm >/dev/null 2>&1 || { echo "asyncapi: npm is needed (apt-get install npm)" >&2; exit 2; }
    echo "asyncapi: installing $pkg@$version into $PREFIX/ (first run only)" >&2
    rm -f "$PREFIX"/.installed-"${pkg//\//+}"-*
    npm install --prefix "$PREFIX" --no-audit --no-fund --loglevel=error \
        --save-exact "$pkg@$version" >&2
    touch "$stamp"
}

install @asyncapi/cli "$CLI_VERSION"
asyncapi() {  # the CLI keeps its settings under $HOME: keep them out of the user's home
    mkdir -p "$ROOT/$PREFIX/home"
    [ -f "$ASYNCAPI_METRICS_CONFIG_PATH" ] || printf '%s\n' \
        '{"analyticsEnabled": "false", "infoMessageShown": "true", "userID": "none"}' \
        >"$ASYNCAPI_METRICS_CONFIG_PATH"
    HOME="$ROOT/$PREFIX/home" "$ROOT/$PREFIX/node_modules/.bin/asyncapi" "$@"
}

asyncapi validate "$DOC" --fail-severity=warn

if [ "${1:-}" = "html" ]; then
    install @asyncapi/html-template "$HTML_TEMPLATE_VERSION"
    rm -rf "$OUT"
    mkdir -p "$OUT"
    # the generator resolves the schema files relative to the working directory, not to the
    # document: run it from docs/. An empty --registry-url skips the CLI's check that the
    # npm registry answers (the template is local), so this runs offline too.
    (cd "$(dirname "$DOC")" && asyncapi generate fromTemplate "$(basename "$DOC")" \
        "$ROOT/$PREFIX/node_modules/@asyncapi/html-template" \
        -o "$ROOT/$OUT" --force-write --param singleFile=true --registry-url=)
    echo "asyncapi: HTML in $OUT/index.html"
fi
