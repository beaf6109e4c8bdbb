"""Power cuts on a real filesystem: every accepted reading arrives, gaps only as reported."""

from __future__ import annotations

import json
import random
import time

import pytest

from edge_agent.tools.consumer import Consumer

from .readings import missing, reported, wait_drained
from .rig import Rig, sensor_lines


@pytest.mark.lg_feature("power_switch")
def test_power_cuts_lose_nothing_accepted(agent: Rig, ot: Consumer, long_run: bool) -> None:
    cycles = 100 if long_run else 10
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
    def count() -> int:
        return sum(b - a + 1 for a, b in ot.received())

    for cycle in range(cycles):
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
    top = wait_drained(ot, timeout=180)
    holes = missing(ot, top)
    rep = reported(ot)
    figures = {
        "cycles": cycles, "accepted_top": top, "received": sum(b - a + 1 for a, b in
                                                               ot.received()),
        "reported_ranges": [list(r) for r in rep], "missing": holes,
        "duplicates": ot.snapshot().duplicates,
        "boot_s": {"min": round(min(boots), 1), "max": round(max(boots), 1),
                   "mean": round(sum(boots) / len(boots), 1)},
    }
    print("power-cut figures:", json.dumps(figures))
    assert top > 0
    assert holes == [], f"accepted readings neither delivered nor reported: {holes}"
