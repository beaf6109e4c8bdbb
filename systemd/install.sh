#!/usr/bin/env bash
# Install, upgrade or remove edge-agent as a hardened systemd service.
#
#   sudo systemd/install.sh                    # install or upgrade from this checkout
#   sudo systemd/install.sh dist/edge_agent-0.1.0-py3-none-any.whl
#   sudo systemd/install.sh --dry-run          # print what would be done
#   sudo systemd/install.sh --node pi-0042     # name this node (default: pi-<machine id>)
#   sudo systemd/install.sh --uninstall        # remove the program; asks about keys and data
#   sudo systemd/install.sh --uninstall --purge   # ... and crypto-shred keys and data
#   systemd/install.sh --prefix /tmp/root      # everything under /tmp/root (no users, no systemctl)
#
# Idempotent: running it again upgrades the program and the unit, never touches an
# existing /etc/edge-agent/site.yaml or edge-agent.env, and leaves /var/lib/edge-agent
# (keys, buffered readings, sequence numbers) alone. A first install writes the node's
# name to edge-agent.env as EDGE_NODE: --node NAME, else pi-<first 8 hex digits of
# /etc/machine-id>, else it asks (no shipped config has a default node name).
set -euo pipefail

PREFIX=""
DRY_RUN=0
UNINSTALL=0
PURGE=0
SOURCE=""
PYTHON="${PYTHON:-python3}"
PIP_ARGS=()
NODE=""
# gpiozero's pin backend for the Pi's GPIO chips (lgpio): without it no GPIO sensor starts
EXTRAS="[pi]"
USER_NAME="edge-agent"
GROUPS_NEEDED=(i2c gpio dialout)
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(dirname "$HERE")"

usage() {
    sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
    echo "Options: --prefix DIR  --dry-run  --node NAME  --uninstall  --purge  --python PY  --pip-arg ARG"
    echo "         --without-gpio (no lgpio: for nodes without GPIO sensors)"
}

while [ $# -gt 0 ]; do
    case "$1" in
        --prefix) PREFIX="${2:?--prefix needs a directory}"; shift 2 ;;
        --prefix=*) PREFIX="${1#*=}"; shift ;;
        --dry-run) DRY_RUN=1; shift ;;
        --uninstall) UNINSTALL=1; shift ;;
        --purge) PURGE=1; shift ;;
        --node) NODE="${2:?--node needs a name}"; shift 2 ;;
        --node=*) NODE="${1#*=}"; shift ;;
        --python) PYTHON="${2:?--python needs an interpreter}"; shift 2 ;;
        --pip-arg) PIP_ARGS+=("${2:?--pip-arg needs a value}"); shift 2 ;;
        --without-gpio) EXTRAS=""; shift ;;
        -h|--help) usage; exit 0 ;;
        -*) echo "install.sh: unknown option $1" >&2; usage >&2; exit 2 ;;
        *) SOURCE="$1"; shift ;;
    esac
done

if [ -n "$PREFIX" ]; then
    PREFIX="$(mkdir -p "$PREFIX" && cd "$PREFIX" && pwd)"
fi
OPT="$PREFIX/opt/edge-agent"
VENV="$OPT/venv"
ETC="$PREFIX/etc/edge-agent"
STATE="$PREFIX/var/lib/edge-agent"
CREDSTORE="$PREFIX/etc/credstore/edge-agent"
UNIT_DIR="$PREFIX/etc/systemd/system"
UNIT="$UNIT_DIR/edge-agent.service"
DROPIN="$UNIT_DIR/edge-agent.service.d"
BIN_LINK="$PREFIX/usr/local/bin/edge-agent"
BASH_COMPLETION="$PREFIX/usr/share/bash-completion/completions/edge-agent"
ZSH_COMPLETION="$PREFIX/usr/local/share/zsh/site-functions/_edge-agent"
MAN_PAGE="$PREFIX/usr/local/share/man/man1/edge-agent.1"
GPIO_RULE="$PREFIX/etc/udev/rules.d/60-edge-agent-gpio.rules"
TMPFILES="$PREFIX/etc/tmpfiles.d/edge-agent.conf"

say() { echo "edge-agent install: $*"; }

# run CMD...: execute, or only print it with --dry-run
run() {
    if [ "$DRY_RUN" = 1 ]; then
        printf '+'; printf ' %q' "$@"; printf '\n'
    else
        "$@"
    fi
}

