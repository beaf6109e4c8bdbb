"""A few simulated resident-months through the rules meet the targets (hil/welfare)."""

from __future__ import annotations

from hil.welfare.evaluate import evaluate, table, targets_met


def test_a_few_resident_months_meet_the_targets() -> None:
    sc = evaluate(months=2, seed=7)
    assert targets_met(sc) == [], table(sc)
    kinds = {o.kind for o in sc.outcomes}
    assert kinds >= {"fall", "fall_recovered", "inactivity/caution", "not_back", "heat"}
    assert sc.months_free == 2 and sc.false_alarm == 0
