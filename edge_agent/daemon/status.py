"""``edge-agent status``: what the running daemon is doing, from its status file.

The daemon opens no listening network socket (its one local unix socket is the live
view's, edge_agent.daemon.watch_socket). For status it writes ``<state_dir>/status.json``
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
from collections.abc import Mapping
from pathlib import Path
from typing import IO, Any

import msgspec

from edge_agent.core.fsutil import atomic_write
from edge_agent.daemon.health import NodeHealth

STATUS_FILE = "status.json"
FORMAT = 2  # 2: the channel's health nested as in the health message (store, uplink, ...)


# ---------------------------------------------------------------------- the file


class Liveness(msgspec.Struct, frozen=True, kw_only=True):
    problems: list[str] = []
    watchdog_interval: float | None = None
    watchdog_pings: int = 0


class Reload(msgspec.Struct, frozen=True, kw_only=True):
    time: float | None = None
    ok: bool = False
    error: str | None = None
    count: int = 0


class StatusFile(NodeHealth, frozen=True, kw_only=True):
    """What ``status.json`` holds: the node's health and the service's own state."""

    format: int
    pid: int
    state: str  # running | stopped
    started_at: float
    interval: float  # seconds between writes
    config: str | None
    liveness: Liveness = msgspec.field(default_factory=Liveness)
    reload: Reload | None = None


def status_file(health: NodeHealth, *, state: str, config: Path | None, started_at: float,
                interval: float, liveness: Liveness | None = None,
                reload: Reload | None = None) -> StatusFile:
    fields = {f: getattr(health, f) for f in health.__struct_fields__}
    return StatusFile(**fields, format=FORMAT, pid=os.getpid(), state=state,
                      started_at=started_at, interval=interval,
                      config=None if config is None else str(config),
                      liveness=liveness or Liveness(), reload=reload)


def snapshot(agent: Any, *, state: str, config: Path | None, started_at: float,
             interval: float, liveness: Liveness | None = None,
             reload: Reload | None = None) -> StatusFile:
    """The status of a running :class:`edge_agent.daemon.runtime.Agent`."""
    return status_file(agent.health_model(), state=state, config=config,
                       started_at=started_at, interval=interval, liveness=liveness,
                       reload=reload)


def parse_status(doc: Any) -> StatusFile:
    """A status document read back (raises StatusFormatError when it is not one)."""
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        found = doc.get("format") if isinstance(doc, dict) else None
        raise StatusFormatError(f"status format {found}, this version reads {FORMAT}")
    try:
        return msgspec.convert(doc, StatusFile)
    except msgspec.ValidationError as exc:
        raise StatusFormatError(str(exc)) from None


class StatusFormatError(ValueError):
    """A status file this version cannot read (another version wrote it, or damage)."""


def write_atomic(path: Path, text: str, mode: int = 0o600) -> None:
    """Write ``text`` to ``path`` via a temporary file in the same directory and a rename,
    so a reader never sees half a file. The file gets exactly ``mode`` (umask aside)."""
    # rewritten every few seconds and worthless after a power cut: whole, not synced
    atomic_write(path, text.encode("utf-8"), mode, durable=False)


def render(status: StatusFile) -> str:
    return msgspec.json.format(msgspec.json.encode(status), indent=1).decode() + "\n"


def runtime_dir(env: Mapping[str, str] | None = None) -> Path | None:
    """The service's ``RuntimeDirectory=`` (``$RUNTIME_DIRECTORY``, first entry), if any."""
    first = (os.environ if env is None else env).get("RUNTIME_DIRECTORY", "").split(":")[0]
    return Path(first) if first else None


