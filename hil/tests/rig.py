"""What a test sees of a rig: the agent somewhere, devices to drive, a shell beside it.

One suite runs on three rigs (``hil/env/*.yaml``): ``sim`` (the agent as a process on this
machine, a DSMR meter on a pty), ``vm`` (a Debian 12 VM under qemu with the agent
installed by ``systemd/install.sh`` and running under the real unit, devices through
gpio-sim, i2c-stub and a USB serial port) and ``pi`` (a Raspberry Pi on the bench). A test
names the features it needs with ``@pytest.mark.lg_feature``; a rig without one skips it.
"""

from __future__ import annotations

import abc
import base64
import shlex
import tempfile
import textwrap
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from edge_agent.security.nodekey import NodeKeys

SITE = "hil"
NODE = "rig"
PREFIX_OT = f"edge/{SITE}/{NODE}/ot"
PREFIX_IT = f"edge/{SITE}/{NODE}/it"


@dataclass(frozen=True)
class Result:
    """A command run beside the agent."""

    rc: int
    out: str

    def check(self, what: str) -> str:
        if self.rc != 0:
            raise AssertionError(f"{what}: exit {self.rc}\n{self.out}")
        return self.out


class P1Meter(abc.ABC):
    """The host side of the meter's serial line: telegrams go out every ``period``."""

    @abc.abstractmethod
    def set_power(self, watts: float) -> None: ...

    @abc.abstractmethod
    def unplug(self) -> None:
        """The adapter goes away (the tty vanishes or stops carrying bytes)."""

    @abc.abstractmethod
    def replug(self) -> None: ...


