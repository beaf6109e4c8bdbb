"""What a channel store hands out: batches to deliver, and its figures."""

from __future__ import annotations

from dataclasses import dataclass, field

from edge_agent.core.model import Priority


@dataclass(frozen=True)
class Batch:
    """A stored record handed to the uplink: one message's worth of readings."""

    lane: Priority
    first: int
    last: int
    senml: bytes  # JSON array of RFC 8428 records

    @property
    def count(self) -> int:
        return self.last - self.first + 1


@dataclass
class StoreStats:
    channel: str
    next_seq: int
    backlog: dict[str, int]  # readings waiting, per lane label
    backlog_records: int
    bytes_on_disk: int
    inflight_records: int
    oldest_undelivered: float | None
    evicted: dict[str, int]  # readings, per reason
    evicted_recent: list[tuple[int, int, str]] = field(default_factory=list)
    # damage found: files_moved_aside + damaged_segments + unreadable_records
    quarantined: int = 0
    dead_letters: int = 0
    accepted: int = 0
    not_accepted: int = 0
    dead_bytes: int = 0  # kept in dead/
    dead_dropped: int = 0  # dead letters deleted (or never kept) to stay within the budget
    dead_dropped_ranges: list[tuple[int, int]] = field(default_factory=list)
    quarantine_bytes: int = 0
    quarantine_dropped: int = 0  # quarantined files deleted (or never kept), same reason
    files_moved_aside: int = 0  # files in the store that were not its own, moved aside
    damaged_segments: int = 0  # segments with unreadable bytes (cut, kept as evidence)
    unreadable_records: int = 0  # records that failed to open when leased
    journal_failures: int = 0  # journal entries the disk had no room for (reported)
    # segments found at open and not scanned yet: their readings are not in ``backlog``
    # and their files count in ``bytes_on_disk`` by their size on disk
    recovering_segments: int = 0