def write_status(state_dir: Path, status: StatusFile, run_dir: Path | None = None) -> Path:
    """Write the status file. With ``run_dir`` (the service's ``/run/edge-agent``, a
    tmpfs) the file is written there and ``<state_dir>/status.json`` is a symbolic link to
    it: it is rewritten every few seconds (its time is how ``edge-agent status`` tells a
    hung daemon), so on the SD card it would be most of what an idle node writes, and it
    is worthless after a power cut anyway. Readers keep using the state dir's name."""
    if run_dir is None:
        path = state_dir / STATUS_FILE
        if path.is_symlink():
            path.unlink()  # left by a run under systemd: a plain file from now on
        write_atomic(path, render(status))
        return path
    path = run_dir / STATUS_FILE
    write_atomic(path, render(status))
    link = state_dir / STATUS_FILE
    if not (link.is_symlink() and os.readlink(link) == str(path)):
        tmp = state_dir / f".{STATUS_FILE}.link"
        tmp.unlink(missing_ok=True)
        tmp.symlink_to(path)
        os.replace(tmp, link)  # atomic: a reader sees the old file or the link
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


def read_status(state_dir: Path, now: float | None = None
                ) -> tuple[str, StatusFile | None]:
    """(verdict, status). Verdict: running, stale, stopped, not-running, unreadable,
    other-format, missing."""
    path = state_dir / STATUS_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return "missing", None
    except (OSError, ValueError):
        return "unreadable", None
    try:
        doc = parse_status(raw)
    except StatusFormatError:
        return "other-format", None
    now = time.time() if now is None else now
    if doc.state == "stopped":
        return "stopped", doc
    if not pid_alive(doc.pid):
        return "not-running", doc
    if now - doc.time > 3 * doc.interval + 5.0:
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


def format_status(verdict: str, doc: StatusFile, out: IO[str],
                  now: float | None = None) -> None:
    now = time.time() if now is None else now
    print(f"edge-agent {doc.site}/{doc.node} ({doc.hardware}): "
          f"{VERDICTS.get(verdict, verdict)}", file=out)
    print(f"  pid {doc.pid}, up {_dur(doc.time - doc.started_at)}, "
          f"status written {_ago(doc.time, now)}, config {doc.config}", file=out)
    rl = doc.reload
    if rl is not None:
        ok = "applied" if rl.ok else f"REJECTED ({rl.error})"
        print(f"  last reload {_ago(rl.time, now)}: {ok}", file=out)
    for p in doc.liveness.problems:
        print(f"  NOT ALIVE: {p} (watchdog pings withheld)", file=out)
    for name, c in doc.channels.items():
        up, st = c.uplink, c.store
        if verdict != "running":  # what the file says is history: never "connected"
            was = f"connected to {up.broker}" if up.connected else "disconnected"
            conn = f"NOT CONNECTED (daemon not running; {was} as of {_ago(doc.time, now)})"
        else:
            conn = f"connected to {up.broker}" if up.connected else "DISCONNECTED"
        print(f"channel {name}: {conn}", file=out)
        if (verdict != "running" or not up.connected) and up.last_error:
            print(f"  last error: {up.last_error}", file=out)
        lanes = ", ".join(f"{k} {v}" for k, v in st.backlog.items())
        oldest = ("none" if st.oldest_undelivered is None
                  else _dur(doc.time - st.oldest_undelivered) + " old")
        print(f"  backlog: {st.backlog_total} readings ({lanes}); "
              f"oldest undelivered: {oldest}", file=out)
        if st.recovering_segments:
            print(f"  recovering {st.recovering_segments} segments (found at start, still "
                  "being scanned: not counted in the backlog yet)", file=out)
        print(f"  last publish: {_ago(up.last_publish, now)}; published "
              f"{up.published_readings} readings; next seq {st.next_seq}", file=out)
        evs = ", ".join(f"{k} {v}" for k, v in st.evicted.items() if v) or "none"
        print(f"  evicted: {evs}; quarantined files: {st.quarantined}; "
              f"dead letters: {st.dead_letters}; rejected: {up.rejected_messages}", file=out)
        if st.dead_dropped or st.quarantine_dropped:
            ranges = ", ".join(f"{a}..{b}" for a, b in st.dead_dropped_ranges)
            print(f"  kept-aside files deleted to stay within the store budget: "
                  f"{st.dead_dropped} dead letters"
                  + (f" (seq {ranges})" if ranges else "")
                  + f", {st.quarantine_dropped} quarantined files", file=out)
        ingest = c.ingest
        if ingest.dropped_alarms or ingest.displaced_readings:
            print(f"  ingest queue full: {ingest.dropped_alarms} ALARMS DROPPED, "
                  f"{ingest.displaced_readings} normal readings dropped to make room "
                  "for alarms", file=out)
        if c.cert_expiry is not None:
            print(f"  certificate expires in {c.cert_expiry:.0f} days", file=out)
    _format_welfare(doc, out, now)
    if doc.sensors:
        print("sensors:", file=out)
    for sid, s in doc.sensors.items():
        state = "ok" if s.alive else "DOWN"
        last = s.last
        value = "no reading yet"
        if last is not None and last.withheld:
            value = f"last reading {_ago(last.time, now)} (value sealed: health data)"
        elif last is not None:
            unit = f" {last.unit}" if last.unit else ""
            value = f"{last.name}={last.value}{unit} ({_ago(last.time, now)})"
        line = f"  {sid} [{s.type}] {state}: {value}; {s.readings} readings"
        if s.restarts:
            line += f", {s.restarts} restarts"
        print(line, file=out)
        if s.last_error:
            print(f"    last error: {s.last_error}", file=out)


