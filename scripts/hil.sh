#!/usr/bin/env bash
# Run the hardware-in-the-loop suite (hil/tests) on one rig, with labgrid's pytest plugin:
#
#   scripts/hil.sh sim [pytest args]   # the agent as a process here, P1 meter on a pty (quick; CI)
#   scripts/hil.sh vm  [pytest args]   # Debian 12 VM under qemu, real unit, real kernel devices
#   scripts/hil.sh arm64 [pytest args] # the same image for arm64 (TCG, Cortex-A72): a smoke run
#   scripts/hil.sh pi  [pytest args]   # a Raspberry Pi on the bench (fill in hil/env/pi.yaml)
#   scripts/hil.sh vm --junitxml=out.xml
#   scripts/hil.sh vm --long           # 100 power cuts instead of 10, then the arm64 run
#
# vm/arm64: build the VM image once (needs root; ~/.cache/edge-agent-hil, rebuilt when
# its recipe, hil/vm/recipe.sh or recipe_arm64.sh, changes) and install qemu, debootstrap
# and socat with apt-get.
set -euo pipefail
cd "$(dirname "$0")/.."
ENV="${1:-}"
case "$ENV" in
    sim|vm|arm64|pi) shift ;;
    *) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac

scripts/setup.sh --test >/dev/null  # the [test,hil] extras: pytest, labgrid

ARGS=(-p no:cacheprovider hil/tests --lg-env "hil/env/$ENV.yaml")
if [ "$ENV" = vm ] || [ "$ENV" = arm64 ]; then
    ARCH=amd64; tools=(qemu-system-x86_64:qemu-system-x86)
    if [ "$ENV" = arm64 ]; then
        ARCH=arm64
        # debootstrap's second stage runs arm64 binaries through qemu-user (binfmt_misc);
        # the kernel's modules and the initramfs are prepared here (depmod, cpio)
        tools=(qemu-system-aarch64:qemu-system-arm qemu-aarch64-static:qemu-user-static
               update-binfmts:binfmt-support depmod:kmod cpio:cpio)
    fi
    need=()
    for tool in "${tools[@]}" qemu-img:qemu-utils debootstrap:debootstrap socat:socat \
                mkfs.ext4:e2fsprogs; do
        command -v "${tool%%:*}" >/dev/null 2>&1 || need+=("${tool#*:}")
    done
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    if [ ${#need[@]} -gt 0 ]; then
        echo "hil: installing ${need[*]} with apt-get" >&2
        $SUDO apt-get update -q >/dev/null
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need[@]}" >/dev/null
    fi
    if [ "$ARCH" = arm64 ] && [ ! -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ]; then
        mountpoint -q /proc/sys/fs/binfmt_misc \
            || $SUDO mount -t binfmt_misc binfmt_misc /proc/sys/fs/binfmt_misc
        $SUDO update-binfmts --enable qemu-aarch64
    fi
    started=$(date +%s)
    LG_HIL_IMAGE="$(.venv/bin/python -m hil.vm.image ensure --arch "$ARCH")"
    echo "hil: image $LG_HIL_IMAGE ($(( $(date +%s) - started )) s)" >&2
    LG_HIL_RUN="$(mktemp -d "${TMPDIR:-/tmp}/edge-agent-hil-run.XXXXXX")"
    .venv/bin/python -m hil.vm.image prepare "$LG_HIL_RUN" "$LG_HIL_IMAGE" >/dev/null
    EDGE_HIL_ACCEL_CHOSEN="$(.venv/bin/python -m hil.vm.image accel "$LG_HIL_IMAGE")"
    echo "hil: run dir $LG_HIL_RUN, accelerator $EDGE_HIL_ACCEL_CHOSEN" >&2
    export LG_HIL_IMAGE LG_HIL_RUN EDGE_HIL_ACCEL_CHOSEN
    # a safety net per test; a long power-cut run (100 boots of up to a few minutes each on
    # a loaded machine) gets 12 h, each of its boots has its own 15-minute limit
    limit=7200
    [[ " $* " == *" --long "* || " $* " == *" --cuts"* ]] && limit=43200
    ARGS+=(-o "timeout=$limit")
elif [ "$ENV" = pi ]; then
    ARGS+=(-o timeout=7200)
fi
rc=0
.venv/bin/python -m pytest "${ARGS[@]}" "$@" || rc=$?
if [ "$ENV" = vm ] || [ "$ENV" = arm64 ]; then
    if [ "$rc" = 0 ]; then rm -rf "$LG_HIL_RUN"; else echo "hil: kept $LG_HIL_RUN" >&2; fi
fi
# the long run: the arm64 smoke run after the vm suite (its JUnit file beside the vm's)
if [ "$ENV" = vm ] && [[ " $* " == *" --long "* ]]; then
    more=()  # only the output options carry over (a -k for the vm suite would not fit)
    for a in "$@"; do
        case "$a" in
            --junitxml=*) j="${a#*=}"; more+=("--junitxml=${j%.xml}-arm64.xml") ;;
            -q|-v|-s|-rA) more+=("$a") ;;
        esac
    done
    "$0" arm64 ${more[@]+"${more[@]}"} || rc=$?
fi
exit "$rc"
