"""The ``pi`` rig: a Raspberry Pi on the bench, reached over SSH (labgrid's SSHDriver).

What the bench needs is in docs/hil.md; what this rig reads from ``hil/env/pi.yaml``:

- target ``main`` with a ``NetworkService`` resource + ``SSHDriver`` (root, or a user with
  passwordless sudo: commands run through ``sudo -n`` when ``options.sudo`` is true);
- ``options.broker_host``: the test host's address as the Pi sees it (the Pi's agent
  connects to the test's broker there; the broker listens on all interfaces then);
- ``options.drive_pins``: for each input the agent reads, the Pi output pin wired to it
  through 1 kOhm (e.g. {17: 5, 27: 6, 22: 13}); the test drives it with gpioset;
- ``options.p1_host_port``: the host's end of the null-modem P1 line (a USB serial adapter
  on the test host wired to the Pi's ``options.p1_port``);
- ``options.p1_unplug`` / ``options.p1_replug``: host commands that cut and restore the
  power of the Pi-side adapter's USB hub port (e.g. ``uhubctl -l 1-1 -p 2 -a off``);
- a power driver on the target (``ManualPowerDriver``, ``ExternalPowerDriver`` with a relay
  or a switchable PSU, ``NetworkPowerDriver``...) for the power-cut test.
"""

from __future__ import annotations

import shlex
import subprocess
import sys
import threading
import time
from typing import Any

from edge_agent.devices.dsmr.emulator import DsmrMeter
from edge_agent.devices.dsmr.options import DsmrEmulation

from .rig import P1Meter, Result, Rig


class SerialMeter(P1Meter):
    """DSMR telegrams out of a host serial port, once a second."""

    def __init__(self, port: str, unplug_cmd: str | None, replug_cmd: str | None) -> None:
        import serial  # pyserial: a dependency of the agent

        self._port = serial.serial_for_url(port, baudrate=115200, timeout=0.1)
        self.meter = DsmrMeter(DsmrEmulation())
        self._unplug, self._replug = unplug_cmd, replug_cmd
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="p1-meter", daemon=True)
        self._thread.start()

    def set_power(self, watts: float) -> None:
        with self._lock:
            self.meter.power_w = watts

    def unplug(self) -> None:
        if not self._unplug:
            raise NotImplementedError("options.p1_unplug is not set in pi.yaml")
        subprocess.run(shlex.split(self._unplug), check=True)

    def replug(self) -> None:
        if not self._replug:
            raise NotImplementedError("options.p1_replug is not set in pi.yaml")
        subprocess.run(shlex.split(self._replug), check=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            now = time.time()
            with self._lock:
                self.meter.advance(1.0, time.localtime(now).tm_hour)
                telegram = self.meter.telegram(now)
            self._port.write(telegram)
            self._stop.wait(1.0)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._port.close()


class PiRig(Rig):
    name = "pi"
    i2c_bus = 1

    def __init__(self, env: Any, target: Any, broker_port: int) -> None:
        opt = env.config.get_option
        self.target = target
        self.broker_url = f"mqtt://{opt('broker_host')}:{broker_port}"
        self.sudo = "sudo -n " if opt("sudo", "no") in (True, "yes", "true") else ""
        self.drive_pins: dict[int, int] = {int(k): int(v)
                                           for k, v in dict(opt("drive_pins", {0: 0})).items()}
        self.p1_port = str(opt("p1_port", "/dev/ttyUSB0"))
        self._p1_host = str(opt("p1_host_port", "")) or None
        self._p1_cmds = (opt("p1_unplug", "") or None, opt("p1_replug", "") or None)
        self._meter: SerialMeter | None = None
        self._gpio: dict[int, subprocess.Popen[bytes]] = {}
        self._cursor = ""
        self.ssh = target.get_driver("SSHDriver")
        self.install_agent()

    def sh(self, command: str, timeout: float = 60.0) -> Result:
        wrapped = f"{self.sudo}sh -c {shlex.quote(command + ' 2>&1')}"
        out, _, rc = self.ssh.run(wrapped, timeout=timeout)
        return Result(int(rc), "\n".join(out))

    def install_agent(self) -> None:
        """The wheel built here, installed with the checkout's install.sh on the Pi (online:
        the Pi fetches the dependencies from its package index, as a technician's does)."""
        import glob
        import tempfile

        from hil.vm.image import REPO

        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps",
                            "-w", tmp, str(REPO)], check=True)
            wheel = glob.glob(f"{tmp}/edge_agent-*.whl")[0]
            self.sh("rm -rf /tmp/edge-agent-hil && mkdir -p /tmp/edge-agent-hil")
            self.ssh.put(wheel, "/tmp/edge-agent-hil/")
            for part in ("systemd", "configs", "README.md"):
                self.ssh.scp(src=str(REPO / part), dst=":/tmp/edge-agent-hil/")
        name = wheel.rsplit("/", 1)[-1]
        self.sh(f"/tmp/edge-agent-hil/systemd/install.sh /tmp/edge-agent-hil/{name}",
                timeout=1800).check("install.sh")

    def start(self) -> None:
        self.enrol()
        self._cursor = self.sh("journalctl -n 0 --show-cursor | sed -n 's/^-- cursor: //p'"
                               ).out.strip()
        self.sh("systemctl reset-failed edge-agent 2>/dev/null; true")
        r = self.sh("systemctl start edge-agent", timeout=180)
        if r.rc != 0:
            raise AssertionError(f"systemctl start failed ({r.rc}): {r.out}\n{self.logs()}")

    def stop(self) -> None:
        self.sh("systemctl stop edge-agent", timeout=120)

    def main_pid(self) -> int:
        pid = int(self.sh("systemctl show -p MainPID --value edge-agent").out.strip() or 0)
        if pid == 0:
            raise AssertionError("edge-agent is not running")
        return pid

    def reload(self) -> None:
        self.sh("systemctl reload edge-agent").check("systemctl reload")

    def logs(self) -> str:
        after = f"--after-cursor='{self._cursor}'" if self._cursor else ""
        return self.sh(f"journalctl -u edge-agent -o cat --no-pager {after}").out

    def p1(self) -> P1Meter:
        if self._p1_host is None:
            raise NotImplementedError("options.p1_host_port is not set in pi.yaml")
        if self._meter is None:
            self._meter = SerialMeter(self._p1_host, *self._p1_cmds)
        return self._meter

    def set_pull(self, pin: int, high: bool) -> None:
        out = self.drive_pins.get(pin)
        if out is None:
            raise NotImplementedError(f"GPIO{pin} has no driving pin in options.drive_pins")
        self.sh(f"pkill -f 'gpioset .* {out}=' ; true")
        self.sh(f"nohup gpioset --mode=signal gpiochip0 {out}={1 if high else 0}"
                " >/dev/null 2>&1 &").check("gpioset")

    def power_cut(self) -> None:
        power = self.target.get_driver("PowerProtocol")
        power.off()

    def power_on(self) -> None:
        self.target.get_driver("PowerProtocol").on()

    def await_shell(self) -> None:
        self.target.deactivate(self.ssh)
        deadline = time.monotonic() + 300
        while True:
            try:
                self.target.activate(self.ssh)
                break
            except Exception:
                if time.monotonic() > deadline:
                    raise
                time.sleep(5)

    def close(self) -> None:
        if self._meter is not None:
            self._meter.close()
        self.stop()
