"""Prometheus textfile (node_exporter textfile collector) from the node's health model.

The same counters as the health message, with labels channel / lane / sensor. Written
atomically (temporary file in the same directory + rename), mode 0644 so node_exporter,
running as another user, can read it. Only ``.prom`` files are collected. ``Textfile``
rewrites it only when a figure changes (and at least every 15 minutes).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from edge_agent.daemon.health import NodeHealth
from edge_agent.daemon.status import write_atomic

_Sample = tuple[dict[str, str], float]

# name -> (type, help)
_METRICS: dict[str, tuple[str, str]] = {
    "edge_agent_up": ("gauge", "1 while the daemon runs and its pipeline is alive"),
    "edge_agent_status_timestamp_seconds": ("gauge", "when this file was written"),
    "edge_agent_channel_connected": ("gauge", "1 when the channel's MQTT connection is up"),
    "edge_agent_backlog_readings": ("gauge", "accepted readings not yet delivered, per lane"),
    "edge_agent_oldest_undelivered_age_seconds": (
        "gauge", "age of the oldest undelivered reading (0 when none)"),
    "edge_agent_last_publish_timestamp_seconds": (
        "gauge", "time of the last acknowledged publish"),
    "edge_agent_store_bytes": ("gauge", "bytes the channel store uses on disk"),
    "edge_agent_next_seq": ("gauge", "the next sequence number the channel will assign"),
    "edge_agent_inflight_messages": ("gauge", "messages awaiting PUBACK"),
    "edge_agent_cert_expiry_days": ("gauge", "days left on the soonest-expiring certificate"),
    "edge_agent_accepted_readings_total": ("counter", "readings committed to the store"),
    "edge_agent_not_accepted_readings_total": (
        "counter", "readings refused by the store (full disk, storage failure)"),
    "edge_agent_published_readings_total": ("counter", "readings acknowledged by the broker"),
    "edge_agent_published_messages_total": ("counter", "messages acknowledged by the broker"),
    "edge_agent_rejected_messages_total": (
        "counter", "messages the broker refused (PUBACK >= 0x80), dead-lettered"),
    "edge_agent_connects_total": ("counter", "successful broker connections"),
    "edge_agent_connect_failures_total": ("counter", "failed broker connection attempts"),
    "edge_agent_session_takeovers_total": (
        "counter", "sessions taken over by another client with this client id"),
    "edge_agent_evicted_readings_total": ("counter", "readings evicted by policy, per reason"),
    "edge_agent_quarantined_files_total": ("counter", "corrupt store files moved aside"),
    "edge_agent_dead_letters_total": ("counter", "batches dead-lettered"),
    "edge_agent_aside_dropped_total": (
        "counter", "dead letters and quarantined files deleted to stay within the budget"),
    "edge_agent_ingest_dropped_total": (
        "counter", "readings dropped in a full ingest queue (alarms; normal ones displaced)"),
    "edge_agent_security_events_total": ("counter", "security events, per category.outcome"),
    "edge_agent_sensor_up": ("gauge", "1 when the sensor's thread runs"),
    "edge_agent_sensor_readings_total": ("counter", "readings the sensor produced"),
    "edge_agent_sensor_errors_total": ("counter", "sensor errors, per kind"),
    "edge_agent_sensor_restarts_total": ("counter", "sensor restarts by the supervisor"),
    "edge_agent_sensor_dropped_total": (
        "counter", "readings dropped by the privacy stage (not on the allow-list)"),
}


def _escape(v: str) -> str:
    return v.replace("\\", "\\\\").replace("\n", "\\n").replace('"', '\\"')


def _fmt(value: float) -> str:
    if value == int(value) and abs(value) < 1e15:
        return str(int(value))
    return repr(float(value))


def samples(node: NodeHealth, alive: bool = True) -> dict[str, list[_Sample]]:
    out: dict[str, list[_Sample]] = {name: [] for name in _METRICS}

    def add(name: str, value: float | None, **labels: str) -> None:
        if value is not None:
            out[name].append((labels, float(value)))

    add("edge_agent_up", 1.0 if alive else 0.0)
    add("edge_agent_status_timestamp_seconds", node.time)
    for ch, c in node.channels.items():
        st, up = c.store, c.uplink
        add("edge_agent_channel_connected", 1.0 if up.connected else 0.0, channel=ch)
        for lane, n in st.backlog.items():
            add("edge_agent_backlog_readings", n, channel=ch, lane=lane)
        age = 0.0 if st.oldest_undelivered is None else max(0.0, node.time
                                                             - st.oldest_undelivered)
        add("edge_agent_oldest_undelivered_age_seconds", age, channel=ch)
        add("edge_agent_last_publish_timestamp_seconds", up.last_publish, channel=ch)
        add("edge_agent_store_bytes", st.bytes, channel=ch)
        add("edge_agent_next_seq", st.next_seq, channel=ch)
        add("edge_agent_inflight_messages", up.inflight, channel=ch)
        add("edge_agent_cert_expiry_days", c.cert_expiry, channel=ch)
        add("edge_agent_accepted_readings_total", st.accepted, channel=ch)
        add("edge_agent_not_accepted_readings_total", st.not_accepted, channel=ch)
        add("edge_agent_published_readings_total", up.published_readings, channel=ch)
        add("edge_agent_published_messages_total", up.published_messages, channel=ch)
        add("edge_agent_rejected_messages_total", up.rejected_messages, channel=ch)
        add("edge_agent_connects_total", up.connects, channel=ch)
        add("edge_agent_connect_failures_total", up.connect_failures, channel=ch)
        add("edge_agent_session_takeovers_total", up.takeovers, channel=ch)
        for reason, n in st.evicted.items():
            add("edge_agent_evicted_readings_total", n, channel=ch, reason=reason)
        add("edge_agent_quarantined_files_total", st.quarantined, channel=ch)
        add("edge_agent_dead_letters_total", st.dead_letters, channel=ch)
        add("edge_agent_aside_dropped_total", st.dead_dropped, channel=ch, area="dead")
        add("edge_agent_aside_dropped_total", st.quarantine_dropped, channel=ch,
            area="quarantine")
        add("edge_agent_ingest_dropped_total", c.ingest.dropped_alarms, channel=ch,
            kind="alarm")
        add("edge_agent_ingest_dropped_total", c.ingest.displaced_readings, channel=ch,
            kind="displaced")
        for event, n in c.security.items():
            add("edge_agent_security_events_total", n, channel=ch, event=event)
    for sid, s in node.sensors.items():
        add("edge_agent_sensor_up", 1.0 if s.alive else 0.0, sensor=sid, channel=s.channel)
        add("edge_agent_sensor_readings_total", s.readings, sensor=sid, channel=s.channel)
        for kind, n in s.errors.items():
            add("edge_agent_sensor_errors_total", n, sensor=sid, channel=s.channel, kind=kind)
        add("edge_agent_sensor_restarts_total", s.restarts, sensor=sid, channel=s.channel)
        for reading, n in s.dropped.items():
            add("edge_agent_sensor_dropped_total", n, sensor=sid, channel=s.channel,
                reading=reading)
    return out


def render(node: NodeHealth, alive: bool = True) -> str:
    lines: list[str] = []
    for name, rows in samples(node, alive).items():
        if not rows:
            continue
        kind, text = _METRICS[name]
        lines.append(f"# HELP {name} {text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(_line(name, labels, value) for labels, value in rows)
    return "\n".join(lines) + "\n"


def _line(name: str, labels: dict[str, str], value: float) -> str:
    if not labels:
        return f"{name} {_fmt(value)}"
    inner = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels.items()))
    return f"{name}{{{inner}}} {_fmt(value)}"


def write_textfile(path: Path, node: NodeHealth, alive: bool = True) -> None:
    write_atomic(path, render(node, alive), mode=0o644)


STAMP = "edge_agent_status_timestamp_seconds"
HEARTBEAT = 900.0  # seconds: rewritten at least this often, changed or not


class Textfile:
    """The textfile, rewritten only when a value in it changes (its own timestamp aside),
    and at least every ``heartbeat`` seconds: a quiet site does not rewrite the same
    figures on its SD card every interval. ``edge_agent_status_timestamp_seconds`` (and the
    file's mtime, which node_exporter exports) says when it was last written."""

    def __init__(self, path: Path, heartbeat: float = HEARTBEAT) -> None:
        self.path, self.heartbeat = path, heartbeat
        self._last: str | None = None
        self._written = 0.0
        self.writes = 0

    def write(self, node: NodeHealth, alive: bool, now: float) -> bool:
        """``now``: a monotonic time. True when the file was written."""
        text = render(node, alive)
        key = "".join(line for line in text.splitlines(keepends=True)
                      if not line.startswith(STAMP))
        if key == self._last and now - self._written < self.heartbeat:
            return False
        write_atomic(self.path, text, mode=0o644)
        self._last, self._written = key, now
        self.writes += 1
        return True


def names() -> Iterable[str]:
    return _METRICS.keys()
