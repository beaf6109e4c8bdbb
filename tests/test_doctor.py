"""`edge-agent doctor`: a healthy emulated site passes; a broken one fails with fixes."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from edge_agent.cli import doctor
from edge_agent.cli.doctor import FAIL, PASS, SKIP, WARN, Check
from edge_agent.config import load_config
from edge_agent.devices.registry import SENSOR_TYPES
from edge_agent.security import pki
from edge_agent.tools.mosquitto import Mosquitto, free_port
from tests.conftest import write_site
from tests.security_site import channel_yaml, make_pki, two_listener_broker
from tests.security_site import write_site as write_tls_site

LOAD = "  - {id: gen, type: load, channel: ot, rate: 10}\n"


def by_name(checks: list[Check]) -> dict[str, Check]:
    return {c.name: c for c in checks}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge_agent", *args], capture_output=True,
                          text=True, timeout=60, check=False)


def test_healthy_emulated_site(tmp_path: Path, broker: Mosquitto) -> None:
    cfg = write_site(tmp_path, broker.url, sensors=LOAD)
    r = cli("doctor", "-c", str(cfg))
    assert r.returncode == 0, r.stdout
    lines = r.stdout.splitlines()
    assert any(ln.startswith("PASS  config") for ln in lines)
    assert any(ln.startswith(f"PASS  broker ot 127.0.0.1:{broker.port}") for ln in lines)
    assert any(ln.startswith("WARN  key ot") for ln in lines)  # created on first start
    assert any(ln.startswith("SKIP  hardware") for ln in lines)
    assert lines[-1].endswith("0 failed, " + lines[-1].split("0 failed, ")[1])


def test_broken_site_fails_with_fixes(tmp_path: Path) -> None:
    key = tmp_path / "ot.key"
    key.write_text("00" * 32 + "\n")
    key.chmod(0o644)  # readable by everyone: refused
    dead = free_port()
    cfg = write_site(tmp_path, f"mqtt://127.0.0.1:{dead}", sensors=LOAD,
                     extra_ot=f"    key_file: {key}\n")
    r = cli("doctor", "-c", str(cfg), "--timeout", "2")
    assert r.returncode == 1
    out = r.stdout
    assert "FAIL  key ot" in out and "accessible by group/others" in out
    assert f"fix: chmod 600 {key}" in out
    assert f"FAIL  broker ot 127.0.0.1:{dead}" in out and "TCP to 127.0.0.1" in out
    assert "fix: check the route/firewall" in out
    j = cli("doctor", "-c", str(cfg), "--json", "--timeout", "2")
    assert j.returncode == 1 and '"ok": false' in j.stdout


def test_invalid_config_fails_with_location(tmp_path: Path) -> None:
    cfg = tmp_path / "site.yaml"
    cfg.write_text("site: x\nnode: y\nhardware: emulated\nstate_dir: /tmp/x\nchanels: {}\n")
    checks = doctor.run_checks(cfg, timeout=1)
    c = by_name(checks)["config"]
    assert c.status == FAIL and f"{cfg}:5: chanels" in c.detail
    assert "check-config" in c.fix


def test_tls_broker_and_certificates(tmp_path: Path) -> None:
    p = make_pki(tmp_path / "pki")
    b, ot_port, _ = two_listener_broker(tmp_path, p)
    try:
        url = f"mqtts://127.0.0.1:{ot_port}"
        for d in ("good", "rogue", "soon"):
            (tmp_path / d).mkdir(exist_ok=True)
        cfg = write_tls_site(tmp_path / "good", channel_yaml("ot", url, p.ot_ca, p.ot_client),
                             LOAD)
        site = load_config(cfg, SENSOR_TYPES)
        (c,) = doctor.check_brokers(site, timeout=3)
        assert c.status == PASS and "TLS" in c.detail, c
        certs = by_name(list(doctor.check_certs(site)))
        assert certs["client cert ot"].status == PASS
        # the wrong CA: the broker's certificate is not trusted
        cfg = write_tls_site(tmp_path / "rogue",
                             channel_yaml("ot", url, p.rogue_ca, p.ot_client), LOAD)
        (c,) = doctor.check_brokers(load_config(cfg, SENSOR_TYPES), timeout=3)
        assert c.status == FAIL and "not trusted" in c.detail and "ca_file" in c.fix
    finally:
        b.stop()
    soon = pki.make_cert(p.ot_ca, tmp_path / "soon", "test-n1-ot", days=10)
    cfg = write_tls_site(tmp_path / "soon", channel_yaml("ot", url, p.ot_ca, soon), LOAD)
    certs = by_name(list(doctor.check_certs(load_config(cfg, SENSOR_TYPES))))
    assert certs["client cert ot"].status == WARN and "expires in" in certs["client cert ot"].detail
    certs = by_name(list(doctor.check_certs(load_config(cfg, SENSOR_TYPES),
                                            now=soon.certificate.not_valid_after_utc.timestamp()
                                            + 86400)))
    assert certs["client cert ot"].status == FAIL and "renew" in certs["client cert ot"].fix


def test_hardware_checks_on_a_fake_dev(tmp_path: Path) -> None:
    master, slave = os.openpty()
    try:
        port = os.ttyname(slave)
        cfg = write_site(tmp_path, "mqtt://127.0.0.1:1", "mqtt://127.0.0.1:1", sensors=(
            "  - {id: climate, type: sht31, bus: 3}\n"
            "  - {id: sos, type: button, pin: 17}\n"
            f"  - {{id: radar, type: ld2410, port: {port}}}\n"
            "  - {id: usb, type: mr60bha1, port: /dev/ttyUSB9}\n"))
        cfg.write_text(cfg.read_text().replace("hardware: emulated", "hardware: raspberry-pi"))
        dev = tmp_path / "dev"
        dev.mkdir()
        (dev / "gpiochip0").write_bytes(b"")
        site = load_config(cfg, SENSOR_TYPES)
        checks = by_name(list(doctor.check_hardware(site, timeout=0.5, dev=dev)))
        assert checks["i2c bus 3"].status == FAIL and "raspi-config" in checks["i2c bus 3"].fix
        assert checks["gpio"].status == PASS and "GPIO17" in checks["gpio"].detail
        assert checks["serial usb"].status == FAIL and "/dev/ttyUSB9 missing" in \
            checks["serial usb"].detail
        assert checks["serial radar"].status == WARN  # opens, says nothing
        talk = threading.Timer(0.2, os.write, (master, b"\xf4\xf3\xf2\xf1" + b"\x00" * 20))
        talk.start()  # after the port is opened (opening flushes the input)
        checks = by_name(list(doctor.check_hardware(site, timeout=1.0, dev=dev)))
        talk.join()
        assert checks["serial radar"].status == PASS
        (dev / "gpiochip0").unlink()
        checks = by_name(list(doctor.check_hardware(site, timeout=0.5, dev=dev)))
        assert checks["gpio"].status == FAIL
    finally:
        os.close(master)
        os.close(slave)


def test_a_silent_dlms_push_port_is_flagged(tmp_path: Path) -> None:
    """dlms-hdlc meters push unasked, so a port that opens but stays silent is a warning
    (doctor's own list of talking devices used to forget them: \"opens, not probed\")."""
    master, slave = os.openpty()
    master2, slave2 = os.openpty()  # one port per sensor (check-config refuses sharing)
    try:
        port = os.ttyname(slave)
        cfg = write_site(tmp_path, "mqtt://127.0.0.1:1", sensors=(
            f"  - {{id: han, type: dlms-hdlc, port: {port}}}\n"
            f"  - {{id: probe, type: iec62056-21, port: {os.ttyname(slave2)}}}\n"))
        cfg.write_text(cfg.read_text().replace("hardware: emulated", "hardware: raspberry-pi"))
        site = load_config(cfg, SENSOR_TYPES)
        checks = by_name(list(doctor.check_hardware(site, timeout=0.3, dev=tmp_path)))
        assert checks["serial han"].status == WARN and "sent nothing" in \
            checks["serial han"].detail
        assert checks["serial probe"].status == PASS  # polled: silent until asked
        assert "not probed" in checks["serial probe"].detail
    finally:
        for fd in (master, slave, master2, slave2):
            os.close(fd)


@pytest.mark.parametrize(("out", "status"), [("yes", PASS), ("no", WARN)])
def test_clock(out: str, status: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor.shutil, "which", lambda name: "/usr/bin/" + name)
    c = doctor.check_clock(lambda cmd: (0, out), timesync=tmp_path / "none")
    assert c.status == status


def test_clock_unknown_and_unit_states(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(doctor.shutil, "which", lambda name: None)
    assert doctor.check_clock(timesync=tmp_path / "none").status == WARN
    (tmp_path / "synchronized").write_bytes(b"")
    assert doctor.check_clock(timesync=tmp_path / "synchronized").status == PASS
    assert doctor.check_unit().status == SKIP
    monkeypatch.setattr(doctor.shutil, "which", lambda name: "/usr/bin/" + name)
    assert doctor.check_unit(lambda cmd: (0, "active"), booted=tmp_path).status == PASS
    failed = doctor.check_unit(lambda cmd: (3, "failed"), booted=tmp_path)
    assert failed.status == FAIL and "journalctl" in failed.fix


def test_disk_and_state_dir(tmp_path: Path) -> None:
    cfg = write_site(tmp_path, "mqtt://127.0.0.1:1", sensors=LOAD,
                     store="  max_bytes: 1000000GiB\n")
    site = load_config(cfg, SENSOR_TYPES)
    assert doctor.check_disk(site).status == FAIL
    assert doctor.check_state_dir(site).status == WARN  # not created yet
    site.state_dir.mkdir(mode=0o700)
    assert doctor.check_state_dir(site).status == PASS


def test_sensor_key_files(tmp_path: Path) -> None:
    keys = tmp_path / "meter.keys"
    cfg = write_site(tmp_path, "mqtt://127.0.0.1:1", sensors=(
        f"  - {{id: meter, type: dlms-hdlc, key_file: {keys}}}\n"
        "  - {id: plain, type: dlms-hdlc, port: /dev/ttyUSB1}\n"))
    site = load_config(cfg, SENSOR_TYPES)

    def check() -> Check:
        checks = list(doctor.check_sensor_keys(site))
        assert [c.name for c in checks] == ["sensor key meter"]  # one line per key_file
        return checks[0]

    missing = check()
    assert missing.status == FAIL and "not found" in missing.detail and "EK=" in missing.fix
    keys.write_text("EK=" + "00" * 16 + "\nAK=" + "11" * 16 + "\n")
    keys.chmod(0o640)
    loose = check()
    assert loose.status == FAIL and f"chmod 600 {keys}" in loose.fix
    keys.chmod(0o600)
    good = check()
    assert good.status == PASS and "EK + AK" in good.detail
    keys.write_text("EK=1234\n")
    bad = check()
    assert bad.status == FAIL and "32 hex digits" in bad.detail and "EK=<32 hex" in bad.fix
    assert "sensor key meter" in by_name(doctor.run_checks(cfg, timeout=0.2,
                                                          run=lambda cmd: (1, "")))


@pytest.mark.parametrize(("fs", "opts", "status", "said"), [
    ("ext4", "rw,noatime", WARN, "journal committed every 5 s"),
    ("ext4", "rw,noatime,commit=30", PASS, "journal committed every 30 s"),
    ("ext4", "rw,commit=600", PASS, "every 600 s"),
    ("tmpfs", "rw,mode=755", WARN, "lost at every power cut"),
    ("xfs", "rw", PASS, "on xfs"),
])
def test_card_writes_name_the_journal_commit_and_the_textfile(
        tmp_path: Path, fs: str, opts: str, status: str, said: str) -> None:
    prom = tmp_path / "run" / "m" / "edge_agent.prom"
    cfg = write_site(tmp_path, "mqtt://127.0.0.1:1", sensors=LOAD)
    cfg.write_text(cfg.read_text() + f"metrics: {{textfile: {prom}}}\n")
    site = load_config(cfg, SENSOR_TYPES)
    site.state_dir.mkdir(mode=0o700)
    info = tmp_path / "mountinfo"
    info.write_text(
        "22 1 259:2 / / rw,relatime shared:1 - ext4 /dev/root rw\n"
        f"30 22 259:3 / {tmp_path} rw,noatime - {fs} /dev/sdb1 {opts}\n"
        f"31 30 0:23 / {tmp_path}/run rw,nosuid - tmpfs tmpfs rw,mode=755\n")
    card, textfile = doctor.check_card_writes(site, info)
    assert card.status == status and said in card.detail, card
    assert (card.fix is not None and "commit=30" in card.fix) is (said.endswith("5 s"))
    assert textfile.status == PASS and "tmpfs" in textfile.detail
    # the textfile on the card: named, with the directory to use instead
    info.write_text(info.read_text().replace("tmpfs tmpfs", "ext4 /dev/sdb2"))
    textfile = list(doctor.check_card_writes(site, info))[1]
    assert textfile.status == WARN and "/run/edge-agent-metrics" in (textfile.fix or "")
    assert next(iter(doctor.check_card_writes(site, tmp_path / "absent"))).status == SKIP
