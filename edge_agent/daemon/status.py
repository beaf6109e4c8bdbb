"""``edge-agent status``: what the running daemon is doing, from its status file.

The daemon opens no listening socket. Instead it writes ``<state_dir>/status.json``
(mode 0600, atomically: temporary file + rename) every few seconds, and once more,
``"state": "stopped"``, when it stops. This module builds that snapshot (daemon side)
and reads and prints it (technician side), saying plainly when the daemon is not
running or the file is stale.

The file is plaintext at rest, so it holds no health value: for a sensor on the IT
channel only counts, times, states and fault kinds (``last`` says when, not what; error
texts are scrubbed, see ``edge_agent.security.redact``). ``keys shred --all`` removes it.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import IO, Any

from edge_agent.core.fsutil import atomic_write
from edge_agent.security import redact

STATUS_FILE = "status.json"
FORMAT = 1


# ---------------------------------------------------------------------- daemon side

def snapshot(agent: Any, *, state: str, config: Path | None, started_at: float,
             interval: float, liveness: dict[str, Any] | None = None,
             reload: dict[str, Any] | None = None) -> dict[str, Any]:
    """The status document of a running :class:`edge_agent.daemon.runtime.Agent`."""
    now = time.time()
    cfg = agent.cfg
    channels: dict[str, Any] = {}
    for ch in cfg.channels:
        health = agent.health(ch)
        store, up = health["store"], agent.uplinks[ch].stats
        oldest = store["oldest_undelivered"]
        channels[ch.value] = {
            "connected": bool(up.connected),
            "broker": up.broker,
            "brokers": [str(b) for b in cfg.channels[ch].brokers],
            "last_error": up.last_error,
            "backlog": dict(store["backlog"]),
            "backlog_total": sum(store["backlog"].values()),
            "oldest_undelivered": oldest,
            "oldest_undelivered_age": None if oldest is None else max(0.0, now - oldest),
            "last_publish": up.last_publish,
            "published_readings": up.published_readings,
            "published_messages": up.published_messages,
            "rejected_messages": up.rejected_messages,
            "connects": up.connects,
            "connect_failures": up.connect_failures,
            "inflight": up.inflight,
            "next_seq": store["next_seq"],
            "bytes_on_disk": store["bytes"],
            "accepted": store["accepted"],
            "not_accepted": store["not_accepted"],
            "evicted": dict(store["evicted"]),
            "evicted_ranges": store["evicted_ranges"],
            "quarantined": store["quarantined"],
            "dead_letters": store["dead_letters"],
            "dead_dropped": store.get("dead_dropped", 0),
            "dead_dropped_ranges": store.get("dead_dropped_ranges", []),
            "quarantine_dropped": store.get("quarantine_dropped", 0),
            "ingest": dict(health.get("ingest") or {}),
            "cert_expiry_days": health["cert_expiry"],
            "security": health["security"],
        }
    sensors: dict[str, Any] = {}
    last_readings = getattr(agent, "last_readings", {})
    for runner in agent.sensors:
        s = runner.sensor
        t = runner.thread
        ch = s.spec.channel
        entry: dict[str, Any] = {
            "type": s.spec.type, "channel": ch.value,
            "alive": bool(t is not None and t.is_alive()),
            "restarts": runner.restarts,
            "readings": s.stats.readings,
            "errors": dict(s.stats.errors),
            "last_error": redact.error_text(ch, s.stats.last_error),
            "last_error_kind": s.stats.last_error_kind,
            "last_value_time": s.stats.last_value_time,
            "dropped": agent.privacy.dropped_for(s.id),
        }
        r = last_readings.get(s.id)
        if r is not None and redact.holds_values(ch):
            # a health value never rests in plaintext: when, not what (nor which reading)
            entry["last"] = {"time": r.time, "withheld": True}
        elif r is not None:
            entry["last"] = {"name": r.name, "value": r.value, "unit": r.unit, "time": r.time}
        sensors[s.id] = entry
    configured = {sc.id for sc in cfg.sensors if sc.enabled}
    for sid in sorted(configured - set(sensors)):
        sensors[sid] = {"type": next(sc.type for sc in cfg.sensors if sc.id == sid),
                        "alive": False, "restarts": 0, "readings": 0, "errors": {},
                        "last_error": "could not be started (see the log)"}
    return {
        "format": FORMAT, "pid": os.getpid(), "state": state, "written_at": now,
        "started_at": started_at, "interval": interval,
        "config": None if config is None else str(config),
        "site": cfg.site, "node": cfg.node, "hardware": cfg.hardware,
        "state_dir": str(cfg.state_dir),
        "liveness": liveness or {}, "reload": reload or {},
        "channels": channels, "sensors": sensors,
    }


def write_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same directory and a rename,
    so a reader never sees half a file. The file gets exactly ``mode`` (umask aside)."""
    # rewritten every few seconds and worthless after a power cut: whole, not synced
    atomic_write(path, text.encode("utf-8"), mode, durable=False)


