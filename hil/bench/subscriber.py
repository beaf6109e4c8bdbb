"""The independent subscriber of the end-to-end benchmarks (its own process, its own GIL).

    python -m hil.bench.subscriber PORT PREFIX EXPECT

The city platform's side: ``edge_agent.tools.consumer.Consumer`` on ``PREFIX/#`` (data,
alarm, status, health; QoS 1), checking every envelope and keeping the received sequence
ranges. Prints one JSON object per line on stdout:

- ``{"event": "ready"}`` once subscribed;
- ``{"event": "first", "t": WALL}`` at the first data or alarm message;
- ``{"event": "done", "t": WALL}`` when every sequence number 1..EXPECT has arrived
  (EXPECT 0: never);
- ``{"event": "progress", ...}`` about once a second;
- ``{"event": "final", ...}`` when the parent closes stdin: counts, duplicates, envelope
  errors, this process's CPU-seconds, and every alarm record as ``[t, receipt]`` (its own
  SenML time and the wall-clock receipt time, same host clock).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys
import threading
import time
from typing import Any

from edge_agent.tools.consumer import Consumer

_out = threading.Lock()


def say(obj: dict[str, Any]) -> None:
    with _out:
        sys.stdout.write(json.dumps(obj) + "\n")
        sys.stdout.flush()


def main(argv: list[str]) -> None:
    port, prefix, expect = int(argv[0]), argv[1], int(argv[2])
    state: dict[str, Any] = {"readings": 0, "messages": 0, "first": None, "done": None}
    alarms: list[tuple[float, float]] = []
    consumer: Consumer | None = None

    def on_message(kind: str, msg: dict[str, Any]) -> None:
        if kind not in ("data", "alarm"):
            return
        now = time.time()
        if kind == "alarm":
            bt = 0.0
            for rec in msg.get("senml", []):
                bt = float(rec.get("bt", bt))
                alarms.append((bt + float(rec.get("t", 0.0)), now))
        first, last = msg["seq"]
        state["readings"] += last - first + 1
        state["messages"] += 1
        if state["first"] is None:
            state["first"] = now
            say({"event": "first", "t": now})
        if (expect and state["done"] is None and state["readings"] >= expect
                and consumer is not None and consumer.received().covers(1, expect)):
            state["done"] = now
            say({"event": "done", "t": now})

    consumer = Consumer("127.0.0.1", port, prefix, client_id=f"hil-bench-sub-{os.getpid()}",
                        on_message=on_message, keep_messages=False)
    consumer.start(timeout=30)
    say({"event": "ready"})
    stop = threading.Event()

    def progress() -> None:
        while not stop.wait(1.0):
            say({"event": "progress", "readings": state["readings"],
                 "messages": state["messages"]})

    threading.Thread(target=progress, daemon=True).start()
    sys.stdin.read()  # until the parent closes our stdin
    stop.set()
    consumer.stop()
    rec = consumer.snapshot()
    t = os.times()
    say({"event": "final", "readings": rec.readings, "distinct": rec.ranges.count(),
         "top": rec.ranges.max(), "duplicates": rec.duplicates, "bad": rec.bad[:5],
         "order_violations": rec.lane_order_violations, "messages": state["messages"],
         "cpu_seconds": t.user + t.system, "alarms": alarms})


if __name__ == "__main__":
    main(sys.argv[1:])


class SubscriberProcess:
    """The parent's handle on ``python -m hil.bench.subscriber`` (events read by a thread)."""

    def __init__(self, port: int, prefix: str, expect: int) -> None:
        import subprocess

        from hil.common import PY, REPO

        self.events: dict[str, dict[str, Any]] = {}
        self.readings = 0
        self._cond = threading.Condition()
        self.proc = subprocess.Popen([PY, "-m", "hil.bench.subscriber", str(port), prefix,
                                      str(expect)], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True, cwd=REPO)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self.wait("ready", 40):
            self.close()
            raise RuntimeError("subscriber did not connect and subscribe")

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            ev = json.loads(line)
            with self._cond:
                if ev["event"] == "progress":
                    self.readings = ev["readings"]
                else:
                    self.events[ev["event"]] = ev
                self._cond.notify_all()

    def wait(self, event: str, timeout: float) -> dict[str, Any] | None:
        with self._cond:
            self._cond.wait_for(lambda: event in self.events, timeout)
            return self.events.get(event)

    def close(self) -> dict[str, Any]:
        """Close stdin; return the final report (empty if the process died)."""
        assert self.proc.stdin is not None
        with contextlib.suppress(OSError):
            self.proc.stdin.close()
        final = self.wait("final", 60) or {}
        self.proc.wait(30)
        self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return final
