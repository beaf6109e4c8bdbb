"""RangeSet.count_in against a plain set of the same numbers."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from edge_agent.store.ranges import RangeSet

spans = st.lists(st.tuples(st.integers(1, 200), st.integers(0, 30)), max_size=12)


@given(spans, st.integers(-5, 240), st.integers(0, 80))
def test_count_in_counts_the_members_within_the_range(added: list[tuple[int, int]],
                                                      first: int, width: int) -> None:
    r = RangeSet((a, a + n) for a, n in added)
    members = {x for a, n in added for x in range(a, a + n + 1)}
    last = first + width
    assert r.count_in(first, last) == sum(1 for x in range(first, last + 1) if x in members)


def test_count_in_of_an_empty_range_or_set_is_zero() -> None:
    assert RangeSet().count_in(1, 10) == 0
    assert RangeSet([(1, 10)]).count_in(5, 4) == 0
    assert RangeSet([(1, 10), (20, 30)]).count_in(8, 25) == 3 + 6
