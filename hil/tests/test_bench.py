"""The store's CPU cost on the rig's CPU beside this machine's (hil/bench/NOTES.md, "A Pi
3/4 figure from CPU-seconds"): ``python -m hil.bench.ingest 200000 10000 500`` in the
guest, with the installed agent's interpreter and the payload's copy of ``hil/``, then
the same here. On the arm64 rig the guest's CPU is qemu's TCG translator on this host,
not a Cortex-A72: its figure bounds a Pi's slowness from above, it is not a Pi figure.
The figures go into the JUnit file as properties."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable

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
def test_ingest_cpu_seconds_per_million(rig: Rig,
                                        record_property: Callable[[str, object], None]
                                        ) -> None:
    guest = _figures(rig.sh(f"cd {PAYLOAD}/repo && {GUEST_PY} -m hil.bench.ingest "
                            + " ".join(ARGS), timeout=3600).check("guest hil.bench.ingest"))
    host = _figures(subprocess.run([sys.executable, "-m", "hil.bench.ingest", *ARGS],
                                   cwd=REPO, capture_output=True, text=True, check=True,
                                   timeout=600).stdout)
    for where, fig in (("guest", guest), ("host", host)):
        for key in ("store", "store_cpu_s_per_m", "sqlite_batched", "sqlite_naive"):
            record_property(f"{where}_{key}", round(fig[key], 3))
    ratio = guest["store_cpu_s_per_m"] / host["store_cpu_s_per_m"]
    record_property("cpu_ratio_guest_to_host", round(ratio, 2))
    assert guest["store"] > 0 and host["store"] > 0
    assert guest["store_cpu_s_per_m"] > 0 and host["store_cpu_s_per_m"] > 0
