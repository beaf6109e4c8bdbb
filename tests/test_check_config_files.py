"""check-config checks what needs no hardware, no network and no clock (the files the
site names); doctor checks that too, then the machine, the network and time, every check
even when the config has problems, each fix printed once."""

from __future__ import annotations

import io
import subprocess
import sys
from pathlib import Path

from edge_agent.cli import doctor
from edge_agent.cli.filechecks import FAIL, Check
from tests.conftest import write_site

EDGE = [sys.executable, "-m", "edge_agent"]
CERT = "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n"
KEY = "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----\n"


def check_config(cfg: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*EDGE, "check-config", str(cfg)], capture_output=True, text=True,
                          timeout=60)


def tls_site(tmp_path: Path, sensors: str = "  - {id: g, type: load}\n") -> Path:
    tls = tmp_path / "tls"
    tls.mkdir()
    (tls / "ca.pem").write_text(CERT)
    (tls / "client.pem").write_text(CERT)
    (tls / "client.key").write_text(KEY)
    (tls / "client.key").chmod(0o600)
    return write_site(tmp_path, "mqtt://127.0.0.1:1", sensors=sensors, extra_ot=(
        f"    tls: {{ca_file: {tls / 'ca.pem'}, cert_file: {tls / 'client.pem'},\n"
        f"           key_file: {tls / 'client.key'}}}\n"))


def line_of(cfg: Path, text: str) -> int:
    return next(i for i, ln in enumerate(cfg.read_text().splitlines(), 1) if text in ln)


def test_good_files_pass(tmp_path: Path) -> None:
    r = check_config(tls_site(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "hardware, network and time: edge-agent doctor" in r.stdout


def test_an_empty_pem_file_is_a_located_problem(tmp_path: Path) -> None:
    cfg = tls_site(tmp_path)
    (tmp_path / "tls" / "ca.pem").write_text("")
    r = check_config(cfg)
    assert r.returncode == 1
    assert (f"{cfg}:{line_of(cfg, 'ca_file')}: channels.ot.tls.ca_file: "
            f"{tmp_path / 'tls' / 'ca.pem'}: the file is empty") in r.stderr, r.stderr


def test_a_client_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    cfg = tls_site(tmp_path)
    (tmp_path / "tls" / "client.key").chmod(0o644)
    r = check_config(cfg)
    assert r.returncode == 1
    assert f"{cfg}:{line_of(cfg, 'key_file')}: channels.ot.tls.key_file: " in r.stderr
    assert f"chmod 600 {tmp_path / 'tls' / 'client.key'}" in r.stderr


def test_a_missing_dlms_key_file_is_refused(tmp_path: Path) -> None:
    keys = tmp_path / "meter.keys"
    cfg = write_site(tmp_path, "mqtt://127.0.0.1:1",
                     sensors=f"  - {{id: han, type: dlms-hdlc, key_file: {keys}}}\n")
    r = check_config(cfg)
    assert r.returncode == 1
    assert f"{cfg}:{line_of(cfg, 'id: han')}: sensors[0].key_file: {keys}: not found" in r.stderr


def test_no_sensors_is_a_warning(tmp_path: Path) -> None:
    r = check_config(write_site(tmp_path, "mqtt://127.0.0.1:1"))
    assert r.returncode == 0, r.stderr
    assert "WARNING" in r.stdout and "sensors: no sensors" in r.stdout


def test_doctor_runs_every_check_when_the_config_has_problems(tmp_path: Path) -> None:
    cfg = write_site(tmp_path, "mqtt://127.0.0.1:1", sensors=(
        "  - {id: a, type: button, pin: 17}\n"
        "  - {id: b, type: door, pin: 17}\n"))  # a config problem: one pin, two sensors
    checks = {c.name: c for c in doctor.run_checks(cfg, timeout=0.2,
                                                   run=lambda cmd: (1, ""))}
    assert checks["config"].status == FAIL and "GPIO pin 17" in checks["config"].detail
    for name in ("key ot", "state dir", "disk", "broker ot 127.0.0.1:1", "clock", "service"):
        assert name in checks, (name, sorted(checks))


def test_doctor_prints_each_fix_once() -> None:
    fix = "add the user to group dialout: usermod -aG dialout edge-agent"
    out = io.StringIO()
    doctor.format_checks([Check("serial a", FAIL, "/dev/ttyUSB0: no access", fix),
                          Check("serial b", FAIL, "/dev/ttyUSB1: no access", fix)], out)
    assert out.getvalue().count(fix) == 1 and "fix: as above" in out.getvalue()