systemd_running() {
    [ -z "$PREFIX" ] && [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1
}

need_root() {
    if [ -z "$PREFIX" ] && [ "$DRY_RUN" = 0 ] && [ "$(id -u)" != 0 ]; then
        echo "install.sh: run as root (sudo), or use --prefix DIR / --dry-run" >&2
        exit 1
    fi
}

# ------------------------------------------------------------------ install / upgrade

# The node's name for a first install: --node, else from the machine id, else asked.
# Two nodes with one name share client ids and topics (each takes the other's MQTT
# session over), so nothing here falls back to a fixed name.
node_name() {
    local mid="" answer=""
    if [ -n "$NODE" ]; then
        echo "$NODE"
        return
    fi
    if [ -r "$PREFIX/etc/machine-id" ]; then
        mid="$(tr -dc '0-9a-f' < "$PREFIX/etc/machine-id" | cut -c1-8)"
    elif [ -r /etc/machine-id ]; then
        mid="$(tr -dc '0-9a-f' < /etc/machine-id | cut -c1-8)"
    fi
    if [ ${#mid} = 8 ]; then
        echo "pi-$mid"
        return
    fi
    if [ -t 0 ]; then
        read -r -p "No /etc/machine-id: name this node (e.g. pi-0042): " answer || answer=""
    fi
    echo "$answer"
}

valid_node() {
    [[ "$1" =~ ^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$ ]]
}

create_user() {
    if [ -n "$PREFIX" ]; then
        say "prefix install: skipping system user and groups"
        return
    fi
    local g
    for g in "${GROUPS_NEEDED[@]}"; do
        if ! getent group "$g" >/dev/null; then
            run groupadd --system "$g"
        fi
    done
    if ! getent group "$USER_NAME" >/dev/null; then
        run groupadd --system "$USER_NAME"
    fi
    if ! id -u "$USER_NAME" >/dev/null 2>&1; then
        run useradd --system --gid "$USER_NAME" --home-dir /var/lib/edge-agent \
            --no-create-home --shell /usr/sbin/nologin \
            --comment "edge-agent sensor agent" "$USER_NAME"
    fi
    # the unit grants these with SupplementaryGroups=; membership helps manual runs too
    run usermod -a -G "$(IFS=,; echo "${GROUPS_NEEDED[*]}")" "$USER_NAME"
}

install_package() {
    local src="${SOURCE:-$REPO}"
    if [ ! -e "$src" ]; then
        echo "install.sh: $src not found (give a wheel file or run from a checkout)" >&2
        exit 1
    fi
    run install -d -m 0755 "$OPT"
    if [ ! -x "$VENV/bin/python" ]; then
        run "$PYTHON" -m venv "$VENV"
    else
        say "upgrading the program in $VENV"
    fi
    run "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade \
        ${PIP_ARGS[@]+"${PIP_ARGS[@]}"} "$src$EXTRAS"
    if [ -f "$REPO/README.md" ]; then
        run install -m 0644 "$REPO/README.md" "$OPT/README.md"
    fi
    run install -d -m 0755 "$(dirname "$BIN_LINK")"
    run ln -sfn "$VENV/bin/edge-agent" "$BIN_LINK"
}

# Shell completion (bash, zsh) and the man page, generated by the installed program from
# its own command line (edge_agent/cli/docs.py), so they always match it.
install_docs() {
    local what target
    for what in bash zsh man; do
        case "$what" in
            bash) target="$BASH_COMPLETION" ;;
            zsh) target="$ZSH_COMPLETION" ;;
            man) target="$MAN_PAGE" ;;
        esac
        run install -d -m 0755 "$(dirname "$target")"
        if [ "$DRY_RUN" = 1 ]; then
            run write "$target" "($VENV/bin/python -m edge_agent.cli.docs $what)"
        elif "$VENV/bin/python" -m edge_agent.cli.docs "$what" > "$target.tmp" 2>/dev/null; then
            chmod 0644 "$target.tmp"
            mv -f "$target.tmp" "$target"
        else
            rm -f "$target.tmp"
            say "could not write $target; later: $VENV/bin/python -m edge_agent.cli.docs $what > $target"
        fi
    done
}

