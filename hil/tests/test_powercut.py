"""Power cuts on a real filesystem: every accepted reading arrives, gaps only as reported."""

from __future__ import annotations

import json
import random
import time
from pathlib import Path

import pytest

from edge_agent.tools.consumer import Consumer

from .readings import missing, reported, wait_drained
from .rig import Rig, sensor_lines


@pytest.mark.lg_feature("power_switch")
def test_power_cuts_lose_nothing_accepted(agent: Rig, ot: Consumer, long_run: bool,
                                          cut_budget: float, workdir: Path) -> None:
    planned = 100 if long_run else 10
    progress = workdir / "powercut-progress.jsonl"  # one line per cycle, as it happens
    progress.unlink(missing_ok=True)
    agent.install_site(sensor_lines(
        "{id: gen, type: load, channel: ot, rate: 50, chunk: 0.1}",
        "{id: sos, type: load, channel: ot, priority: alarm, rate: 2, chunk: 0.5}"))
    agent.sh("systemctl enable edge-agent").check("enable")
    # a store of its own: sequence numbers from 1, none accepted before this subscriber
    agent.sh(f"rm -rf {agent.state_dir}/*").check("fresh state")
    agent.start()
    rng = random.Random(20261130)
    boots: list[float] = []
    cut_after: list[float] = []
    cycle_s: list[float] = []
    began = time.monotonic()
    def count() -> int:
        return sum(b - a + 1 for a, b in ot.received())

    for cycle in range(planned):
        if cut_budget and time.monotonic() - began > cut_budget:
            break
        cycle_start = time.monotonic()
        seen = count()
        deadline = time.monotonic() + 120
        while count() <= seen and time.monotonic() < deadline:
            time.sleep(0.2)  # the agent is up and delivering before the next cut
        if count() <= seen:
            state = agent.sh("systemctl status edge-agent --no-pager; journalctl -b -u "
                             "edge-agent -o cat --no-pager | tail -30").out
            raise AssertionError(f"no progress after boot {cycle}\n{state}")
        wait = rng.uniform(0.2, 4.0)
        time.sleep(wait)
        cut_after.append(round(wait, 2))
        agent.power_cut()
        boots.append(agent.boot())  # the unit is enabled: it starts at boot by itself
        cycle_s.append(time.monotonic() - cycle_start)
        with progress.open("a") as f:
            f.write(json.dumps({"cycle": cycle + 1, "cut_after_s": round(wait, 2),
                                "boot_s": round(boots[-1], 1),
                                "cycle_s": round(cycle_s[-1], 1), "received": count(),
                                "elapsed_s": round(time.monotonic() - began)}) + "\n")
    assert boots, "no power cut made within the budget"
    top = wait_drained(ot, timeout=180)
    holes = missing(ot, top)
    rep = reported(ot)
    received = ot.received()
    figures = {
        "cycles": len(boots), "planned": planned, "accepted_top": top,
        "received": received.count(),
        "reported_count": rep.count(), "reported_ranges": [list(r) for r in rep],
        "missing": holes, "duplicates": ot.snapshot().duplicates,
        "cut_after_s": {"min": min(cut_after), "max": max(cut_after)},
        "boot_s": {"min": round(min(boots), 1), "max": round(max(boots), 1),
                   "mean": round(sum(boots) / len(boots), 1)},
        "cycle_s_mean": round(sum(cycle_s) / len(cycle_s), 1),
        "wall_s": round(time.monotonic() - began),
    }
    print("power-cut figures:", json.dumps(figures))
    (workdir / "powercut-figures.json").write_text(json.dumps(figures, indent=1) + "\n")
    assert top > 0
    assert holes == [], f"accepted readings neither delivered nor reported: {holes}"
