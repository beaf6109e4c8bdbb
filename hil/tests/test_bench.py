"""The store's CPU cost on the rig's CPU beside this machine's (hil/bench/NOTES.md, "A Pi
3/4 figure from CPU-seconds"): ``python -m hil.bench.ingest 200000 10000 500`` in the
guest, with the installed agent's interpreter and the payload's copy of ``hil/``, then
the same here. On the arm64 rig the guest's CPU is qemu's TCG translator on this host,
not a Cortex-A72: its figure bounds a Pi's slowness from above, it is not a Pi figure.
The figures go into the JUnit file (test-suite properties) and ``ingest-figures.json`` in
the suite's work directory."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from hil.common import REPO

from .rig import Rig
from .vm_rig import PAYLOAD

ARGS = ("200000", "10000", "500")
GUEST_PY = "/opt/edge-agent/venv/bin/python"  # systemd/install.sh's venv


def _figures(out: str) -> dict[str, float]:
    line = next((x for x in reversed(out.splitlines()) if x.startswith("{")), "")
    if not line:
        raise AssertionError(f"no JSON line from hil.bench.ingest:\n{out[-2000:]}")
    return {k: float(v) for k, v in json.loads(line).items()}


@pytest.mark.lg_feature("ingest_bench")
def test_ingest_cpu_seconds_per_million(
        rig: Rig, workdir: Path, record_testsuite_property: Callable[[str, object], None]
) -> None:
    guest = _figures(rig.sh(f"cd {PAYLOAD}/repo && {GUEST_PY} -m hil.bench.ingest "
                            + " ".join(ARGS), timeout=3600).check("guest hil.bench.ingest"))
    host = _figures(subprocess.run([sys.executable, "-m", "hil.bench.ingest", *ARGS],
                                   cwd=REPO, capture_output=True, text=True, check=True,
                                   timeout=600).stdout)
    figures = {f"{where}_{key}": round(fig[key], 3)
               for where, fig in (("guest", guest), ("host", host))
               for key in ("store", "store_cpu_s_per_m", "sqlite_batched", "sqlite_naive")}
    figures["cpu_ratio_guest_to_host"] = round(
        guest["store_cpu_s_per_m"] / host["store_cpu_s_per_m"], 2)
    figures["host_load_average"] = round(os.getloadavg()[0], 2)
    rig_seconds = workdir / "vm" / "rig-seconds.json"  # the vm rig's first boot, install.sh
    if rig_seconds.exists():
        figures.update({f"rig_{k}_s": v for k, v in json.loads(rig_seconds.read_text()).items()})
    for key, value in figures.items():
        record_testsuite_property(f"ingest_{key}", value)
    (workdir / "ingest-figures.json").write_text(json.dumps(figures) + "\n")
    assert guest["store"] > 0 and host["store"] > 0
    assert guest["store_cpu_s_per_m"] > 0 and host["store_cpu_s_per_m"] > 0
