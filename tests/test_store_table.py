"""The record table's bulk paths (recovery and index files) against its one-record paths,
and the index file's encoding (store/table.py, store/segindex.py)."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.store import segindex
from edge_agent.store.table import GONE, RecordTable

Row = tuple[int, int, int, int, float, int]


@st.composite
def tables(draw: st.DrawFn) -> list[Row]:
    """Rows as a writer makes them: numbers ascending with gaps (other lanes' numbers),
    records back to back from offset 0."""
    n = draw(st.integers(0, 60))
    rows: list[Row] = []
    seq, off = draw(st.integers(1, 1000)), 0
    for _ in range(n):
        count = draw(st.integers(1, 5))
        size = draw(st.integers(52, 400))
        rows.append((seq, count, off, size, 1.7e9 + seq, draw(st.integers(0, 3))))
        seq += count + draw(st.sampled_from([0, 0, 0, 1, 7]))
        off += size
    return rows


def one_by_one(rows: list[Row]) -> RecordTable:
    t = RecordTable()
    for r in rows:
        t.append(*r)
    return t


@settings(max_examples=80, deadline=None)
@given(tables(), st.lists(st.tuples(st.integers(0, 1400), st.integers(0, 40)), max_size=4))
def test_bulk_paths_match_the_one_record_paths(rows: list[Row],
                                               gone: list[tuple[int, int]]) -> None:
    ref = one_by_one(rows)
    bulk = RecordTable()
    bulk.extend(rows)
    length = sum(r[3] for r in rows)
    cols = segindex.decode(segindex.encode(ref, length), length)
    assert cols is not None and len(cols) == len(rows)
    loaded = RecordTable.of_columns(cols.firsts, cols.counts, cols.offsets, cols.sizes,
                                    cols.oldest, cols.keys)
    for t in (bulk, loaded):
        assert list(t.firsts) == list(ref.firsts) and list(t.keys) == list(ref.keys)
        assert list(t.offsets) == list(ref.offsets) and list(t.oldest) == list(ref.oldest)
        assert (t.live, t.readings) == (ref.live, ref.readings)
    # runs: every number of every record, merged where records touch
    covered = {n for r in rows for n in range(r[0], r[0] + r[1])}
    assert {n for a, b in loaded.runs() for n in range(a, b + 1)} == covered
    assert all(b + 1 < c for (_, b), (c, _) in zip(loaded.runs(), loaded.runs()[1:],
                                                  strict=False))
    # records wholly within a dropped range leave; the others stay pending
    for a, length_ in gone:
        loaded.drop_within(a, a + length_)
    for i, r in enumerate(rows):
        inside = any(a <= r[0] and r[0] + r[1] - 1 <= a + n for a, n in gone)
        assert (loaded.state[i] == GONE) is inside
    assert loaded.live == sum(1 for s in loaded.state if s != GONE)
    assert loaded.readings == sum(r[1] for i, r in enumerate(rows) if loaded.state[i] != GONE)


def test_extend_refuses_rows_out_of_order() -> None:
    t = RecordTable()
    t.extend([(10, 1, 0, 60, 1.7e9, 1)])
    with pytest.raises(ValueError, match="not in order"):
        t.extend([(10, 1, 60, 60, 1.7e9, 1)])
    with pytest.raises(ValueError, match="not in order"):
        t.extend([(20, 1, 60, 60, 1.7e9, 1), (15, 1, 120, 60, 1.7e9, 1)])
    assert list(t.firsts) == [10]


def test_an_index_is_refused_for_another_length_torn_or_when_the_table_is_not_whole() -> None:
    rows: list[Row] = [(1, 1, 0, 100, 1.7e9, 1), (2, 3, 100, 80, 1.7e9, 1)]
    t = one_by_one(rows)
    blob = segindex.encode(t, 180)
    assert segindex.decode(blob, 180) is not None
    assert segindex.decode(blob, 181) is None  # the segment's length changed
    assert segindex.decode(blob[:-1], 180) is None
    assert segindex.decode(b"", 180) is None
    flipped = bytearray(blob)
    flipped[len(blob) // 2] ^= 0x04
    assert segindex.decode(bytes(flipped), 180) is None
    # a table without the first record does not describe the whole file: not written
    partial = one_by_one(rows[1:])
    assert not segindex.complete(partial.offsets, partial.sizes, 180)
