"""Power cuts on a real filesystem: every accepted reading arrives, gaps only as reported."""

from __future__ import annotations

import json
import os
import random
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from edge_agent.store.ranges import RangeSet
from edge_agent.tools.consumer import Consumer

from .readings import last_health, missing, reported, wait_drained
from .rig import Rig, sensor_lines

# A slow guest (TCG on a shared machine, a benchmark beside it) may take minutes from
# power-on to delivering: the rig waits that long before calling a boot failed.
BACK_TIMEOUT = 900.0


def wait_delivering(count: Callable[[], int], seen: int, timeout: float) -> bool:
    """Poll until the subscriber has more distinct readings than ``seen``."""
    deadline = time.monotonic() + timeout
    while count() <= seen:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
    return True


def standing(ot: Consumer) -> dict[str, Any]:
    """Accepted and received so far: the last health message's highest accepted sequence
    number, the ranges the agent reported (``skipped``: reserved before a cut, never used),
    and what the subscriber has."""
    h = last_health(ot) or {}
    top = int(h.get("store", {}).get("next_seq", 1)) - 1
    skipped = RangeSet()
    other = RangeSet()
    for msg in ot.snapshot().health:
        for first, last, why in msg.get("store", {}).get("evicted_ranges", []):
            (skipped if why == "skipped" else other).add(int(first), int(last))
    received = ot.received()
    return {"top_seq": top,
            "accepted": top - skipped.count_in(1, top) if top > 0 else 0,
            "received": received.count(), "reported_other": other.count(),
            "outstanding": sum(b - a + 1 for a, b in missing(ot, top))}


def summary(values: list[float]) -> dict[str, float]:
    return {"min": round(min(values), 1), "median": round(statistics.median(values), 1),
            "max": round(max(values), 1), "mean": round(statistics.fmean(values), 1)}


@pytest.mark.lg_feature("power_switch")
def test_power_cuts_lose_nothing_accepted(agent: Rig, ot: Consumer, planned_cuts: int,
                                          cut_budget: float, cut_log: Path) -> None:
    cut_log.parent.mkdir(parents=True, exist_ok=True)
    cut_log.unlink(missing_ok=True)  # one line per cycle, written as it happens
    agent.install_site(sensor_lines(
        "{id: gen, type: load, channel: ot, rate: 50, chunk: 0.1}",
        "{id: sos, type: load, channel: ot, priority: alarm, rate: 2, chunk: 0.5}"))
    agent.sh("systemctl enable edge-agent").check("enable")
    # a store of its own: sequence numbers from 1, none accepted before this subscriber
    agent.sh(f"rm -rf {agent.state_dir}/*").check("fresh state")
    agent.start()

    def count() -> int:
        return ot.received().count()

    def stuck(what: str) -> AssertionError:
        agent.await_shell()
        state = agent.sh("systemctl status edge-agent --no-pager; journalctl -b -u "
                         "edge-agent -o cat --no-pager | tail -30").out
        return AssertionError(f"{what}\n{state}")

    if not wait_delivering(count, 0, BACK_TIMEOUT):
        raise stuck("no reading delivered after the start")
    rng = random.Random(20261130)
    cut_after: list[float] = []
    backs: list[float] = []
    cycle_s: list[float] = []
    began = time.monotonic()
    for cycle in range(1, planned_cuts + 1):
        if cut_budget and time.monotonic() - began > cut_budget:
            break
        # the node is delivering (the load runs): cut at a random moment from now
        cycle_start = time.monotonic()
        wait = rng.uniform(0.2, 4.0)
        time.sleep(wait)
        agent.power_cut()
        powered = time.monotonic()
        agent.power_on()  # the unit is enabled: it starts at boot by itself
        # what the killed boot had sent is in by now (qemu's start alone takes longer
        # than the broker's hop to the subscriber): more must come from the new boot
        seen = count()
        if not wait_delivering(count, seen, BACK_TIMEOUT):
            raise stuck(f"no reading delivered within {BACK_TIMEOUT:.0f} s of power-on"
                        f" {cycle}")
        now = time.monotonic()
        cut_after.append(wait)
        backs.append(now - powered)
        cycle_s.append(now - cycle_start)
        line = {"cycle": cycle, "utc": time.strftime("%H:%M:%S", time.gmtime()),
                "cut_after_s": round(wait, 2), "boot_s": round(backs[-1], 1),
                "cycle_s": round(cycle_s[-1], 1), **standing(ot),
                "elapsed_s": round(now - began), "load1": round(os.getloadavg()[0], 2)}
        with cut_log.open("a") as f:
            f.write(json.dumps(line) + "\n")
    assert backs, "no power cut made within the budget"
    agent.await_shell()
    # where the last boot's time went, as the guest saw it
    analyze = agent.sh("systemd-analyze; systemd-analyze blame | head -10").out
    top = wait_drained(ot, timeout=BACK_TIMEOUT)
    holes = missing(ot, top)
    rep = reported(ot)
    figures = {
        "cycles": len(backs), "planned": planned_cuts, "accepted_top": top,
        **standing(ot), "reported_count": rep.count(),
        "reported_ranges": [list(r) for r in rep],
        "missing": holes, "duplicates": ot.snapshot().duplicates,
        "cut_after_s": summary(cut_after), "boot_s": summary(backs),
        "cycle_s": summary(cycle_s), "wall_s": round(time.monotonic() - began),
        "last_boot": analyze.splitlines(), "log": str(cut_log),
    }
    print("power-cut figures:", json.dumps(figures))
    cut_log.with_suffix(".figures.json").write_text(json.dumps(figures, indent=1) + "\n")
    assert top > 0
    assert holes == [], f"accepted readings neither delivered nor reported: {holes}"
