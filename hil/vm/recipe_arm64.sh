#!/usr/bin/env bash
# The arm64 smoke image: the vm image's system (hil/vm/recipe.sh) for arm64, built so that
# as little as possible runs emulated. Run as root; writes into OUT:
#
#   OUT/disk.img      ext4 root filesystem (raw, root=/dev/vda)
#   OUT/vmlinuz OUT/initrd.img   Debian's arm64 kernel and a small busybox initramfs
#   OUT/phases.txt    seconds per phase
#
# What runs where:
# - debootstrap's first stage (download, extract) runs here, natively (--foreign);
# - its second stage (dpkg --install of every package, maintainer scripts) runs the arm64
#   binaries through qemu-user (binfmt_misc): the only emulated phase;
# - the kernel is never installed in the chroot (its postinst runs update-initramfs, which
#   under qemu-user took over 35 min): its package is downloaded with the host's apt and
#   unpacked here, depmod runs here, and the initramfs is a static busybox with the few
#   modules the root disk needs (virtio block, ext4), packed here with cpio.
# The image has no gpio-sim, i2c-stub or i2c-tools: the arm64 rig runs the service tests
# only (hil/env/arm64.yaml). hil/vm/image.py calls this when the cached image's hash
# differs from this file's.
set -euo pipefail
OUT="${1:?usage: recipe_arm64.sh OUTDIR}"
MIRROR="${HIL_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
ROOT="$OUT/rootfs"
CONSOLE=ttyAMA0
mkdir -p "$OUT"
: > "$OUT/phases.txt"
PHASE="" PHASE_START=0
step() {
    local now; now=$(date +%s)
    [ -n "$PHASE" ] && echo "$PHASE $(( now - PHASE_START ))" >> "$OUT/phases.txt"
    PHASE="$1" PHASE_START=$now
    echo "recipe: $(date +%T) $*"
}

step first-stage "debootstrap --foreign $SUITE arm64 (native: download and extract)"
rm -rf "$ROOT"
debootstrap --foreign --variant=minbase --arch=arm64 \
    --include=systemd,systemd-sysv,udev,dbus,kmod,python3,python3-venv,iproute2,procps,util-linux,e2fsprogs,passwd,login,ca-certificates \
    "$SUITE" "$ROOT" "$MIRROR"

step second-stage "debootstrap --second-stage (emulated: qemu-user)"
[ -e /proc/sys/fs/binfmt_misc/qemu-aarch64 ] || {
    echo "recipe: no binfmt_misc handler for aarch64 (qemu-user-static)" >&2; exit 1; }
# no man-db triggers, no docs: fewer files for dpkg to write under emulation
mkdir -p "$ROOT/etc/dpkg/dpkg.cfg.d"
printf 'path-exclude=/usr/share/man/*\npath-exclude=/usr/share/doc/*\npath-include=/usr/share/doc/*/copyright\npath-exclude=/usr/share/locale/*\npath-exclude=/usr/share/info/*\n' \
    > "$ROOT/etc/dpkg/dpkg.cfg.d/01-hil-nodoc"
chroot "$ROOT" /debootstrap/debootstrap --second-stage

step kernel "kernel and modules (native: the host's apt downloads, dpkg-deb unpacks)"
APTD="$OUT/apt"
mkdir -p "$APTD/lists/partial" "$APTD/archives/partial" "$APTD/debs"
: > "$APTD/status"
echo "deb [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] $MIRROR $SUITE main" \
    > "$APTD/sources.list"
hostapt() {
    apt-get -q -o APT::Architecture=arm64 -o APT::Architectures::=arm64 \
        -o Dir::Etc::SourceList="$APTD/sources.list" -o Dir::Etc::SourceParts=/nonexistent \
        -o Dir::State::Lists="$APTD/lists" -o Dir::State::Status="$APTD/status" \
        -o Dir::Cache="$APTD" -o Dir::Cache::Archives="$APTD/archives" \
        -o Debug::NoLocking=1 -o APT::Sandbox::User=root "$@"
}
hostapt update >/dev/null
KIMG="$(apt-cache -o APT::Architecture=arm64 -o Dir::State::Lists="$APTD/lists" \
        -o Dir::Etc::SourceList="$APTD/sources.list" -o Dir::Etc::SourceParts=/nonexistent \
        -o Dir::State::Status="$APTD/status" -o Dir::Cache="$APTD" \
        depends linux-image-arm64 | sed -n 's/^ *Depends: \(linux-image-[0-9].*-arm64\)$/\1/p' | head -n1)"
[ -n "$KIMG" ] || { echo "recipe: linux-image-arm64 depends on no kernel package" >&2; exit 1; }
(cd "$APTD/debs" && hostapt download "$KIMG" busybox-static >/dev/null)
# unpacked beside the root, then copied in: the package's ./lib would replace the root's
# /lib -> usr/lib symlink (merged /usr) with a directory
dpkg-deb -x "$APTD/debs/${KIMG}"_*.deb "$APTD/kernel"
KVER="${KIMG#linux-image-}"
mkdir -p "$ROOT/usr/lib/modules" "$ROOT/boot"
cp -a "$APTD/kernel/lib/modules/$KVER" "$ROOT/usr/lib/modules/"
cp -a "$APTD/kernel/boot/." "$ROOT/boot/"
[ -L "$ROOT/lib" ] || { echo "recipe: $ROOT/lib is no longer a symlink" >&2; exit 1; }
depmod -b "$ROOT" "$KVER"
cp "$ROOT/boot/vmlinuz-$KVER" "$OUT/vmlinuz"
grep -E '^CONFIG_(VIRTIO|VIRTIO_PCI|VIRTIO_MMIO|VIRTIO_BLK|EXT4_FS|CRC32C|LIBCRC32C)=' \
    "$ROOT/boot/config-$KVER" > "$OUT/kconfig.txt" || true