install_files() {
    local owner=() example
    if [ -z "$PREFIX" ]; then owner=(-o root -g "$USER_NAME"); fi
    run install -d -m 0755 "$UNIT_DIR"
    run install -m 0644 "$HERE/edge-agent.service" "$UNIT"
    # the metrics textfile's directory on /run (a tmpfs), made again at every boot
    run install -d -m 0755 "$(dirname "$TMPFILES")"
    run install -m 0644 "$HERE/edge-agent.tmpfiles" "$TMPFILES"
    if [ -z "$PREFIX" ] && command -v systemd-tmpfiles >/dev/null 2>&1; then
        run systemd-tmpfiles --create "$TMPFILES" || true
    fi
    run install -d -m 0750 ${owner[@]+"${owner[@]}"} "$ETC" "$ETC/tls"
    example="$REPO/configs/elderly-home.yaml"
    if [ -f "$example" ]; then
        run install -m 0640 ${owner[@]+"${owner[@]}"} "$example" "$ETC/site.yaml.example"
        if [ -e "$ETC/site.yaml" ]; then
            say "keeping the existing $ETC/site.yaml"
        else
            run install -m 0640 ${owner[@]+"${owner[@]}"} "$example" "$ETC/site.yaml"
            say "wrote an example $ETC/site.yaml: edit it for this site"
        fi
    fi
    if [ ! -e "$ETC/edge-agent.env" ]; then
        local node
        node="$(node_name)"
        if [ -n "$node" ] && ! valid_node "$node"; then
            echo "install.sh: node name '$node' is not valid (letters, digits, . _ -)" >&2
            exit 2
        fi
        local env_lines=(
            "# Environment for edge-agent (systemd EnvironmentFile=): \${NAME} in site.yaml"
            "# This node's name: unique per Pi (topics, MQTT client ids). Never copy this file"
            "# to another node unchanged."
        )
        if [ -n "$node" ]; then
            env_lines+=("EDGE_NODE=$node")
            say "this node is named $node (EDGE_NODE in $ETC/edge-agent.env)"
        else
            env_lines+=("# EDGE_NODE=pi-0042")
            say "no node name: set EDGE_NODE in $ETC/edge-agent.env before starting"
        fi
        env_lines+=("# EDGE_TLS_DIR=/etc/edge-agent/tls")
        if [ "$DRY_RUN" = 1 ]; then
            run write "$ETC/edge-agent.env" "${env_lines[@]}"
        else
            umask 027
            printf '%s\n' "${env_lines[@]}" > "$ETC/edge-agent.env"
            umask 022
        fi
    elif ! grep -q '^EDGE_NODE=' "$ETC/edge-agent.env" 2>/dev/null; then
        say "note: $ETC/edge-agent.env sets no EDGE_NODE; the shipped examples need it"
        say "      (e.g. EDGE_NODE=$(node_name)) unless site.yaml names the node itself"
    fi
    # the state dir: created if absent, never modified (keys and buffered readings live there)
    if [ ! -d "$STATE" ]; then
        if [ -z "$PREFIX" ]; then
            run install -d -m 0700 -o "$USER_NAME" -g "$USER_NAME" "$STATE"
        else
            run install -d -m 0700 "$STATE"
        fi
    else
        say "keeping $STATE (keys and buffered data) as it is"
    fi
    credentials_dropin
}