def write_status(state_dir: Path, doc: dict[str, Any]) -> Path:
    path = state_dir / STATUS_FILE
    write_atomic(path, json.dumps(doc, default=str, indent=1) + "\n")
    return path


# ---------------------------------------------------------------------- technician side

def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, another user's
    except OSError:
        return False
    return True


def read_status(state_dir: Path, now: float | None = None) -> tuple[str, dict[str, Any] | None]:
    """(verdict, document). Verdict: running, stale, stopped, not-running, unreadable, missing."""
    path = state_dir / STATUS_FILE
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "missing", None
    except PermissionError:
        return "unreadable", None
    except (OSError, ValueError):
        return "unreadable", None
    if not isinstance(doc, dict):
        return "unreadable", None
    now = time.time() if now is None else now
    if doc.get("state") == "stopped":
        return "stopped", doc
    pid = doc.get("pid")
    if isinstance(pid, int) and not pid_alive(pid):
        return "not-running", doc
    age = now - float(doc.get("written_at", 0.0))
    if age > 3 * float(doc.get("interval", 2.0)) + 5.0:
        return "stale", doc
    return "running", doc


def _ago(t: float | None, now: float) -> str:
    if t is None:
        return "never"
    return f"{_dur(now - t)} ago"


def _dur(s: float) -> str:
    s = max(0.0, s)
    if s < 120:
        return f"{s:.0f}s"
    if s < 7200:
        return f"{s / 60:.0f}m"
    if s < 172800:
        return f"{s / 3600:.1f}h"
    return f"{s / 86400:.1f}d"


VERDICTS = {
    "running": "running",
    "stale": "NOT RESPONDING: the status file is stale (daemon hung, or killed without cleanup)",
    "stopped": "NOT RUNNING: the daemon stopped cleanly",
    "not-running": "NOT RUNNING: the daemon that wrote this status is gone",
}