class Rig(abc.ABC):
    """The agent, where it runs, and the devices around it."""

    name = "rig"
    #: broker URL the agent uses to reach the test's broker
    broker_url = "mqtt://127.0.0.1:1883"
    #: where the site file and the platform's public key live beside the agent
    site_path = "/etc/edge-agent/site.yaml"
    seal_path = "/etc/edge-agent/it-seal.pub"
    state_dir = "/var/lib/edge-agent"
    #: the device paths the site file names
    p1_port = "/dev/ttyUSB0"
    i2c_bus = 1
    #: the user the agent's keys belong to (``keys init --owner``); "" where it runs as us
    key_owner = "edge-agent"
    _node_keys: NodeKeys | None = None

    @property
    def node_keys(self) -> NodeKeys:
        """The node signing keys the platform has enrolled (the IT subscriber checks who
        sealed each payload with them); filled by :meth:`enrol`."""
        if self._node_keys is None:
            self._node_keys = NodeKeys()
        return self._node_keys

    def enrol(self) -> None:
        """Provisioning, as an installer does it before the first start: ``keys init``
        makes the node's keys (the signing key among them, kept if it exists), and its
        public enrolment record (``keys export``) is enrolled for the IT subscriber."""
        owner = f" --owner {self.key_owner}" if self.key_owner else ""
        self.edge_agent(f"keys init -c {self.site_path}{owner}").check("keys init")
        record = self.edge_agent(f"keys export -c {self.site_path}").check("keys export")
        with tempfile.TemporaryDirectory(prefix="edge-agent-hil-enrol-") as d:
            path = Path(d) / "node-sign.pub"
            path.write_text(record)
            enrolled = NodeKeys.load(path)
        for site, node in enrolled.nodes():
            for key in enrolled.get(site, node):
                self.node_keys.add(site, node, key)

    @abc.abstractmethod
    def sh(self, command: str, timeout: float = 60.0) -> Result:
        """Run a shell command beside the agent (as root where the rig allows)."""

    def edge_agent(self, args: str, timeout: float = 60.0) -> Result:
        return self.sh(f"edge-agent {args}", timeout)

    def put_file(self, path: str, data: bytes, mode: str = "0640") -> None:
        b64 = base64.b64encode(data).decode()
        lines = textwrap.wrap(b64, 800)
        q = shlex.quote(path)
        self.sh(f"mkdir -p $(dirname {q}) && : > {q}.b64").check("put_file")
        for chunk in lines:
            self.sh(f"printf %s {chunk} >> {q}.b64").check("put_file")
        self.sh(f"base64 -d {q}.b64 > {q} && rm {q}.b64 && chmod {mode} {q} && sync"
                " && (getent group edge-agent >/dev/null && chgrp edge-agent"
                f" {q} || true)").check("put_file")

    # -- the agent ------------------------------------------------------------------------

    @abc.abstractmethod
    def start(self) -> None:
        """Start the agent with the site file in place (after :meth:`enrol`); return once it
        said READY=1."""

    @abc.abstractmethod
    def stop(self) -> None: ...

    @abc.abstractmethod
    def main_pid(self) -> int: ...

    @abc.abstractmethod
    def reload(self) -> None:
        """SIGHUP, as ``systemctl reload`` does."""

    @abc.abstractmethod
    def logs(self) -> str:
        """What the agent logged since the rig started it (the journal on systemd)."""

    def install_site(self, sensors: str, *, extra_ot: str = "", store: str = "",
                     health_interval: str = "2s") -> str:
        text = site_text(self, sensors, extra_ot=extra_ot, store=store,
                         health_interval=health_interval)
        self.put_file(self.site_path, text.encode())
        return text

    # -- devices (each a feature; a rig without it raises) ---------------------------------

    def p1(self) -> P1Meter:
        raise NotImplementedError(f"{self.name}: no P1 meter line")

    def set_pull(self, pin: int, high: bool) -> None:
        """Drive a GPIO input as the wiring would: pulled up (open contact) or down."""
        raise NotImplementedError(f"{self.name}: no GPIO lines to drive")

    def i2c_load(self, address: int, registers: dict[int, int]) -> None:
        """Load byte registers into the chip at ``address`` on ``i2c_bus``."""
        raise NotImplementedError(f"{self.name}: no I2C bus to load")

    def power_cut(self) -> None:
        """Cut the power at once (no shutdown, no flush)."""
        raise NotImplementedError(f"{self.name}: no power switch")

    def power_on(self) -> None:
        """Switch the power on and return at once (the node boots by itself)."""
        raise NotImplementedError(f"{self.name}: no power switch")

    def await_shell(self) -> None:
        """Wait until the booted node has a shell again."""
        raise NotImplementedError(f"{self.name}: no power switch")

    def boot(self) -> float:
        """Power on and wait for a shell; return the seconds it took."""
        started = time.monotonic()
        self.power_on()
        self.await_shell()
        return time.monotonic() - started

    @abc.abstractmethod
    def close(self) -> None:
        """Release everything the rig started."""


def site_text(rig: Rig, sensors: str, *, extra_ot: str = "", store: str = "",
              health_interval: str = "2s") -> str:
    """A two-channel site for ``rig``: both channels to the test's broker, IT sealed."""
    return f"""site: {SITE}
node: {NODE}
hardware: raspberry-pi
state_dir: {rig.state_dir}
channels:
  ot:
    brokers: ["{rig.broker_url}"]
    allow_insecure: true
    health_interval: {health_interval}
    reconnect_min: 200ms
    reconnect_max: 2s
{extra_ot}
  it:
    brokers: ["{rig.broker_url}"]
    allow_insecure: true
    health_interval: {health_interval}
    reconnect_min: 200ms
    reconnect_max: 2s
    seal: {{ public_key_file: {rig.seal_path}, suite: x25519 }}
store:
  commit_interval: 200ms
{store}
sensors:
{sensors}
"""


def sensor_lines(*entries: str) -> str:
    return "".join(f"  - {e}\n" for e in entries)


def shell_join(args: Sequence[str]) -> str:
    return " ".join(shlex.quote(a) for a in args)
