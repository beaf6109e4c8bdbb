"""Any sequence of readings: no exception, well-formed events, state survives JSON."""

from __future__ import annotations

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge_agent.welfare.engine import Welfare
from edge_agent.welfare.events import LEVELS, Observation
from edge_agent.welfare.replay import run

from .helpers import T0, site

CFG = site()
TYPES = {s.id: s.type for s in CFG.sensors}
NAMES = ["motion", "open", "presence", "body_movement", "fall", "activity", "power_import",
         "temperature", "pressed", "held", "target_state", "x"]
VALUES = st.one_of(st.booleans(), st.integers(-10**6, 10**6),
                   st.floats(allow_nan=True, allow_infinity=True),
                   st.sampled_from(["moving", "stationary", "none", "both", "held", ""]))
READING = st.builds(
    Observation,
    t=st.one_of(st.floats(T0 - 10**5, T0 + 10**7), st.floats(0, 10**5),
                st.just(float("nan")), st.just(float("inf"))),
    sensor=st.sampled_from([*TYPES, "other"]),
    name=st.sampled_from(NAMES),
    value=VALUES,
    synced=st.booleans())


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(READING, max_size=60), st.integers(0, 60),
       st.floats(T0, T0 + 10**7))
def test_any_readings_no_exception_and_state_round_trips(
        readings: list[Observation], cut: int, until: float) -> None:
    w = Welfare(CFG.welfare, TYPES)
    events = list(run(w, readings[:cut]))
    w2 = Welfare(CFG.welfare, TYPES, w.state_json())  # a restart in the middle
    assert w2.state_json() == w.state_json()
    events += list(run(w2, readings[cut:], until=until))
    raised: set[tuple[str, str]] = set()
    for e in events:
        assert e.level in LEVELS and e.state in ("raised", "resolved")
        key = (e.kind, e.level)
        if e.state == "raised":
            assert key not in raised  # a level is raised once until resolved
            raised.add(key)
        else:
            assert key in raised
            raised.discard(key)
