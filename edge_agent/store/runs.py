"""Opening leased runs: each record of a run read (one ``pread`` for neighbours) and
decrypted, outside the store lock; consecutive opened records joined into one batch (their
SenML arrays made one), a record that does not open splitting the run around it."""

from __future__ import annotations

from collections.abc import Sequence

from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from edge_agent.security.keyring import Keyring
from edge_agent.store import record as rec
from edge_agent.store.segments import RecordRef, SegmentSet
from edge_agent.store.stats import Batch

Failed = tuple[RecordRef, bytes, Exception]
# a leased run (one message) holds at most this many stored bytes (compressed ciphertext)
RUN_BYTES = 256 * 1024


def open_runs(runs: Sequence[Sequence[RecordRef]], keys: Keyring, channel: str
              ) -> tuple[list[Batch], list[tuple[RecordRef, ...]], list[Failed]]:
    """The batches of ``runs``, the runs of more than one record that they came from (to be
    acknowledged as one), and the records that could not be opened (with their bytes)."""
    out: list[Batch] = []
    groups: list[tuple[RecordRef, ...]] = []
    failed: list[Failed] = []
    cached = _KeysOnce(keys)
    for run in runs:
        good: list[tuple[RecordRef, bytes]] = []
        for ref, got in zip(run, SegmentSet.read_many(run), strict=True):
            data = got if isinstance(got, bytes) else b""
            try:
                if isinstance(got, OSError):
                    raise got
                head, pt = rec.open_record(cached, channel, data)
                if head.first != ref.first or head.lane != ref.lane:
                    raise rec.RecordCorrupt("record moved")
            except (OSError, rec.RecordCorrupt, rec.RecordUnreadable) as exc:
                failed.append((ref, data, exc))
                _emit(good, out, groups)
                good = []
                continue
            good.append((ref, pt))
        _emit(good, out, groups)
    return out, groups, failed


class _KeysOnce:
    """The keyring's answers for one call of ``open_runs``: asked once per key id, not
    once per record (the keyring takes its lock for every question)."""

    __slots__ = ("_got", "_keys")

    def __init__(self, keys: Keyring) -> None:
        self._keys = keys
        self._got: dict[int, AESGCM | None] = {}

    def get(self, key_id: int) -> AESGCM | None:
        try:
            return self._got[key_id]
        except KeyError:
            aead = self._got[key_id] = self._keys.get(key_id)
            return aead


def _emit(good: list[tuple[RecordRef, bytes]], out: list[Batch],
          groups: list[tuple[RecordRef, ...]]) -> None:
    """One batch from consecutive opened records (JSON arrays joined into one)."""
    if not good:
        return
    first, last = good[0][0], good[-1][0]
    if len(good) == 1:
        out.append(Batch(first.lane, first.first, first.last, good[0][1]))
        return
    senml = b"[" + b",".join(pt.strip()[1:-1] for _, pt in good) + b"]"
    out.append(Batch(first.lane, first.first, last.last, senml))
    groups.append(tuple(ref for ref, _ in good))
