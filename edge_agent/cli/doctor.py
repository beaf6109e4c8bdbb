"""``edge-agent doctor -c FILE``: an on-site checklist, each line pass / warn / fail.

Every check is a small function returning :class:`Check` objects; a failed or warned
check says how to fix it. Exit status: 0 when nothing failed, 1 otherwise. Network and
device probes are bounded by ``timeout`` so the whole run stays short on a broken site.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import ssl
import stat
import subprocess
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import IO, Any

from edge_agent.cli.filechecks import (
    FAIL,
    PASS,
    SKIP,
    WARN,
    Check,
    _opt,
    _sensor_type,
    static_checks,
)
from edge_agent.cli.filechecks import check_keys as check_keys  # re-exported
from edge_agent.cli.filechecks import check_sensor_keys as check_sensor_keys
from edge_agent.config.schema import ChannelConfig, SiteConfig
from edge_agent.config.types import BrokerURL
from edge_agent.core.errors import ConfigError, KeyFileError
from edge_agent.core.model import Channel
from edge_agent.core.mounts import MOUNTINFO, VOLATILE_FS, mount_of, on_volatile_fs

CERT_WARN_DAYS = 30.0


# ---------------------------------------------------------------------- configuration

def check_config(path: Path) -> tuple[SiteConfig | None, list[Check]]:
    from edge_agent.config import load_config
    from edge_agent.devices.registry import SENSOR_TYPES

    try:
        cfg = load_config(path, SENSOR_TYPES)
    except ConfigError as exc:
        lines = "; ".join(p.format() for p in exc.problems[:5])
        more = f" (+{len(exc.problems) - 5} more)" if len(exc.problems) > 5 else ""
        # the rest of the checklist runs on what could be read (every check, every time)
        partial = exc.partial if isinstance(exc.partial, SiteConfig) else None
        return partial, [Check("config", FAIL, f"{len(exc.problems)} problem(s): {lines}{more}",
                               f"edit {path} at the lines shown; 'edge-agent check-config "
                               f"{path}' lists every problem")]
    n = sum(1 for s in cfg.sensors if s.enabled)
    return cfg, [Check("config", PASS, f"{path}: site {cfg.site}, node {cfg.node}, "
                       f"hardware {cfg.hardware}, {len(cfg.channels)} channel(s), {n} sensor(s)")]


def check_certs(cfg: SiteConfig, now: float | None = None) -> Iterator[Check]:
    from cryptography import x509

    now = time.time() if now is None else now
    for ch, cc in cfg.channels.items():
        for what, p in (("client cert", cc.tls.cert_file), ("ca", cc.tls.ca_file)):
            if p is None:
                continue
            name = f"{what} {ch.value}"
            try:
                cert = x509.load_pem_x509_certificate(p.read_bytes())
            except (OSError, ValueError) as exc:
                yield Check(name, FAIL, f"{p}: cannot read a PEM certificate: {exc}",
                            f"install a valid PEM certificate at {p}")
                continue
            left = (cert.not_valid_after_utc.timestamp() - now) / 86400.0
            start = (cert.not_valid_before_utc.timestamp() - now) / 86400.0
            subject = cert.subject.rfc4514_string()
            if left < 0:
                yield Check(name, FAIL, f"{p} ({subject}) expired {-left:.0f} days ago",
                            "renew the certificate (the broker refuses an expired one)")
            elif start > 0:
                yield Check(name, FAIL, f"{p} ({subject}) is not valid for {start:.1f} more days",
                            "check the clock (see 'clock') or the certificate's validity")
            elif left < CERT_WARN_DAYS:
                yield Check(name, WARN, f"{p} ({subject}) expires in {left:.0f} days",
                            "renew the certificate before it expires")
            else:
                yield Check(name, PASS, f"{p} ({subject}) valid for {left:.0f} more days")


# ---------------------------------------------------------------------- hardware

def check_hardware(cfg: SiteConfig, timeout: float = 2.0,
                   dev: Path = Path("/dev")) -> Iterator[Check]:
    sensors = [s for s in cfg.sensors if s.enabled]
    if cfg.hardware != "raspberry-pi":
        yield Check("hardware", SKIP, "hardware: emulated (devices are emulated in-process)")
        return
    types = {s.id: _sensor_type(s.type) for s in sensors}

    def on(s: Any, bus: str, key: str, kind: type) -> bool:
        t = types[s.id]
        return t is not None and t.bus == bus and isinstance(_opt(s, key), kind)

    i2c = [s for s in sensors if on(s, "i2c", "bus", int)]
    ports = [s for s in sensors if on(s, "serial", "port", str)]
    pins = [s for s in sensors if on(s, "gpio", "pin", int)]
    for bus in sorted({_opt(s, "bus") for s in i2c}):
        node = dev / f"i2c-{bus}"
        users = [s for s in i2c if _opt(s, "bus") == bus]
        if not node.exists():
            yield Check(f"i2c bus {bus}", FAIL, f"{node} missing (needed by "
                        f"{', '.join(s.id for s in users)})",
                        "enable I2C: sudo raspi-config nonint do_i2c 0 (or dtparam=i2c_arm=on "
                        "in /boot/firmware/config.txt), then reboot")
            continue
        if not os.access(node, os.R_OK | os.W_OK):
            yield Check(f"i2c bus {bus}", FAIL, f"{node}: no read/write access",
                        "add the user to group i2c: usermod -aG i2c edge-agent")
            continue
        yield Check(f"i2c bus {bus}", PASS, f"{node} present")
        for s in users:
            addr = _opt(s, "address")
            stype = types[s.id]
            addr = stype.i2c_address if addr is None and stype is not None else addr
            if addr is not None:
                yield _probe_i2c(s.id, bus, int(addr))
    for s in ports:
        talks = bool((t := types[s.id]) and t.self_reporting)
        yield _check_port(s.id, s.type, str(_opt(s, "port")), _opt(s, "baudrate"), timeout,
                          talks)
    if pins:
        chip = dev / "gpiochip0"
        who = ", ".join(f"{s.id} (GPIO{_opt(s, 'pin')})" for s in pins)
        if not chip.exists():
            yield Check("gpio", FAIL, f"{chip} missing (needed by {who})",
                        "use Raspberry Pi OS (Debian 12) with the gpiochip driver")
        elif not os.access(chip, os.R_OK | os.W_OK):
            yield Check("gpio", FAIL, f"{chip}: no read/write access",
                        "add the user to group gpio: usermod -aG gpio edge-agent")
        else:
            yield Check("gpio", PASS, f"{chip} accessible for {who}")


def _probe_i2c(sensor: str, bus: int, addr: int) -> Check:
    name = f"i2c {sensor}"
    try:
        from smbus2 import SMBus

        with SMBus(bus) as b:
            b.read_byte(addr)
    except OSError as exc:
        return Check(name, FAIL, f"no answer at 0x{addr:02X} on bus {bus}: {exc}",
                     f"check wiring and power; 'i2cdetect -y {bus}' should show 0x{addr:02X}")
    return Check(name, PASS, f"answers at 0x{addr:02X} on bus {bus}")


def _check_port(sensor: str, stype: str, port: str, baudrate: Any, timeout: float,
                self_reporting: bool) -> Check:
    name = f"serial {sensor}"
    if "://" not in port and not Path(port).exists():
        return Check(name, FAIL, f"{port} missing ({stype})",
                     "plug in the adapter / enable the UART (raspi-config: serial port on, "
                     "login shell off); 'ls -l /dev/serial/by-id/' shows stable names")
    if "://" not in port and not os.access(port, os.R_OK | os.W_OK):
        return Check(name, FAIL, f"{port}: no read/write access",
                     "add the user to group dialout: usermod -aG dialout edge-agent")
    try:
        import serial

        with serial.serial_for_url(port, baudrate=int(baudrate or 9600),
                                   timeout=min(timeout, 2.0)) as s:
            if not self_reporting:
                return Check(name, PASS, f"{port} opens ({stype}; not probed)")
            data = s.read(64)
    except (OSError, ValueError) as exc:
        return Check(name, FAIL, f"{port}: cannot open: {exc}",
                     "is another program (getty, ModemManager) using the port?")
    if not data:
        return Check(name, WARN, f"{port} opens but sent nothing in {min(timeout, 2.0):.0f}s",
                     "check the cable, the meter's P1/port enable and the baud rate")
    return Check(name, PASS, f"{port}: device is talking ({len(data)} bytes)")


# ---------------------------------------------------------------------- network

def check_brokers(cfg: SiteConfig, timeout: float = 5.0) -> Iterator[Check]:
    for ch, cc in cfg.channels.items():
        for url in cc.brokers:
            yield _check_broker(ch, cc, url, timeout)


def _check_broker(ch: Channel, cc: ChannelConfig, url: BrokerURL, timeout: float) -> Check:
    name = f"broker {ch.value} {url.host}:{url.port}"
    try:
        infos = socket.getaddrinfo(url.host, url.port, type=socket.SOCK_STREAM)
    except OSError as exc:
        return Check(name, FAIL, f"DNS: cannot resolve {url.host}: {exc}",
                     "check /etc/resolv.conf, the network link and the broker host name")
    family, _, _, _, sockaddr = infos[0]
    host, port = str(sockaddr[0]), int(sockaddr[1])
    addr = (host, port) if family != socket.AF_INET6 else sockaddr
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError as exc:
        return Check(name, FAIL, f"socket: {exc}", "")
    with sock:
        sock.settimeout(timeout)
        try:
            if cc.bind_address:
                sock.bind((cc.bind_address, 0))
            sock.connect(addr)
        except OSError as exc:
            return Check(name, FAIL, f"TCP to {host} port {port}: {exc}",
                         "check the route/firewall to the broker (and bind_address); is the "
                         "broker up? ask the platform team")
        if not url.tls:
            return Check(name, WARN if not _loopback(host) else PASS,
                         f"TCP ok; plaintext {url} (allow_insecure)",
                         "use mqtts:// with TLS outside a lab")
        try:
            from edge_agent.uplink.tls import tls_context

            ctx = tls_context(cc)
        except (OSError, ssl.SSLError, KeyFileError) as exc:
            return Check(name, FAIL, f"TLS settings: {exc}",
                         "check tls.ca_file / cert_file / key_file (and key permissions)")
        try:
            with ctx.wrap_socket(sock, server_hostname=url.host) as tls:
                version = tls.version()
        except ssl.SSLCertVerificationError as exc:
            return Check(name, FAIL, f"TLS: broker certificate not trusted: {exc.verify_message}",
                         "tls.ca_file must hold the CA that signed the broker's certificate; "
                         "check the clock too")
        except (OSError, ssl.SSLError) as exc:
            return Check(name, FAIL, f"TLS handshake: {exc}",
                         "check the client certificate/key pair, min_version and that the port "
                         "speaks TLS")
    return Check(name, PASS, f"DNS, TCP and TLS ({version}) ok")


def _loopback(host: str) -> bool:
    return host.startswith("127.") or host == "::1"


# ---------------------------------------------------------------------- system

Runner = Callable[[list[str]], tuple[int, str]]


def _run(cmd: list[str]) -> tuple[int, str]:
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=5.0, check=False)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return 127, str(exc)
    return p.returncode, p.stdout.strip()


def check_clock(run: Runner = _run,
                timesync: Path = Path("/run/systemd/timesync/synchronized")) -> Check:
    fix = ("enable time sync: sudo timedatectl set-ntp true (systemd-timesyncd), and make sure "
           "NTP (udp/123) reaches a server")
    if shutil.which("timedatectl"):
        rc, out = run(["timedatectl", "show", "-p", "NTPSynchronized", "--value"])
        if rc == 0 and out == "yes":
            return Check("clock", PASS, "synchronised (NTP)")
        if rc == 0 and out == "no":
            return Check("clock", WARN, "not synchronised: readings may carry a wrong time and "
                         "TLS may fail", fix)
    if timesync.exists():
        return Check("clock", PASS, f"synchronised ({timesync} present)")
    return Check("clock", WARN, "synchronisation state unknown", fix)


def check_disk(cfg: SiteConfig) -> Check:
    budget = int(cfg.store.max_bytes) * len(cfg.channels)
    path = cfg.state_dir
    while not path.exists() and path != path.parent:
        path = path.parent
    usage = shutil.disk_usage(path)
    store = cfg.state_dir / "store"
    used = sum(f.stat().st_size for f in store.rglob("*") if f.is_file()) if store.exists() else 0
    room = usage.free + used
    mib = 1024 * 1024
    detail = (f"{usage.free // mib} MiB free on {path}; store budget {budget // mib} MiB "
              f"({len(cfg.channels)} x store.max_bytes), {used // mib} MiB used")
    fix = "free space on the SD card or lower store.max_bytes"
    if room < budget:
        return Check("disk", FAIL, detail + ": the budget does not fit", fix)
    if room < 2 * budget:
        return Check("disk", WARN, detail + ": less than twice the budget", fix)
    return Check("disk", PASS, detail)


def check_state_dir(cfg: SiteConfig) -> Check:
    d = cfg.state_dir
    if not d.exists():
        parent = d.parent
        if os.access(parent, os.W_OK):
            return Check("state dir", WARN, f"{d} does not exist yet (created on first start)",
                         "start the service once (systemd creates it with StateDirectory=)")
        return Check("state dir", FAIL, f"{d} missing and {parent} not writable",
                     f"sudo install -d -m 0700 -o edge-agent {d}")
    try:
        probe = d / f".doctor-{os.getpid()}"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        return Check("state dir", FAIL, f"{d} not writable: {exc}",
                     f"sudo chown -R edge-agent: {d}")
    mode = stat.S_IMODE(d.stat().st_mode)
    if mode & 0o007:
        return Check("state dir", WARN, f"{d} is accessible by others (mode {mode:04o})",
                     f"chmod 700 {d}")
    return Check("state dir", PASS, f"{d} writable (mode {mode:04o})")


JOURNAL_COMMIT_DEFAULT = 5  # seconds: ext4's commit= when the mount does not set it
JOURNAL_COMMIT_ADVISED = 30


def check_card_writes(cfg: SiteConfig, mountinfo: Path = MOUNTINFO) -> Iterator[Check]:
    """What the node writes to its card beyond the store (docs/design/0016): the state dir
    on a file system that keeps it, ext4's journal commit interval, the metrics textfile
    off the card."""
    path = cfg.state_dir
    while not path.exists() and path != path.parent:
        path = path.parent
    m = mount_of(path, mountinfo)
    if m is None:
        yield Check("card writes", SKIP, f"cannot read the mounts for {cfg.state_dir}")
    elif m.fstype in VOLATILE_FS:
        yield Check("card writes", WARN,
                    f"{cfg.state_dir} is on a {m.fstype} ({m.point}): the buffered readings "
                    "and the keys are lost at every power cut or reboot",
                    "set state_dir to a directory on the SD card (the default "
                    "/var/lib/edge-agent)")
    elif m.fstype == "ext4":
        commit = m.option("commit")
        seconds = int(commit) if commit and commit.isdigit() else JOURNAL_COMMIT_DEFAULT
        detail = f"{cfg.state_dir} on ext4 ({m.point}), journal committed every {seconds} s"
        if 0 < seconds < JOURNAL_COMMIT_ADVISED:
            yield Check("card writes", WARN, detail + ": the journal of the store's "
                        "timestamps is most of what the node writes (about 12 MB/hour at "
                        "1 reading/s on 4 KiB blocks, 4.3 MB/hour with "
                        f"commit={JOURNAL_COMMIT_ADVISED})",
                        f"add commit={JOURNAL_COMMIT_ADVISED} to the options of {m.point} in "
                        "/etc/fstab (docs/design/0018-sector-writes-and-the-hint-on-tmpfs.md)")
        else:
            yield Check("card writes", PASS, detail)
    else:
        yield Check("card writes", PASS, f"{cfg.state_dir} on {m.fstype} ({m.point})")
    textfile = cfg.metrics.textfile
    if textfile is not None:
        if on_volatile_fs(textfile.parent, mountinfo):
            yield Check("metrics textfile", PASS, f"{textfile} is on a tmpfs")
        else:
            yield Check("metrics textfile", WARN,
                        f"{textfile} is not on a tmpfs: each rewrite is a journal commit on "
                        "the card (about 74 KB on 4 KiB blocks)",
                        "metrics.textfile: /run/edge-agent-metrics/edge_agent.prom "
                        "(install.sh makes that directory at every boot)")


def check_unit(run: Runner = _run, unit: str = "edge-agent",
               booted: Path = Path("/run/systemd/system")) -> Check:
    if not shutil.which("systemctl") or not booted.exists():
        return Check("service", SKIP, "systemd is not running here (container?)")
    rc, out = run(["systemctl", "is-active", unit])
    state = out or "unknown"
    if state == "active":
        return Check("service", PASS, f"{unit}.service is active")
    if state in ("failed",):
        return Check("service", FAIL, f"{unit}.service has failed",
                     f"journalctl -u {unit} -b to see why; then sudo systemctl restart {unit}")
    if state in ("inactive", "unknown") or rc == 4:
        return Check("service", WARN, f"{unit}.service is {state}",
                     f"sudo systemctl enable --now {unit}")
    return Check("service", WARN, f"{unit}.service is {state}", f"journalctl -u {unit} -b")


# ---------------------------------------------------------------------- driver

def run_checks(path: Path, timeout: float = 5.0, run: Runner = _run) -> list[Check]:
    cfg, out = check_config(path)
    if cfg is not None:
        out.extend(static_checks(cfg))  # what check-config checks: the files
        out.extend(check_certs(cfg))
        out.append(check_state_dir(cfg))
        out.append(check_disk(cfg))
        out.extend(check_card_writes(cfg))
        out.extend(check_hardware(cfg, timeout=timeout))
        out.extend(check_brokers(cfg, timeout=timeout))
    out.append(check_clock(run))
    out.append(check_unit(run))
    return out


def format_checks(checks: Iterable[Check], out: IO[str]) -> None:
    """One line per check; each fix printed once (the first check that needs it)."""
    said: set[str] = set()
    for c in checks:
        print(f"{c.status.upper():4}  {c.name:<28} {c.detail}", file=out)
        if c.fix and c.status in (WARN, FAIL):
            if c.fix in said:
                print("      fix: as above", file=out)
            else:
                print(f"      fix: {c.fix}", file=out)
                said.add(c.fix)


def run_doctor(path: Path, out: IO[str], as_json: bool = False, timeout: float = 5.0) -> int:
    checks = run_checks(path, timeout=timeout)
    failed = sum(1 for c in checks if c.status == FAIL)
    warned = sum(1 for c in checks if c.status == WARN)
    if as_json:
        print(json.dumps({"ok": failed == 0, "checks": [asdict(c) for c in checks]}), file=out)
    else:
        format_checks(checks, out)
        print(f"{len(checks)} checks: {failed} failed, {warned} warnings", file=out)
    return 1 if failed else 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``doctor`` sub-command's arguments."""
    from edge_agent.cli.common import DEFAULT_CONFIG

    parser.add_argument("-c", "--config", type=Path, default=DEFAULT_CONFIG,
                        help=f"site YAML file (default: {DEFAULT_CONFIG})")
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument("--timeout", type=float, default=5.0,
                        help="network timeout per check (s)")


def run(args: argparse.Namespace) -> int:
    """``edge-agent doctor`` (arguments from :func:`add_arguments`)."""
    import sys

    return run_doctor(args.config, sys.stdout, as_json=args.json, timeout=args.timeout)
