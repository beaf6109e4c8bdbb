#!/usr/bin/env bash
# The HIL virtual machine image: Debian 12 from Debian's packages (debootstrap), the Debian
# kernel, and a gpio-sim module built from Debian's kernel source (Debian's 6.1 kernel does
# not ship it). Run as root; writes into OUT (default: a new directory under the cache):
#
#   OUT/disk.img      ext4 root filesystem (raw, root=/dev/vda)
#   OUT/vmlinuz OUT/initrd.img   the guest's kernel and initramfs, for direct kernel boot
#   OUT/recipe.sha256 the hash of this file, which names the cache entry
#
# hil/vm/image.py calls this when the cached image's hash differs from this file's.
set -euo pipefail
OUT="${1:?usage: recipe.sh OUTDIR [ARCH]}"
ARCH="${2:-amd64}"
MIRROR="${HIL_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SUITE=bookworm
ROOT="$OUT/rootfs"
mkdir -p "$OUT"
step() { echo "recipe: $(date +%T) $*"; }

case "$ARCH" in
    amd64) KPKG=linux-image-amd64; HPKG=linux-headers-amd64; CONSOLE=ttyS0 ;;
    arm64) KPKG=linux-image-arm64; HPKG=linux-headers-arm64; CONSOLE=ttyAMA0 ;;
    *) echo "recipe: unknown arch $ARCH" >&2; exit 2 ;;
esac

step "debootstrap $SUITE $ARCH"
rm -rf "$ROOT"
debootstrap --variant=minbase --arch="$ARCH" \
    --include="$KPKG,systemd,systemd-sysv,udev,dbus,kmod,initramfs-tools,python3,python3-venv,i2c-tools,gpiod,iproute2,procps,util-linux,e2fsprogs,passwd,login,ca-certificates" \
    "$SUITE" "$ROOT" "$MIRROR"

cleanup() { for m in dev/pts dev proc sys; do umount -l "$ROOT/$m" 2>/dev/null || true; done; }
trap cleanup EXIT
mount -t proc proc "$ROOT/proc"; mount -t sysfs sys "$ROOT/sys"
mount --bind /dev "$ROOT/dev"; mount --bind /dev/pts "$ROOT/dev/pts"
printf '#!/bin/sh\nexit 101\n' > "$ROOT/usr/sbin/policy-rc.d"; chmod 755 "$ROOT/usr/sbin/policy-rc.d"
in_root() { chroot "$ROOT" env DEBIAN_FRONTEND=noninteractive LC_ALL=C "$@"; }

KVER="$(basename "$(ls -d "$ROOT"/lib/modules/*/ | head -n1)")"
step "gpio-sim for $KVER from linux-source-6.1"
in_root apt-get install -y -q --no-install-recommends linux-source-6.1 "$HPKG" gcc make libc6-dev xz-utils >/dev/null
B="$ROOT/usr/src/gpio-sim"
mkdir -p "$B"
tar -C "$B" --strip-components=1 -xf "$ROOT"/usr/src/linux-source-6.1.tar.xz \
    --wildcards '*/drivers/gpio/gpio-sim.c' '*/drivers/gpio/gpiolib.h' '*/kernel/irq/irq_sim.c'
mv "$B/drivers/gpio/gpio-sim.c" "$B/gpio-sim-main.c"
mv "$B/drivers/gpio/gpiolib.h" "$B/gpiolib.h"
mv "$B/kernel/irq/irq_sim.c" "$B/irq_sim.c"
# CONFIG_IRQ_SIM is off in Debian's kernel: build the simulator into the module, without
# its exports (no other module may use them) and without irq_to_desc, which the kernel
# does not export: the descriptor is reached through irq_get_irq_data (exported).
sed -i -e 's/^EXPORT_SYMBOL_GPL(.*);//' "$B/irq_sim.c"
sed -i -e 's/irq_to_desc(\([^)]*\))/irq_data_to_desc(irq_get_irq_data(\1))/g' "$B/irq_sim.c"
grep -q irq_to_desc "$B/irq_sim.c" && { echo "recipe: irq_to_desc left in irq_sim.c" >&2; exit 1; }
cat > "$B/Makefile" <<'MK'
obj-m := gpio-sim.o
gpio-sim-y := gpio-sim-main.o irq_sim.o
MK
in_root make -C "/lib/modules/$KVER/build" M=/usr/src/gpio-sim modules >/dev/null
install -D -m 0644 "$B/gpio-sim.ko" "$ROOT/lib/modules/$KVER/extra/gpio-sim.ko"
in_root depmod "$KVER"
rm -f "$ROOT"/usr/src/linux-source-6.1.tar.*
in_root apt-get purge -y -q linux-source-6.1 >/dev/null
in_root apt-get clean

step "system configuration"
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
# only the test's brokers are reachable (qemu user networking with restrict=on and guestfwd)
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
# the buses: i2c-dev, and an i2c-stub with the chips whose register maps it can hold
# (BME280 0x76, MPU6050 0x68, ADXL345 0x53); the SMBus controller of the pc machine stays
# off so the stub is i2c-0
printf 'i2c-dev\ni2c-stub\nconfigfs\ngpio-sim\n' > "$ROOT/etc/modules-load.d/hil.conf"
printf 'options i2c-stub chip_addr=0x76,0x68,0x53\nblacklist i2c_piix4\n' \
    > "$ROOT/etc/modprobe.d/hil.conf"
# the GPIO chip: one gpio-sim bank of 28 lines (BCM numbering: line N is GPIO N)
cat > "$ROOT/usr/local/sbin/hil-gpio-sim" <<'SIM'
#!/bin/sh
set -e
D=/sys/kernel/config/gpio-sim/hil
[ -d "$D" ] && exit 0
modprobe gpio-sim
mkdir -p "$D/bank0"
echo 28 > "$D/bank0/num_lines"
echo hil-gpio > "$D/bank0/label"
echo 1 > "$D/live"
udevadm settle
SIM
chmod 755 "$ROOT/usr/local/sbin/hil-gpio-sim"
cat > "$ROOT/etc/systemd/system/hil-gpio-sim.service" <<'UNIT'
[Unit]
Description=HIL simulated GPIO chip (gpio-sim)
DefaultDependencies=no
After=sys-kernel-config.mount systemd-modules-load.service
Before=edge-agent.service multi-user.target
[Service]
Type=oneshot
RemainAfterExit=yes
ExecStart=/usr/local/sbin/hil-gpio-sim
[Install]
WantedBy=multi-user.target
UNIT
in_root systemctl enable hil-gpio-sim.service >/dev/null 2>&1
rm -f "$ROOT/usr/sbin/policy-rc.d"
cp -L "$ROOT/vmlinuz" "$OUT/vmlinuz" 2>/dev/null || cp "$ROOT/boot/vmlinuz-$KVER" "$OUT/vmlinuz"
cp -L "$ROOT/initrd.img" "$OUT/initrd.img" 2>/dev/null || cp "$ROOT/boot/initrd.img-$KVER" "$OUT/initrd.img"
grep -E '^CONFIG_(OF|GPIO_SIM|I2C_STUB|CONFIGFS_FS)=' "$ROOT/boot/config-$KVER" > "$OUT/kconfig.txt" || true
cleanup; trap - EXIT

step "disk image"
rm -f "$OUT/disk.img"
mkfs.ext4 -q -F -L hilroot -d "$ROOT" "$OUT/disk.img" 3G
rm -rf "$ROOT"
step "done"
