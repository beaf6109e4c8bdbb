"""`edge-agent demo --duration` end to end: brokers, agent on emulated devices, live view."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import EDGE_AGENT


def test_demo_runs_and_both_channels_receive() -> None:
    out = subprocess.run([EDGE_AGENT, "demo", "--duration", "22"], capture_output=True,
                         text=True, timeout=120)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert any(line.startswith("[OT] seq ") and "meter-main/" in line for line in lines)
    assert any(line.startswith("[IT] seq ") and "climate-living/temperature=" in line
               for line in lines)
    assert any(line.startswith("[IT] ALARM seq ") and "sos-button/pressed" in line
               for line in lines), out.stdout[-3000:]
    # the scripted inactivity window: a caution 10 s after the last press, under the pseudonym
    assert any(line.startswith("[IT] ALARM seq ") and "/welfare/inactivity/level=caution" in line
               and "resident" not in line for line in lines), out.stdout[-3000:]
    for label in ("OT", "IT"):
        summary = next(line for line in lines if line.startswith(f"demo: {label}: "))
        assert re.search(r"gaps none", summary), summary
        assert int(summary.split(": ")[2].split()[0]) > 0
    assert "demo: agent exited with 0" in lines
    assert '"category"' not in out.stderr  # audit events go to the journal, not the terminal


CONFIGS = sorted((Path(__file__).resolve().parents[1] / "configs").glob("*.yaml"))


@pytest.mark.parametrize("site", CONFIGS, ids=[p.stem for p in CONFIGS])
def test_demo_runs_each_shipped_site_file_on_throwaway_keys(site: Path) -> None:
    """Every shipped site file runs as written on emulated hardware: its brokers, TLS
    files and keys replaced by throwaway ones (said so first), readings reaching the
    platform's side on every channel that has sensors."""
    # the demo site's window is 10 s: long enough a run shows its welfare event
    seconds = "24" if site.stem == "demo" else "12"  # a meter's first push can take 5 s
    env = dict(os.environ, EDGE_NODE="pi-demo-test")
    out = subprocess.run([EDGE_AGENT, "demo", "--config", str(site), "--duration", seconds],
                         capture_output=True, text=True, timeout=180, env=env)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    lines = out.stdout.splitlines()
    assert lines[0].startswith(f"demo: running {site} on THIS machine, not on its node")
    assert "throwaway keys and certificates" in lines[0]
    assert any("TLS with a throwaway CA" in line for line in lines)
    channels = re.findall(r"^  (ot|it):", site.read_text(), re.M)
    received = 0
    for ch in channels:
        summary = next(line for line in lines if line.startswith(f"demo: {ch.upper()}: ")
                       and "readings received" in line)
        received += int(summary.split(": ")[2].split()[0])
        assert "gaps none" in summary and "rejected 0" in summary, summary
    assert received > 0
    # the site's IT sensors report on IT (a site with health sensors must show them there)
    if "channel: it" in site.read_text() or "subject:" in site.read_text():
        it = next(line for line in lines if line.startswith("demo: IT: ")
                  and "readings received" in line)
        assert int(it.split(": ")[2].split()[0]) > 0, it
    if "mqtts://" in site.read_text():  # a real site: its own brokers are not contacted
        assert "city.example" not in out.stderr
    if site.stem == "demo":
        assert any(line.startswith("[IT] ALARM seq ")
                   and "/welfare/inactivity/level=caution" in line for line in lines), \
            out.stdout[-3000:]
    assert '"category"' not in out.stderr


def test_demo_refuses_a_site_file_with_problems_as_check_config_says(tmp_path: Path) -> None:
    site = tmp_path / "site.yaml"
    text = (Path(__file__).resolve().parents[1] / "configs" / "meter-room.yaml").read_text()
    site.write_text(text.replace("    version: \"5\"", "    versoin: \"5\""))
    env = dict(os.environ, EDGE_NODE="pi-demo-test")
    demo = subprocess.run([EDGE_AGENT, "demo", "--config", str(site), "--duration", "5"],
                          capture_output=True, text=True, timeout=120, env=env)
    check = subprocess.run([EDGE_AGENT, "check-config", str(site)], capture_output=True,
                           text=True, timeout=120, env=env)
    assert demo.returncode == 1 and check.returncode == 1
    wanted = [line for line in check.stderr.splitlines() if "versoin" in line]
    assert wanted and all(line in demo.stderr.splitlines() for line in wanted), demo.stderr
    # the certificates not installed here are check-config's business, not the demo's
    assert "tls.ca_file" in check.stderr and "tls.ca_file" not in demo.stderr
    assert "Traceback" not in demo.stderr and "demo: running" not in demo.stdout
