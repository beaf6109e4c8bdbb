"""`edge-agent demo --duration` end to end: brokers, agent on emulated devices, live view."""

from __future__ import annotations

import re
import subprocess

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
