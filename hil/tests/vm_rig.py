"""The ``vm`` rig: a Debian 12 VM (qemu, labgrid's QEMUDriver + ShellDriver) running the
agent under the real unit, installed by ``systemd/install.sh`` from wheels built here.

Devices are real kernel interfaces in the guest, driven from the host:

- GPIO: a gpio-sim chip (28 lines, line N = BCM GPIO N); the test moves a line by writing
  its simulated pull (``sim_gpioN/pull``), as a button or a reed contact would;
- I2C: i2c-stub with chips at 0x76 (BME280), 0x68 (MPU6050) and 0x53 (ADXL345), their
  register maps loaded from the package's emulators;
- P1: a USB serial adapter (qemu ``usb-serial``, the guest's ftdi_sio makes /dev/ttyUSB0)
  whose other end is a unix socket the host writes DSMR telegrams into; unplugging is a
  real USB detach (QMP ``device_del``) and re-attach;
- network: user networking with ``restrict=on``: the guest reaches nothing but
  10.0.2.100:1883, forwarded to the test's broker on the host.

Power cuts SIGKILL qemu; the root disk runs with ``cache=none`` (no host page cache).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shlex
import socket
import threading
import time
from pathlib import Path
from typing import Any

from pexpect import TIMEOUT

from edge_agent.devices.dsmr.emulator import DsmrMeter
from edge_agent.devices.dsmr.options import DsmrEmulation

from .rig import P1Meter, Result, Rig

PAYLOAD = "/mnt/payload"
INSTALL = (f"{PAYLOAD}/repo/systemd/install.sh {PAYLOAD}/wheels/edge_agent-*.whl"
           f" --pip-arg --no-index --pip-arg --find-links={PAYLOAD}/wheels")
# The rig's drop-in. WatchdogSec shorter than the unit's 60 s keeps the watchdog test short.
# x86 has no device tree, so the Pi's revision cell is shown where a Pi's kernel shows it
# (gpiozero needs a board to map pins; on a Pi this is the real file).
DROPIN = """[Service]
WatchdogSec=15
RestartSec=1
TemporaryFileSystem=/sys/firmware:ro
BindReadOnlyPaths=/etc/hil/devicetree:/sys/firmware/devicetree/base
"""
PI4_REVISION = bytes.fromhex("00c03114")  # Raspberry Pi 4 Model B 4 GB, rev 1.4


class SocketMeter(P1Meter):
    """DSMR telegrams into qemu's chardev socket, once a second, reconnecting as needed."""

    def __init__(self, path: Path, rig: VmRig) -> None:
        self.path = path
        self.rig = rig
        self.meter = DsmrMeter(DsmrEmulation())
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self.sent = 0
        self._thread = threading.Thread(target=self._run, name="p1-meter", daemon=True)
        self._thread.start()

    def set_power(self, watts: float) -> None:
        with self._lock:
            self.meter.power_w = watts

    def unplug(self) -> None:
        """A USB detach: the guest's ftdi_sio sees the adapter go and removes the tty."""
        self.rig.qmp("device_del", {"id": "p1dev"})
        self.rig.wait_device(self.rig.p1_port, present=False)

    def replug(self) -> None:
        self.rig.qmp("device_add", {"driver": "usb-serial", "chardev": "p1", "id": "p1dev",
                                    "bus": "xhci.0"})
        self.rig.wait_device(self.rig.p1_port, present=True)

    def _run(self) -> None:
        sock: socket.socket | None = None
        while not self._stop.is_set():
            if sock is None:
                candidate = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
                try:
                    candidate.connect(str(self.path))
                except OSError:
                    candidate.close()
                    self._stop.wait(0.5)
                    continue
                # a detached adapter's chardev stops reading: never block the meter on it
                candidate.settimeout(5.0)
                sock = candidate
            now = time.time()
            with self._lock:
                self.meter.advance(1.0, time.localtime(now).tm_hour)
                telegram = self.meter.telegram(now)
            try:
                sock.sendall(telegram)
                self.sent += 1
            except OSError:
                sock.close()
                sock = None
            self._stop.wait(1.0)
        if sock is not None:
            sock.close()

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)


class ConsoleDrain:
    """Reads the serial console while no shell does. qemu's UART sends a byte per socket
    write, so a few hundred unread bytes (fsck, the autologin banner and prompt) fill the
    socket's buffer and the guest's console writes, and with them its boot, stall."""

    def __init__(self, console: Any) -> None:
        self.console = console
        self.text = bytearray()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="console-drain", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.console.read(size=4096, timeout=0.2)
            except TIMEOUT:  # nothing to read
                continue
            except OSError:
                return  # qemu is gone
            if not data:
                return  # qemu is gone
            self.text += data
            del self.text[:-16384]

    def stop(self) -> str:
        self._stop.set()
        self._thread.join(10)
        return self.text.decode(errors="replace")