step initramfs "initramfs: static busybox, virtio block and ext4 modules (native)"
I="$OUT/initramfs"
rm -rf "$I"
mkdir -p "$I"/{bin,dev,proc,sys,root,lib/modules}
dpkg-deb -x "$APTD/debs"/busybox-static_*.deb "$APTD/busybox"
cp "$APTD/busybox/bin/busybox" "$I/bin/busybox"
# the modules the root disk needs, each after the ones it depends on (modules.dep lists a
# module's dependencies, the deepest last)
MODS="$ROOT/lib/modules/$KVER"
want=(virtio_pci virtio_mmio virtio_blk crc32c_generic ext4)  # ext4 soft-depends on crc32c
: > "$I/modules"
add_module() {
    local name="$1" path deps d
    path="$(modinfo -b "$ROOT" -k "$KVER" -n "$name" 2>/dev/null)" || return 0  # built in
    case "$path" in /*) ;; *) return 0 ;; esac
    path="${path#"$ROOT"}"
    grep -qxF "$path" "$I/modules" && return 0
    deps="$(sed -n "s|^${path#/lib/modules/"$KVER"/}: *||p" "$MODS/modules.dep")"
    for d in $deps; do
        d="$(basename "$d")"; add_module "${d%%.ko*}"
    done
    grep -qxF "$path" "$I/modules" && return 0
    mkdir -p "$I$(dirname "$path")"
    cp "$ROOT$path" "$I$path"
    echo "$path" >> "$I/modules"
}
for m in "${want[@]}"; do add_module "$m"; done
cat > "$I/init" <<'INIT'
#!/bin/busybox sh
/bin/busybox --install -s /bin
mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
for m in $(cat /modules); do
    case "$m" in
        *.ko.xz) xz -dc "$m" > /tmp.ko && insmod /tmp.ko && rm -f /tmp.ko ;;
        *.ko.zst) zstd -dc "$m" > /tmp.ko && insmod /tmp.ko && rm -f /tmp.ko ;;
        *) insmod "$m" ;;
    esac
done
root=/dev/vda
for arg in $(cat /proc/cmdline); do
    case "$arg" in root=/dev/*) root="${arg#root=}" ;; esac
done
i=0
while [ ! -b "$root" ] && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
if ! mount -t ext4 -o ro "$root" /root; then
    echo "initramfs: cannot mount $root"; ls /dev; exec sh
fi
umount /proc /sys
mount --move /dev /root/dev
exec switch_root /root /sbin/init
INIT
chmod 755 "$I/init"
echo "initramfs modules: $(tr '\n' ' ' < "$I/modules")"
(cd "$I" && find . | cpio -o -H newc --quiet | gzip -9) > "$OUT/initrd.img"
rm -rf "$I" "$APTD/busybox"

step configure "system configuration (native files; systemctl runs emulated)"
cleanup() { for m in dev/pts dev proc sys; do umount -l "$ROOT/$m" 2>/dev/null || true; done; }
trap cleanup EXIT
mount -t proc proc "$ROOT/proc"; mount -t sysfs sys "$ROOT/sys"
mount --bind /dev "$ROOT/dev"; mount --bind /dev/pts "$ROOT/dev/pts"
in_root() { chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive LC_ALL=C "$@"; }
echo hil-vm > "$ROOT/etc/hostname"
printf '127.0.0.1 localhost\n127.0.1.1 hil-vm\n' > "$ROOT/etc/hosts"
cat > "$ROOT/etc/fstab" <<'FSTAB'
/dev/vda  /             ext4  defaults,noatime     0 1
/dev/vdb  /mnt/payload  ext4  ro,nofail,x-systemd.device-timeout=5s  0 0
FSTAB
mkdir -p "$ROOT/mnt/payload"
in_root passwd -d root >/dev/null
mkdir -p "$ROOT/etc/systemd/system/serial-getty@$CONSOLE.service.d"
cat > "$ROOT/etc/systemd/system/serial-getty@$CONSOLE.service.d/autologin.conf" <<GETTY
[Service]
ExecStart=
ExecStart=-/sbin/agetty --autologin root --noclear --keep-baud 115200 %I \$TERM
GETTY
# only the test's broker is reachable (qemu user networking with restrict=on and guestfwd)
cat > "$ROOT/etc/systemd/network/10-hil.network" <<'NET'
[Match]
Name=en* eth*
[Network]
Address=10.0.2.15/24
Gateway=10.0.2.2
NET
in_root systemctl enable systemd-networkd.service >/dev/null 2>&1
in_root systemctl mask apt-daily.timer apt-daily-upgrade.timer e2scrub_all.timer \
    fstrim.timer systemd-timesyncd.service >/dev/null 2>&1 || true
rm -rf "$ROOT/boot"/* "$ROOT/var/cache/apt/archives"/*.deb "$ROOT/debootstrap"
cleanup; trap - EXIT

step disk "disk image"
rm -f "$OUT/disk.img"
mkfs.ext4 -q -F -L hilroot -d "$ROOT" "$OUT/disk.img" 3G
rm -rf "$ROOT" "$APTD"
step done
