"""The reference ingest: the city platform's side of the MQTT interface, as one process of
a group that splits a fleet between them.

    python -m edge_agent.tools.ingest run --broker mqtt://ot.city:1883 --group ot-ingest \\
        [--platform-key it-seal.key --nodes enrolled/] [--report-dir DIR] [--out FILE]
    python -m edge_agent.tools.ingest gaps DIR/*.json        # merge the group's reports

- Data and alarms come in on a *shared* subscription (``$share/<group>/edge/+/+/+/data``
  and ``.../alarm``, MQTT 5 and brokers that support it on 3.1.1): start N processes with
  the same group and the broker hands each message to one of them.
- Health and status messages come in on an ordinary subscription: every process sees
  every node's evicted ranges and backlog.
- Sealed (IT) payloads are opened with the platform's HPKE private key and the node's
  signature is checked against the enrolled node keys (``security.seal.open_sealed``); a
  payload that does not open is counted and never passed on.
- At-least-once: a message whose every reading this process has delivered before is
  dropped (counted as duplicates). Across processes, duplicates show in the merged report;
  the sink should be idempotent on (site, node, channel, seq).
- Per node and channel the ledger (ledger.py) keeps the delivered ranges and classifies
  what is missing: evicted by policy (explained by the node), pending, or loss. Each
  process writes its report every ``--report-interval`` to ``--report-dir``;
  ``gaps`` merges the reports of the whole group.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import urlsplit

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.tools.ledger import Key, Ledger, LedgerError
from edge_agent.uplink.envelope import parse

DEFAULT_FILTER = "edge/+/+/+"  # <prefix> = edge/<site>/<node>/<channel>


class IngestError(RuntimeError):
    """The ingest cannot run as asked (broker, subscription, keys)."""


@dataclass(frozen=True)
class IngestConfig:
    host: str
    port: int
    group: str | None = "edge-ingest"  # None: no shared subscription (one process)
    prefix_filter: str = DEFAULT_FILTER
    mqtt_version: int = 5
    client_id: str = ""
    private_key: Any = None  # the platform's HPKE key: opens sealed payloads
    node_keys: Any = None  # security.nodekey.NodeKeys: who may have sealed them


@dataclass
class Counters:
    messages: int = 0
    delivered: int = 0  # messages passed to the sink
    duplicates: int = 0  # messages dropped as already delivered
    readings: int = 0
    bad: int = 0  # not an envelope, or a seal that does not open / is not signed
    last_bad: str | None = None


class Ingest:
    def __init__(self, cfg: IngestConfig,
                 sink: Callable[[dict[str, Any]], None] | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.ledger = Ledger()
        self.counters = Counters()
        self._sink = sink
        self._clock = clock
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        proto = mqtt.MQTTv5 if cfg.mqtt_version == 5 else mqtt.MQTTv311
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=cfg.client_id,
                                  protocol=proto)
        self.client.on_connect = self._on_connect
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.max_queued_messages_set(0)

    def filters(self) -> list[str]:
        f, g = self.cfg.prefix_filter, self.cfg.group
        share = f"$share/{g}/" if g else ""
        return [f"{share}{f}/data", f"{share}{f}/alarm", f"{f}/health", f"{f}/status"]

    def start(self, timeout: float = 10.0) -> Ingest:
        self.client.connect(self.cfg.host, self.cfg.port, keepalive=30)
        self.client.loop_start()
        if not self._subscribed.wait(timeout):
            self.stop()
            raise IngestError(f"could not subscribe to {self.filters()} on "
                              f"{self.cfg.host}:{self.cfg.port} within {timeout:g}s")
        return self

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()

    # ------------------------------------------------------------------ paho callbacks

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, rc: Any,
                    props: Any) -> None:
        if not rc.is_failure:
            client.subscribe([(f, 1) for f in self.filters()])

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, codes: Any,
                      props: Any) -> None:
        if all(not c.is_failure for c in codes):
            self._subscribed.set()

    def _on_message(self, client: mqtt.Client, userdata: Any, m: mqtt.MQTTMessage) -> None:
        self.handle(m.topic, bytes(m.payload))

    # ------------------------------------------------------------------ messages

    def handle(self, topic: str, payload: bytes) -> dict[str, Any] | None:
        """One message: the opened data envelope when it is new, else None."""
        kind = topic.rsplit("/", 1)[-1]
        with self._lock:
            self.counters.messages += 1
        try:
            key = topic.rsplit("/", 1)[0]  # the channel's prefix
            if kind in ("data", "alarm"):
                return self._data(key, payload)
            if kind == "health":
                msg = json.loads(payload)
                if not isinstance(msg, dict):
                    raise ValueError("health message is not a JSON object")
                with self._lock:
                    self.ledger.health(key, msg)
        except (ValueError, KeyError, TypeError) as exc:
            with self._lock:
                self.counters.bad += 1
                self.counters.last_bad = f"{topic}: {exc}"
        return None

    def _data(self, key: Key, payload: bytes) -> dict[str, Any] | None:
        msg = parse(payload)
        if "sealed" in msg:
            if self.cfg.private_key is None:
                raise ValueError("sealed payload and no platform key (--platform-key)")
            from edge_agent.security.seal import open_sealed

            msg = open_sealed(msg, self.cfg.private_key, self.cfg.node_keys)
        first, last = msg["seq"]
        with self._lock:
            new = self.ledger.deliver(key, int(first), int(last))
            if not new:
                self.counters.duplicates += 1
                return None
            self.counters.delivered += 1
            self.counters.readings += int(last) - int(first) + 1
        if self._sink is not None:
            self._sink(msg)
        return msg

    def report(self) -> dict[str, Any]:
        with self._lock:
            c = self.counters
            return {"time": self._clock(), "cpu_s": time.process_time(),
                    "group": self.cfg.group,
                    "client": self.cfg.client_id,
                    "counters": {"messages": c.messages, "delivered": c.delivered,
                                 "duplicates": c.duplicates, "readings": c.readings,
                                 "bad": c.bad, "last_bad": c.last_bad},
                    "streams": self.ledger.report(self._clock())}


def write_report(path: Path, report: dict[str, Any]) -> None:
    """Atomically (a reader never sees half a report)."""
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(report))
    os.replace(tmp, path)


def merged_gaps(reports: list[dict[str, Any]], now: float) -> dict[str, Any]:
    led = Ledger.merge([r.get("streams", {}) for r in reports])
    out: dict[str, Any] = {}
    for key, st in sorted(led.streams.items()):
        out[key] = {"readings": st.readings, "duplicates": st.duplicates,
                              "top": max(st.top, st.delivered.max()),
                              "gaps": [g.to_json() for g in led.gaps(key, now)]}
    return out


# ---------------------------------------------------------------------- command line

def _broker(url: str) -> tuple[str, int]:
    u = urlsplit(url)
    if u.scheme != "mqtt" or not u.hostname:
        raise IngestError(f"--broker {url!r}: give mqtt://HOST:PORT (TLS: put the ingest "
                          "next to the broker or behind a TLS terminator)")
    return u.hostname, u.port or 1883


def _run(args: argparse.Namespace, out: TextIO) -> int:
    host, port = _broker(args.broker)
    pk = nk = None
    if args.platform_key:
        from edge_agent.security.nodekey import NodeKeys
        from edge_agent.security.seal import load_private_key

        pk = load_private_key(Path(args.platform_key))
        if not args.nodes:
            raise IngestError("--platform-key needs --nodes (the enrolled node keys)")
        nk = NodeKeys.load(Path(args.nodes))
    client_id = args.client_id or f"ingest-{os.getpid()}"
    with contextlib.ExitStack() as stack:
        stream: TextIO | None = None
        if args.out:
            stream = sys.stdout if args.out == "-" else stack.enter_context(
                open(args.out, "a", encoding="utf-8"))
        return _ingest(args, out, host, port, client_id, pk, nk, stream)


def _ingest(args: argparse.Namespace, out: TextIO, host: str, port: int, client_id: str,
            pk: Any, nk: Any, stream: TextIO | None) -> int:
    sink = None
    lock = threading.Lock()  # paho's thread writes, this one flushes
    if stream is not None:

        def sink(msg: dict[str, Any]) -> None:
            if args.ngsi_ld:
                from edge_agent.tools.ngsi import convert  # Smart Data Models entities

                lines = [json.dumps(ent) for ent in convert(msg).entities]
            else:
                lines = [json.dumps(msg)]
            with lock:
                stream.writelines(line + "\n" for line in lines)
    ing = Ingest(IngestConfig(host, port, None if args.no_share else args.group,
                              args.filter, args.mqtt, client_id, pk, nk), sink).start()
    report_dir = Path(args.report_dir) if args.report_dir else None
    if report_dir:
        report_dir.mkdir(parents=True, exist_ok=True)
    deadline = time.monotonic() + args.seconds if args.seconds else None
    try:
        while deadline is None or time.monotonic() < deadline:
            time.sleep(args.report_interval)
            rep = ing.report()
            if stream is not None:
                with lock:
                    stream.flush()
            if report_dir:
                write_report(report_dir / f"{client_id}.json", rep)
            print(json.dumps({"time": rep["time"], **rep["counters"]}), file=out, flush=True)
    except KeyboardInterrupt:
        pass
    finally:
        ing.stop()
        if stream is not None:
            with lock:
                stream.flush()
        if report_dir:
            write_report(report_dir / f"{client_id}.json", ing.report())
    return 0


def _gaps(args: argparse.Namespace, out: TextIO) -> int:
    reports = []
    for f in args.reports:
        try:
            reports.append(json.loads(Path(f).read_text(encoding="utf-8")))
        except (OSError, ValueError) as exc:
            raise IngestError(f"{f}: {exc}") from None
    try:
        merged = merged_gaps(reports, time.time())
    except LedgerError as exc:
        raise IngestError(str(exc)) from None
    print(json.dumps(merged, indent=1), file=out)
    losses = [g for s in merged.values() for g in s["gaps"] if g[2] == "loss"]
    return 1 if losses else 0


def main(argv: list[str] | None = None, out: TextIO | None = None) -> int:
    out = out or sys.stdout
    ap = argparse.ArgumentParser(prog="edge-agent-ingest", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run", help="subscribe and ingest (one process of a group)")
    r.add_argument("--broker", required=True, help="mqtt://HOST:PORT (one cluster node)")
    r.add_argument("--group", default="edge-ingest", help="shared subscription group")
    r.add_argument("--no-share", action="store_true",
                   help="plain subscription (brokers without $share, e.g. NATS)")
    r.add_argument("--filter", default=DEFAULT_FILTER, help="topic prefix filter")
    r.add_argument("--mqtt", type=int, choices=(5, 3), default=5)
    r.add_argument("--client-id", default="")
    r.add_argument("--platform-key", help="HPKE private key (opens sealed IT payloads)")
    r.add_argument("--nodes", help="enrolled node keys (file or directory of *.pub)")
    r.add_argument("--out", help="write each new data message as a JSON line (- = stdout)")
    r.add_argument("--ngsi-ld", action="store_true",
                   help="--out writes NGSI-LD entities (Smart Data Models), not envelopes")
    r.add_argument("--report-dir", help="write this process's ledger report here")
    r.add_argument("--report-interval", type=float, default=10.0)
    r.add_argument("--seconds", type=float, default=0.0, help="stop after (0 = run on)")
    g = sub.add_parser("gaps", help="merge the group's reports; exit 1 on a real loss")
    g.add_argument("reports", nargs="+")
    args = ap.parse_args(argv)
    try:
        return _run(args, out) if args.cmd == "run" else _gaps(args, out)
    except (IngestError, OSError, ValueError) as exc:
        print(f"edge-agent-ingest: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