# LoadCredential= lines for the keys present in the credstore (a missing one would fail
# the start, so only existing files are listed).
credentials_dropin() {
    local lines=() ch
    for ch in ot it; do
        if [ -f "$CREDSTORE/$ch.key" ]; then
            lines+=("LoadCredential=$ch.key:/etc/credstore/edge-agent/$ch.key")
        fi
    done
    if [ ${#lines[@]} -eq 0 ]; then
        if [ -e "$DROPIN/credentials.conf" ]; then run rm -f "$DROPIN/credentials.conf"; fi
        return
    fi
    run install -d -m 0755 "$DROPIN"
    if [ "$DRY_RUN" = 1 ]; then
        run write "$DROPIN/credentials.conf" "${lines[@]}"
    else
        printf '%s\n' "# written by install.sh from $CREDSTORE" "[Service]" "${lines[@]}" \
            > "$DROPIN/credentials.conf"
    fi
}

enable_service() {
    if ! systemd_running; then
        say "systemd is not running here (container or --prefix): not enabling the service"
        return
    fi
    run systemctl daemon-reload
    run systemctl enable edge-agent.service
    if systemctl is-active --quiet edge-agent.service; then
        run systemctl restart edge-agent.service
        say "restarted the running service with the new version"
    else
        say "next: edit $ETC/site.yaml, check it with 'edge-agent doctor -c $ETC/site.yaml',"
        say "      then: systemctl start edge-agent"
    fi
}

# Raspberry Pi OS gives the gpio group its GPIO chips with a udev rule; plain Debian (on a
# Pi or elsewhere) leaves /dev/gpiochipN root-only, and the service (user edge-agent, group
# gpio through SupplementaryGroups=) could not open them. Add the same rule where no rule
# gives gpiochips a group yet.
gpio_rule() {
    local d f
    [ -n "$EXTRAS" ] || return 0
    for d in "$PREFIX/etc/udev/rules.d" "$PREFIX/run/udev/rules.d" \
             "$PREFIX/lib/udev/rules.d" "$PREFIX/usr/lib/udev/rules.d"; do
        [ -d "$d" ] || continue
        for f in "$d"/*.rules; do
            [ -f "$f" ] && [ "$f" != "$GPIO_RULE" ] || continue
            if grep -Eq '^[^#]*SUBSYSTEM=="gpio".*GROUP=' "$f"; then
                say "GPIO chips get their group from $f"
                return 0
            fi
        done
    done
    run install -d -m 0755 "$(dirname "$GPIO_RULE")"
    if [ "$DRY_RUN" = 1 ]; then
        run write "$GPIO_RULE" 'SUBSYSTEM=="gpio", KERNEL=="gpiochip*", GROUP="gpio", MODE="0660"'
    else
        printf '%s\n' "# written by edge-agent's install.sh: the gpio group (the service's" \
            "# SupplementaryGroups=) may open the GPIO chips, as on Raspberry Pi OS" \
            'SUBSYSTEM=="gpio", KERNEL=="gpiochip*", GROUP="gpio", MODE="0660"' \
            > "$GPIO_RULE.tmp"
        chmod 0644 "$GPIO_RULE.tmp"
        mv -f "$GPIO_RULE.tmp" "$GPIO_RULE"
        say "wrote $GPIO_RULE (GPIO chips: group gpio, mode 0660)"
    fi
    if [ -z "$PREFIX" ] && command -v udevadm >/dev/null 2>&1 && [ -d /run/udev ]; then
        run udevadm control --reload || true
        run udevadm trigger --subsystem-match=gpio --action=change || true
        run udevadm settle || true
    fi
}

# ------------------------------------------------------------------ uninstall

shred_data() {
    say "crypto-shredding: the key files first, so buffered data is unreadable even if a copy"
    say "of the store survives (flash wear levelling may keep old blocks)"
    local keydirs=("$STATE/keys" "$CREDSTORE" "$ETC/tls")
    local d
    for d in "${keydirs[@]}"; do
        if [ -d "$d" ]; then
            run find "$d" -type f -exec shred -u -z {} +
        fi
    done
    if [ -d "$STATE" ]; then
        run rm -rf --one-file-system "$STATE"
    fi
    if [ -d "$CREDSTORE" ]; then
        run rm -rf "$CREDSTORE"
    fi
}

uninstall() {
    if systemd_running; then
        run systemctl disable --now edge-agent.service || true
    fi
    run rm -f "$UNIT" "$BIN_LINK" "$BASH_COMPLETION" "$ZSH_COMPLETION" "$MAN_PAGE" "$GPIO_RULE" \
        "$TMPFILES"
    run rm -rf "$DROPIN" "$OPT"
    if systemd_running; then
        run systemctl daemon-reload
    fi
    local answer="n"
    if [ "$PURGE" = 1 ]; then
        answer="y"
    elif [ -t 0 ] && [ -d "$STATE" ]; then
        read -r -p "Shred the keys and all buffered data in $STATE? [y/N] " answer || answer="n"
    fi
    case "$answer" in
        y|Y|yes|YES)
            shred_data
            run rm -rf "$ETC"
            ;;
        *)
            say "kept $STATE (keys, buffered data) and $ETC (config);"
            say "remove them later with: install.sh --uninstall --purge"
            ;;
    esac
    say "uninstalled"
}

need_root
if [ "$UNINSTALL" = 1 ]; then
    uninstall
    exit 0
fi
if [ "$PURGE" = 1 ]; then
    echo "install.sh: --purge goes with --uninstall" >&2
    exit 2
fi
create_user
install_package
install_docs
install_files
gpio_rule
enable_service
# a power cut in the next half minute must not leave an empty unit file (a "masked"
# service that never starts again) or an empty site.yaml: write it all out now
run sync
if [ "$DRY_RUN" = 1 ]; then
    say "dry run: nothing was changed"
else
    say "done: $("$VENV/bin/edge-agent" --version 2>/dev/null || echo "edge-agent (not runnable yet: \"$VENV/bin/edge-agent --version\" failed)")"
fi
