"""Rate-limited log lines: one line per cause per interval, with a count of those held back.

    limiter = RateLimitedLog(log, clock, interval=60.0)
    limiter.log(logging.ERROR, "rejected", "broker refused seq %d..%d", a, b)

The first line for a cause is written at once; further lines for the same cause within
``interval`` seconds (monotonic clock, injected) are counted, not written. The next line
written for that cause says how many were held back, and ``flush()`` writes a summary for
causes whose interval has passed with lines still held back (so the count of the last
burst is not lost when the burst stops). Counters and totals are for the health message;
the log line is only a pointer. The number of causes is bounded.
"""

from __future__ import annotations

import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass

from edge_agent.core.clock import Clock

MAX_CAUSES = 64


@dataclass
class _Cause:
    since: float  # when the last line for this cause was written
    held: int = 0  # lines not written since then
    template: str = ""  # the last held-back message, for flush()
    level: int = logging.INFO


class RateLimitedLog:
    """Thread-safe. ``log`` returns True when the line was written."""

    def __init__(self, logger: logging.Logger, clock: Clock, interval: float = 60.0,
                 max_causes: int = MAX_CAUSES) -> None:
        if interval < 0:
            raise ValueError("interval must be >= 0")
        self.logger = logger
        self.clock = clock
        self.interval = interval
        self.max_causes = max_causes
        self._lock = threading.Lock()
        self._causes: OrderedDict[str, _Cause] = OrderedDict()
        self.suppressed_total = 0

    def log(self, level: int, cause: str, msg: str, *args: object) -> bool:
        now = self.clock.monotonic()
        with self._lock:
            st = self._causes.get(cause)
            if st is not None and now - st.since < self.interval:
                st.held += 1
                st.level = level
                st.template = msg % args if args else msg
                self.suppressed_total += 1
                return False
            held = st.held if st is not None else 0
            window = now - st.since if st is not None else 0.0
            self._causes[cause] = _Cause(since=now)
            self._causes.move_to_end(cause)
            while len(self._causes) > self.max_causes:
                self._causes.popitem(last=False)
        if held:
            msg += " (%d similar lines suppressed in the last %.0fs)"
            args = (*args, held, window)
        self.logger.log(level, msg, *args, stacklevel=2)
        return True

    def flush(self) -> int:
        """Write one summary line per cause whose interval passed with lines held back.
        Returns the number of lines written."""
        now = self.clock.monotonic()
        due: list[tuple[_Cause, float]] = []
        with self._lock:
            for cause, st in self._causes.items():
                if st.held and now - st.since >= self.interval:
                    due.append((_Cause(st.since, st.held, st.template, st.level),
                                now - st.since))
                    self._causes[cause] = _Cause(since=now)
        for st, window in due:
            self.logger.log(st.level, "%d similar lines suppressed in the last %.0fs; the "
                            "last: %s", st.held, window, st.template)
        return len(due)