def _format_welfare(doc: StatusFile, out: IO[str], now: float) -> None:
    w = doc.welfare
    if w is None:
        return
    raised = "; ".join(f"{who}: {', '.join(levels)}" for who, levels in w.raised.items()
                       if levels) or "nothing raised"
    print(f"welfare: {raised}; {w.events_published} events published", file=out)
    esc = w.escalation
    if esc is None:
        return
    print(f"  escalation output: {esc.signal or 'quiet'}", file=out)
    for a in esc.alarms[-5:]:
        line = f"  alarm seq {a.seq} ({a.kind}) raised {_ago(a.raised_at, now)}"
        if a.delivered_at is not None:
            line += f", delivered {_ago(a.delivered_at, now)}"
        if a.escalated_at is not None:
            line += f", ESCALATED {_ago(a.escalated_at, now)}"
        if a.time_to_ack is not None:
            line += f", acknowledged by {a.acked_by} after {_dur(a.time_to_ack)}"
        print(line, file=out)
        for number, sms in (a.sms or {}).items():
            state = "sent" if sms.sent else "FAILED" if sms.failed else "pending"
            err = f" ({sms.last_error})" if sms.last_error else ""
            print(f"    SMS {number}: {state} after {sms.attempts} attempt(s){err}", file=out)


WHY_NO_STATUS = {
    "missing": "no status file: the daemon is not running (or never started) with this "
               "state_dir",
    "unreadable": "status file exists but cannot be read: run as root or as the edge-agent "
                  "user (sudo edge-agent status)",
    "other-format": "status file written by another version of edge-agent: restart the "
                    "daemon (systemctl restart edge-agent)",
}


def run_status(state_dir: Path, as_json: bool, out: IO[str], err: IO[str]) -> int:
    """Exit 0 when the daemon is running and fresh, 3 when not running or stale (LSB),
    4 when the status cannot be read."""
    verdict, doc = read_status(state_dir)
    if doc is None:
        why = WHY_NO_STATUS[verdict]
        if as_json:
            print(json.dumps({"verdict": verdict, "path": str(state_dir / STATUS_FILE),
                              "message": why}), file=out)
        else:
            print(f"{state_dir / STATUS_FILE}: {why}", file=err)
        return 3 if verdict == "missing" else 4
    if as_json:
        age = time.time() - doc.time
        body = msgspec.to_builtins(doc)
        if verdict != "running":  # a dead daemon is connected to nothing
            for c in body.get("channels", {}).values():
                c["uplink"]["connected_when_written"] = c["uplink"]["connected"]
                c["uplink"]["connected"] = False
        print(json.dumps({"verdict": verdict, "age": round(age, 1), **body}), file=out)
    else:
        format_status(verdict, doc, out)
    return 0 if verdict == "running" else 3