class VmRig(Rig):
    name = "vm"
    broker_url = "mqtt://10.0.2.100:1883"
    p1_port = "/dev/ttyUSB0"

    def __init__(self, target: Any, workdir: Path, broker_port: int,
                 features: frozenset[str] = frozenset({"gpio", "i2c_stub", "p1"})) -> None:
        """``features``: the environment's; the arm64 smoke image has no gpio-sim, no
        i2c-stub and no P1 adapter, so those are neither attached nor checked there."""
        self.target = target
        self.features = features
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        image = Path(os.environ["LG_HIL_IMAGE"])
        run = Path(os.environ["LG_HIL_RUN"])
        accel = os.environ.get("EDGE_HIL_ACCEL_CHOSEN", "tcg")
        self.p1_socket = workdir / "p1.sock"
        with contextlib.suppress(FileNotFoundError):
            self.p1_socket.unlink()
        self.qemu = target.get_driver("QEMUDriver", activate=False)
        args = [
            "-accel", "kvm" if accel == "kvm" else "tcg,thread=multi",
            "-initrd", str(image / "initrd.img"),
            "-netdev", "user,id=n0,restrict=on,guestfwd=tcp:10.0.2.100:1883-cmd:"
                       f"socat - TCP:127.0.0.1:{broker_port}",
            "-device", "virtio-net-pci,netdev=n0",
            "-drive", f"if=virtio,format=raw,readonly=on,file={run / 'payload.img'}",
        ]
        if "p1" in features:
            args += ["-chardev", f"socket,id=p1,path={self.p1_socket},server=on,wait=off",
                     "-device", "qemu-xhci,id=xhci",
                     "-device", "usb-serial,chardev=p1,id=p1dev,bus=xhci.0"]
        self.qemu.extra_args += " " + " ".join(shlex.quote(a) for a in args)
        self._cursor = ""
        self._sim_dir = ""
        self._drain: ConsoleDrain | None = None
        self.console_tail = ""  # what the drain read of the last boot's console
        first_boot = self.boot()
        started = time.monotonic()
        self.install_agent()
        # the first boot and the installation, for the figures (docs/hil.md)
        (workdir / "rig-seconds.json").write_text(json.dumps(
            {"boot": round(first_boot, 1),
             "install": round(time.monotonic() - started, 1)}) + "\n")
        self._meter = SocketMeter(self.p1_socket, self) if "p1" in features else None

    # -- the machine ------------------------------------------------------------------------

    def power_on(self) -> None:
        """Start qemu; the guest boots on its own (the serial console is read only when
        a shell is wanted: ``await_shell``)."""
        self.target.activate(self.qemu)
        self.qemu.on()
        self._sim_dir = ""
        self._drain = ConsoleDrain(self.qemu)

    def _stop_drain(self) -> None:
        if self._drain is not None:
            self.console_tail = self._drain.stop()
            self._drain = None

    def await_shell(self) -> None:
        """The root shell on the serial console (autologin; ShellDriver's login_timeout
        allows a slow boot). ShellDriver sends a newline when the console is quiet, so a
        prompt the drain read already comes again."""
        self._stop_drain()
        self.shell = self.target.get_driver("ShellDriver")
        self.sh("dmesg -n 1; bind 'set enable-bracketed-paste off' 2>/dev/null; true")

    def power_cut(self) -> None:
        """SIGKILL qemu: no flush, no shutdown, the guest's page cache is gone."""
        child = self.qemu._child
        if child is not None:
            child.kill()
            child.wait()
        self._stop_drain()
        if child is not None:
            for pipe in (child.stdin, child.stdout):
                if pipe is not None:
                    pipe.close()
        self.qemu._child = None
        self.qemu.status = 0
        with contextlib.suppress(Exception):
            self.target.deactivate(self.shell)
        with contextlib.suppress(Exception):
            self.target.deactivate(self.qemu)

    def qmp(self, command: str, arguments: dict[str, Any]) -> Any:
        return self.qemu.monitor_command(command, arguments)

    def wait_device(self, path: str, present: bool, timeout: float = 60.0) -> None:
        """Wait until the guest's device node ``path`` exists (or is gone)."""
        test = f"test -e {shlex.quote(path)}"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if (self.sh(test).rc == 0) == present:
                return
            time.sleep(0.5)
        state = "appear" if present else "go away"
        raise AssertionError(f"{path} did not {state} in the guest within {timeout:.0f} s\n"
                             + self.sh("dmesg | tail -20; ls -l /dev/ttyUSB* 2>&1").out)

    def sh(self, command: str, timeout: float = 60.0) -> Result:
        out, _, rc = self.shell.run(f"{command} 2>&1", timeout=timeout)
        return Result(int(rc), "\n".join(out))

    def install_agent(self) -> None:
        self.sh(f"mountpoint -q {PAYLOAD} || mount -o ro /dev/vdb {PAYLOAD}").check("payload")
        self.sh(INSTALL, timeout=900).check("install.sh")
        self.put_file("/etc/hil/devicetree/system/linux,revision", PI4_REVISION, "0644")
        self.put_file("/etc/systemd/system/edge-agent.service.d/hil.conf", DROPIN.encode(),
                      "0644")
        self.sh("systemctl daemon-reload").check("daemon-reload")
        if "gpio" in self.features:
            # plain Debian leaves /dev/gpiochipN root-only: install.sh's udev rule gives
            # them to the gpio group (nothing here adjusts them)
            owner = self.sh("stat -c '%G %a' /dev/gpiochip0").check("gpiochip").strip()
            if owner != "gpio 660":
                raise AssertionError(f"/dev/gpiochip0 after install.sh: {owner},"
                                     " not gpio 660")
        if "i2c_stub" not in self.features:
            return
        name = self.sh("grep -l 'SMBus stub driver' /sys/bus/i2c/devices/i2c-*/name").out
        m = re.search(r"i2c-(\d+)/name", name)
        if not m:
            raise AssertionError(f"no i2c-stub adapter in the guest: {name}")
        self.i2c_bus = int(m.group(1))

    # -- the agent --------------------------------------------------------------------------

    def start(self) -> None:
        self.enrol()
        self._cursor = self.sh("journalctl -n 0 --show-cursor | sed -n 's/^-- cursor: //p'"
                               ).out.strip()
        self.sh("systemctl reset-failed edge-agent 2>/dev/null; true")
        # --no-block and polling: a blocking `systemctl start` on the serial console was
        # seen to hang there while the unit itself was active (Type=notify: "active" is
        # reached only after READY=1, so polling checks the same thing)
        self.sh("systemctl start --no-block edge-agent").check("systemctl start")
        if self._wait_state(("active",), 180) != "active":
            raise AssertionError(f"edge-agent did not become active\n{self.logs()}")

    def _wait_state(self, want: tuple[str, ...], timeout: float) -> str:
        deadline = time.monotonic() + timeout
        state = ""
        while time.monotonic() < deadline:
            state = self.sh("systemctl is-active edge-agent").out.strip()
            if state in want or state == "failed":
                return state
            time.sleep(1)
        return state

    def stop(self) -> None:
        self.sh("systemctl stop --no-block edge-agent")
        self._wait_state(("inactive",), 120)

    def main_pid(self) -> int:
        pid = int(self.sh("systemctl show -p MainPID --value edge-agent").out.strip() or 0)
        if pid == 0:
            raise AssertionError(f"edge-agent is not running\n{self.logs()[-3000:]}")
        return pid

    def reload(self) -> None:
        self.sh("systemctl reload edge-agent").check("systemctl reload")

    def logs(self) -> str:
        after = f"--after-cursor='{self._cursor}'" if self._cursor else ""
        return self.sh(f"journalctl -u edge-agent -o cat --no-pager {after}").out

    # -- devices ----------------------------------------------------------------------------

    def p1(self) -> P1Meter:
        if self._meter is None:
            raise AssertionError("this rig has no P1 adapter (feature p1)")
        return self._meter

    def set_pull(self, pin: int, high: bool) -> None:
        if not self._sim_dir:
            self._sim_dir = self.sh(
                "dirname $(ls -d /sys/devices/platform/gpio-sim.*/gpiochip*/sim_gpio0)"
            ).check("gpio-sim").strip()
        pull = "pull-up" if high else "pull-down"
        self.sh(f"echo {pull} > {self._sim_dir}/sim_gpio{pin}/pull").check("set pull")

    def i2c_load(self, address: int, registers: dict[int, int]) -> None:
        regs = sorted(registers)
        i = 0
        while i < len(regs):
            start, chunk = regs[i], [registers[regs[i]]]
            i += 1
            while i < len(regs) and regs[i] == start + len(chunk) and len(chunk) < 32:
                chunk.append(registers[regs[i]])
                i += 1
            values = " ".join(f"0x{v:02x}" for v in chunk)
            mode = "i" if len(chunk) > 1 else "b"
            self.sh(f"i2cset -y {self.i2c_bus} 0x{address:02x} 0x{start:02x} {values} {mode}"
                    ).check("i2cset")

    def close(self) -> None:
        self._stop_drain()
        meter = getattr(self, "_meter", None)
        if meter is not None:
            meter.close()
        with contextlib.suppress(Exception):
            self.qemu.off()
