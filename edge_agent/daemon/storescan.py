"""The thread that scans what a channel store found at open, after READY=1.

The store opens in constant time (numbering, keys, the newest segment of each lane) and
holds each lane at its oldest unscanned segment; this thread runs ``ChannelStore.recover``
to scan the rest, one segment at a time, waking the uplink after each one so the old
backlog starts draining as soon as its first segment is indexed. A failure (a segment
file that cannot be read) is kept in ``error`` for the supervisor, as a writer's is.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from edge_agent.store.channel_store import ChannelStore


class StoreScan:
    def __init__(self, store: ChannelStore, stop: threading.Event,
                 progress: Callable[[], None], done: Callable[[], None]) -> None:
        self.store = store
        self._stop = stop
        self._progress = progress  # after each segment (the uplink's notify)
        self._done = done  # once every segment is scanned
        self.error: BaseException | None = None
        self.finished = False
        self.log = logging.getLogger(f"edge_agent.storescan.{store.channel.value}")
        self.thread = threading.Thread(target=self._run,
                                       name=f"scan-{store.channel.value}", daemon=True)

    def _run(self) -> None:
        try:
            self.finished = self.store.recover(self._stop, progress=self._progress)
            if self.finished:
                self._done()
        except Exception as exc:
            self.error = exc
            self.log.exception("store scan failed")