def format_status(verdict: str, doc: dict[str, Any], out: IO[str],
                  now: float | None = None) -> None:
    now = time.time() if now is None else now
    written = float(doc.get("written_at", 0.0))
    print(f"edge-agent {doc.get('site')}/{doc.get('node')} ({doc.get('hardware')}): "
          f"{VERDICTS.get(verdict, verdict)}", file=out)
    print(f"  pid {doc.get('pid')}, up {_dur(written - float(doc.get('started_at', written)))}, "
          f"status written {_ago(written, now)}, config {doc.get('config')}", file=out)
    rl = doc.get("reload") or {}
    if rl:
        ok = "applied" if rl.get("ok") else f"REJECTED ({rl.get('error')})"
        print(f"  last reload {_ago(rl.get('time'), now)}: {ok}", file=out)
    live = doc.get("liveness") or {}
    if live.get("problems"):
        for p in live["problems"]:
            print(f"  NOT ALIVE: {p} (watchdog pings withheld)", file=out)
    for name, c in (doc.get("channels") or {}).items():
        conn = f"connected to {c.get('broker')}" if c.get("connected") else "DISCONNECTED"
        print(f"channel {name}: {conn}", file=out)
        if not c.get("connected") and c.get("last_error"):
            print(f"  last error: {c['last_error']}", file=out)
        lanes = ", ".join(f"{k} {v}" for k, v in (c.get("backlog") or {}).items())
        age = c.get("oldest_undelivered_age")
        oldest = "none" if age is None else _dur(float(age)) + " old"
        print(f"  backlog: {c.get('backlog_total', 0)} readings ({lanes}); "
              f"oldest undelivered: {oldest}", file=out)
        print(f"  last publish: {_ago(c.get('last_publish'), now)}; published "
              f"{c.get('published_readings', 0)} readings; next seq {c.get('next_seq')}", file=out)
        ev = c.get("evicted") or {}
        evs = ", ".join(f"{k} {v}" for k, v in ev.items() if v) or "none"
        print(f"  evicted: {evs}; quarantined files: {c.get('quarantined', 0)}; "
              f"dead letters: {c.get('dead_letters', 0)}; rejected: "
              f"{c.get('rejected_messages', 0)}", file=out)
        if c.get("dead_dropped") or c.get("quarantine_dropped"):
            ranges = ", ".join(f"{r[0]}..{r[1]}" for r in c.get("dead_dropped_ranges") or [])
            print(f"  kept-aside files deleted to stay within the store budget: "
                  f"{c.get('dead_dropped', 0)} dead letters"
                  + (f" (seq {ranges})" if ranges else "")
                  + f", {c.get('quarantine_dropped', 0)} quarantined files", file=out)
        ingest = c.get("ingest") or {}
        if ingest.get("dropped_alarms") or ingest.get("displaced_readings"):
            print(f"  ingest queue full: {ingest.get('dropped_alarms', 0)} ALARMS DROPPED, "
                  f"{ingest.get('displaced_readings', 0)} normal readings dropped to make room "
                  "for alarms", file=out)
        if c.get("cert_expiry_days") is not None:
            print(f"  certificate expires in {float(c['cert_expiry_days']):.0f} days", file=out)
    sensors = doc.get("sensors") or {}
    if sensors:
        print("sensors:", file=out)
    for sid, s in sensors.items():
        state = "ok" if s.get("alive") else "DOWN"
        last = s.get("last")
        value = "no reading yet"
        if last and last.get("withheld"):
            value = f"last reading {_ago(last.get('time'), now)} (value sealed: health data)"
        elif last:
            unit = f" {last['unit']}" if last.get("unit") else ""
            value = f"{last['name']}={last['value']}{unit} ({_ago(last.get('time'), now)})"
        line = f"  {sid} [{s.get('type')}] {state}: {value}; {s.get('readings', 0)} readings"
        if s.get("restarts"):
            line += f", {s['restarts']} restarts"
        print(line, file=out)
        if s.get("last_error"):
            print(f"    last error: {s['last_error']}", file=out)


def run_status(state_dir: Path, as_json: bool, out: IO[str], err: IO[str]) -> int:
    """Exit 0 when the daemon is running and fresh, 3 when not running or stale (LSB)."""
    verdict, doc = read_status(state_dir)
    if doc is None:
        why = {"missing": "no status file: the daemon is not running (or never started) "
                          "with this state_dir",
               "unreadable": "status file exists but cannot be read: run as root or as the "
                             "edge-agent user (sudo edge-agent status)"}[verdict]
        if as_json:
            print(json.dumps({"verdict": verdict, "path": str(state_dir / STATUS_FILE),
                              "message": why}), file=out)
        else:
            print(f"{state_dir / STATUS_FILE}: {why}", file=err)
        return 4 if verdict == "unreadable" else 3
    if as_json:
        age = time.time() - float(doc.get("written_at", 0.0))
        print(json.dumps({"verdict": verdict, "age": round(age, 1), **doc}, default=str),
              file=out)
    else:
        format_status(verdict, doc, out)
    return 0 if verdict == "running" else 3
