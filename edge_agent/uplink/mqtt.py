"""One channel's MQTT uplink: a paho-mqtt client fed a bounded window from the store.

Threads: paho's network thread (``loop_start``) and one pump thread owned here. paho
callbacks never touch the store or take our locks: they put events on a bounded queue and
wake the pump, which does all bookkeeping. A batch is acknowledged in the store only when
it is confirmed: by a PUBACK with a success reason code (MQTT 5), or, on MQTT 3.1.1 where a
broker acknowledges even a publish it dropped, by its echo on the node's own subscription
(``confirm.py``, design note 0004). A failure code dead-letters it; a missing echo holds it
back and reports it; a lost connection returns every in-flight batch to the store.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from tenacity import RetryCallState, wait_random_exponential

from edge_agent.config.schema import ChannelConfig
from edge_agent.config.types import BrokerURL
from edge_agent.core.clock import Clock, SystemClock
from edge_agent.core.errors import UplinkError
from edge_agent.core.model import Channel, Priority
from edge_agent.security import events as secevents
from edge_agent.store.channel_store import Batch, ChannelStore
from edge_agent.uplink.confirm import (
    ECHO,
    HELD,
    PUBACK,
    VERIFIED,
    DeliveryGate,
    confirm_mode,
    echo_seq,
)
from edge_agent.uplink.envelope import EnvelopeBuilder

ALARM_SLACK = 16  # extra in-flight slots only alarms may use, so they never wait for backlog
FAILBACK_AFTER = 300.0  # default of ChannelConfig.failback_after (seconds)
DENIAL_REPORT_INTERVAL = 60.0  # refused publishes: one security event per this, with a count


@dataclass
class UplinkStats:
    connected: bool = False
    broker: str | None = None
    connects: int = 0
    connect_failures: int = 0
    published_messages: int = 0
    published_readings: int = 0
    rejected_messages: int = 0
    last_publish: float | None = None
    last_error: str | None = None
    inflight: int = 0
    by_lane: dict[str, int] = field(default_factory=dict)
    cert_expiry: float | None = None  # days left on the client cert (or CA), soonest
    unconfirmed_messages: int = 0  # held back: acknowledged but no echo (MQTT 3.1.1)
    held_topics: int = 0  # times a topic was held back as refused (no echo / disconnects)


@dataclass
class _Pending:
    """A batch handed to paho, until it is confirmed, refused or returned to the store."""

    batch: Batch
    topic: str
    mid: int
    acked_at: float | None = None  # PUBACK time (echo mode: the echo is still awaited)


@dataclass(frozen=True)
class UplinkSettings:
    node: str
    site: str
    channel: Channel
    topic_prefix: str
    client_id: str
    config: ChannelConfig
    signing_key: Any = None  # the node's Ed25519 key: signs what a sealed channel seals


def tls_context(cfg: ChannelConfig) -> ssl.SSLContext:
    """Server verification always; client certificate when given; TLS >= min_version."""
    ctx = ssl.create_default_context(cafile=str(cfg.tls.ca_file) if cfg.tls.ca_file else None)
    ctx.minimum_version = (ssl.TLSVersion.TLSv1_3 if cfg.tls.min_version == "1.3"
                           else ssl.TLSVersion.TLSv1_2)
    ctx.check_hostname = cfg.tls.check_hostname
    if cfg.tls.cert_file and cfg.tls.key_file:
        from edge_agent.security.keys import check_private

        check_private(cfg.tls.key_file)
        ctx.load_cert_chain(str(cfg.tls.cert_file), str(cfg.tls.key_file))
    return ctx


def read_secret(path: Path) -> str:
    from edge_agent.security.keys import check_private

    check_private(path)
    return path.read_text(encoding="utf-8").strip()


class ChannelUplink:
    def __init__(self, settings: UplinkSettings, store: ChannelStore,
                 clock: Clock | None = None, log: logging.Logger | None = None,
                 health: Callable[[], dict[str, Any]] | None = None) -> None:
        if store.channel is not settings.channel:
            raise UplinkError("uplink and store channels differ")
        self.s = settings
        self.cfg = settings.config
        self.store = store
        self.clock = clock or SystemClock()
        self.log = log or logging.getLogger(f"edge_agent.uplink.{settings.channel.value}")
        self._health = health
        self.stats = UplinkStats()
        check_secrets(self.cfg)  # refuse to start on a loose key or password file
        self._env = EnvelopeBuilder(settings.node, settings.channel, sealer(self.cfg, settings))
        self._next_cert_check = 0.0
        self._check_certs()
        self._events: queue.Queue[tuple[str, Any]] = queue.Queue(maxsize=100_000)
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._client: mqtt.Client | None = None
        self._pending: dict[int, _Pending] = {}  # by first sequence number
        self._mids: dict[int, int] = {}  # paho message id -> first sequence number
        self._broker_index = 0
        self._connected_at = 0.0
        # full jitter: uniform in [0, min(max, min * 2^n)] so a city's nodes spread out
        self._wait = wait_random_exponential(multiplier=float(self.cfg.reconnect_min),
                                             max=float(self.cfg.reconnect_max))
        self._failures = 0
        self._next_health = 0.0
        self.topic_data = f"{settings.topic_prefix}/data"
        self.topic_alarm = f"{settings.topic_prefix}/alarm"
        self.topic_status = f"{settings.topic_prefix}/status"
        self.topic_health = f"{settings.topic_prefix}/health"
        self._mode = confirm_mode(self.cfg)
        self._gate = DeliveryGate([self.topic_data, self.topic_alarm],
                                  float(self.cfg.echo_timeout))
        self._unconfirmed_since: dict[str, float] = {}  # this connection, per topic
        self._conn_confirmed: set[str] = set()  # topics confirmed on this connection
        self.error: BaseException | None = None
        self._flush_deadline = 0.0
        # refused publishes not yet reported: count, lowest and highest seq, last reason
        self._denied: tuple[int, int, int, str] | None = None
        self._denied_at = float("-inf")
        # liveness for the service watchdog: refreshed by the pump thread at least every
        # ~1 s, or set ahead to the end of a deliberate wait (reconnect backoff)
        self.heartbeat = self.clock.monotonic()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"uplink-{self.s.channel.value}",
                                        daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """New data in the store: wake the pump now (alarms go out at once)."""
        self._wake.set()

    def stop(self, flush_timeout: float = 2.0) -> None:
        """Wait up to ``flush_timeout`` for in-flight PUBACKs, go offline, disconnect."""
        self._flush_deadline = self.clock.monotonic() + flush_timeout
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(flush_timeout + 5.0)

    @property
    def alive(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    # ------------------------------------------------------------------ paho callbacks
    # (network thread: only enqueue and wake)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any,
                    rc: ReasonCode, props: Properties | None) -> None:
        self._put(("connect", rc))

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any,
                       rc: ReasonCode, props: Properties | None) -> None:
        self._put(("disconnect", rc))

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int,
                    rc: ReasonCode, props: Properties | None) -> None:
        self._put(("puback", (mid, rc)))

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int,
                      codes: list[ReasonCode], props: Properties | None) -> None:
        self._put(("suback", codes))

    def _on_message(self, client: mqtt.Client, userdata: Any, m: mqtt.MQTTMessage) -> None:
        seq = echo_seq(bytes(m.payload))  # our own data/alarm message, back through the broker
        if seq is not None:
            self._put(("echo", (m.topic, seq[0])))

    def _put(self, ev: tuple[str, Any]) -> None:
        try:
            self._events.put_nowait(ev)
        except queue.Full:  # cannot happen with a bounded window; never block paho
            self.log.error("event queue full; dropping %s", ev[0])
        self._wake.set()

    # ------------------------------------------------------------------ pump thread

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                self.heartbeat = self.clock.monotonic()
                if not self._connect():
                    continue
                self._pump()
                self._teardown()
        except Exception as exc:  # a bug: make it visible to the supervisor
            self.error = exc
            self.log.exception("uplink crashed")
            raise

    def _connect(self) -> bool:
        """Try each broker in order once; back off (with jitter) when all fail."""
        brokers = self.cfg.brokers
        for i in range(len(brokers)):
            if self._stop.is_set():
                return False
            url = brokers[i]
            self.heartbeat = self.clock.monotonic()
            try:
                self._client = self._open(url)
            except (OSError, UplinkError, ssl.SSLError) as exc:
                self.stats.connect_failures += 1
                self.stats.last_error = f"{url}: {exc}"
                self.log.warning("cannot connect to %s: %s", url, exc)
                if isinstance(exc, ssl.SSLError | UplinkError):
                    secevents.emit("auth", "failure", channel=self.s.channel.value,
                                   detail=f"{url}: {exc}")
                continue
            self._broker_index = i
            self._failures = 0
            self._connected_at = self.clock.monotonic()
            self.stats.connected = True
            self.stats.broker = str(url)
            self.stats.connects += 1
            self.log.info("connected to %s", url)
            return True
        self._failures += 1
        delay = self._wait(_retry_state(self._failures))
        self.log.info("all brokers unreachable; retrying in %.1fs", delay)
        self.heartbeat = self.clock.monotonic() + delay
        self._stop.wait(delay)
        return False

    def _open(self, url: BrokerURL) -> mqtt.Client:
        proto = mqtt.MQTTv5 if self.cfg.mqtt_version == 5 else mqtt.MQTTv311
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.s.client_id,
                             protocol=proto, reconnect_on_failure=False)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.max_inflight_messages_set(self.cfg.inflight_window + ALARM_SLACK + 4)
        client.max_queued_messages_set(0)
        tracked = _TrackingContext(tls_context(self.cfg)) if url.tls else None
        if tracked is not None:
            client.tls_set_context(tracked)  # type: ignore[arg-type]
        if self.cfg.username:
            password = read_secret(self.cfg.password_file) if self.cfg.password_file else None
            client.username_pw_set(self.cfg.username, password)
        client.will_set(self.topic_status, self._status("offline"), qos=1, retain=True)
        # drain stale events from a previous connection
        while not self._events.empty():
            self._events.get_nowait()
        kwargs: dict[str, Any] = {}
        if proto == mqtt.MQTTv5:
            kwargs["clean_start"] = True
        client.connect_timeout = 5.0
        try:
            client.connect(url.host, url.port, keepalive=int(self.cfg.keepalive),
                           bind_address=self.cfg.bind_address or "", **kwargs)
        except BaseException:
            if tracked is not None:
                tracked.close_last()  # paho leaves a failed handshake's socket open
            raise
        client.loop_start()
        deadline = self.clock.monotonic() + 10.0
        while self.clock.monotonic() < deadline and not self._stop.is_set():
            self.heartbeat = self.clock.monotonic()
            try:
                kind, val = self._events.get(timeout=0.1)
            except queue.Empty:
                continue
            if kind == "connect":
                if val.is_failure:
                    _close(client)
                    raise UplinkError(f"broker refused the connection: {val}")
                client.publish(self.topic_status, self._status("online"), qos=1, retain=True)
                if self._mode != ECHO:
                    return client
                # echoes confirm deliveries: the subscription must be in place first
                client.subscribe([(self.topic_data, 1), (self.topic_alarm, 1)])
            elif kind == "suback":
                if any(rc.is_failure for rc in val):
                    why = (f"cannot subscribe to {self.topic_data} and {self.topic_alarm}: "
                           "no delivery can be confirmed (grant the node read on its own "
                           "topics); holding data back")
                    self.log.error("%s", why)
                    self.stats.last_error = why
                    secevents.emit("acl", "denied", channel=self.s.channel.value, detail=why)
                self._unconfirmed_since.clear()
                self._conn_confirmed.clear()
                return client
            if kind == "disconnect":
                _close(client)
                raise UplinkError(f"disconnected during connect: {val}")
        _close(client)
        raise UplinkError("no CONNACK within 10s")

    def _pump(self) -> None:
        client = self._client
        assert client is not None
        window = self.cfg.inflight_window
        while True:
            self.heartbeat = self.clock.monotonic()
            if self._stop.is_set():
                self._drain_events()
                if not self._pending or self.clock.monotonic() >= self._flush_deadline:
                    return
                self._wake.wait(0.05)
                self._wake.clear()
                continue
            if not self._drain_events():
                return  # connection lost
            if (self._broker_index > 0
                    and self.clock.monotonic() - self._connected_at
                    > float(self.cfg.failback_after)):
                self.log.info("trying the first broker again")
                return
            now = self.clock.monotonic()
            self._expire(now)
            inflight_normal = sum(1 for p in self._pending.values()
                                  if p.batch.lane != Priority.ALARM)
            inflight_alarm = len(self._pending) - inflight_normal
            alarm_cap = self._gate.allowance(self.topic_alarm, now, inflight_alarm)
            data_cap = self._gate.allowance(self.topic_data, now, inflight_normal)
            room = ALARM_SLACK - inflight_alarm if alarm_cap is None else alarm_cap
            batches = self.store.lease(room, lanes=(Priority.ALARM,)) if room > 0 else []
            room = window - inflight_normal if data_cap is None else data_cap
            if room > 0:  # a held alarm topic: its backlog must not ride the data window
                batches += self.store.lease(room, lanes=(
                    Priority.NORMAL, Priority.BULK) if alarm_cap is not None else (0, 1, 2))
            for i, b in enumerate(batches):
                if not self._publish(client, b):
                    # the rest of the lease was never sent: back to the queue, in order
                    self.store.release(x.first for x in batches[i + 1:])
                    return
            self._report_denials()
            self._maybe_health(client)
            if not batches:
                self._wake.wait(1.0)
                self._wake.clear()

    def _publish(self, client: mqtt.Client, b: Batch) -> bool:
        topic = self.topic_alarm if b.lane == Priority.ALARM else self.topic_data
        payload = self._env.data(b.lane, b.first, b.last, b.senml)
        info = client.publish(topic, payload, qos=1)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            self.store.release([b.first])
            self.log.warning("publish failed locally (%s); reconnecting",
                             mqtt.error_string(info.rc))
            return False
        now = self.clock.monotonic()
        self._pending[b.first] = _Pending(b, topic, info.mid)
        self._mids[info.mid] = b.first
        if topic not in self._conn_confirmed:
            self._unconfirmed_since.setdefault(topic, now)
        self._gate.sent(topic, now)
        self.stats.inflight = len(self._pending)
        return True

    def _drain_events(self) -> bool:
        """Apply paho events. Returns False when the connection is gone."""
        alive = True
        while True:
            try:
                kind, val = self._events.get_nowait()
            except queue.Empty:
                return alive
            if kind == "puback":
                mid, rc = val
                first = self._mids.pop(mid, None)
                p = None if first is None else self._pending.get(first)
                if first is None or p is None:
                    continue  # status/health messages, or already confirmed by its echo
                b = p.batch
                if rc.is_failure:
                    del self._pending[first]
                    self.stats.rejected_messages += 1
                    why = f"PUBACK 0x{rc.value:02X} {rc}"
                    self.stats.last_error = f"{why} for seq {b.first}..{b.last}"
                    self.store.reject(b.first, why)
                    self._note_denial(b, why)
                elif self._mode == PUBACK:
                    del self._pending[first]
                    self._delivered(p)
                else:
                    p.acked_at = self.clock.monotonic()  # now wait for its echo
            elif kind == "echo":
                topic, first = val
                p = self._pending.get(first)
                if p is not None and p.topic == topic:
                    del self._pending[first]
                    self._mids.pop(p.mid, None)
                    self._delivered(p)
                # else: a late echo of a batch already returned to the store; it is sent
                # again (a duplicate, never a loss)
            elif kind == "disconnect":
                self.log.warning("connection lost: %s", val)
                self.stats.last_error = f"disconnected: {val}"
                alive = False
                if not self._stop.is_set():
                    for topic in self._gate.disconnected(self._unconfirmed_since,
                                                         self.clock.monotonic()):
                        self._report_held(topic)
                self._unconfirmed_since.clear()
            self.stats.inflight = len(self._pending)

    def _delivered(self, p: _Pending) -> None:
        b = p.batch
        self.store.ack(b.first)
        self.stats.published_messages += 1
        self.stats.published_readings += b.count
        self.stats.by_lane[b.lane.label] = self.stats.by_lane.get(b.lane.label, 0) + b.count
        self.stats.last_publish = self.clock.time()
        self._conn_confirmed.add(p.topic)
        self._unconfirmed_since.pop(p.topic, None)
        if self._gate.confirmed(p.topic):
            self.log.warning("%s accepts publishes again; sending its backlog", p.topic)
            secevents.emit("acl", "restored", channel=self.s.channel.value,
                           detail=f"{p.topic}: confirmed again (seq {b.first}..{b.last})")

    def _expire(self, now: float) -> None:
        """Echo mode: a batch acknowledged but not echoed within ``echo_timeout`` was
        dropped by the broker (or cannot be read back): back to the store, reported."""
        if self._mode != ECHO:
            return
        timeout = float(self.cfg.echo_timeout)
        for first, p in list(self._pending.items()):
            if p.acked_at is None or now - p.acked_at < timeout:
                continue  # no PUBACK yet: a stalled connection, keepalive handles that
            del self._pending[first]
            self.store.release([first])
            self.stats.unconfirmed_messages += 1
            why = (f"no echo within {timeout:g}s for seq {p.batch.first}..{p.batch.last} on "
                   f"{p.topic}")
            self.stats.last_error = why
            if self._gate.missing(p.topic, now, why):
                self._report_held(p.topic)
        self.stats.inflight = len(self._pending)

    def _report_held(self, topic: str) -> None:
        self.stats.held_topics += 1
        why = self._gate.topics[topic].reason
        self.log.error("%s: the broker dropped or refused it (not authorized?); holding "
                       "%s back in the store and probing with one message at a time",
                       why, topic)
        secevents.emit("acl", "denied", channel=self.s.channel.value,
                       detail=f"{why}; held back, not delivered")

    def _note_denial(self, b: Batch, why: str) -> None:
        d = self._denied
        self._denied = ((1, b.first, b.last, why) if d is None else
                        (d[0] + 1, min(d[1], b.first), max(d[2], b.last), why))
        self._report_denials()

    def _report_denials(self, force: bool = False) -> None:
        """One ``acl denied`` security event (a log line) per interval, counting every
        refused message since the last one: a denied topic must not flood the log."""
        now = self.clock.monotonic()
        if self._denied is None or not (force or now - self._denied_at
                                        >= DENIAL_REPORT_INTERVAL):
            return
        n, lo, hi, why = self._denied
        self._denied, self._denied_at = None, now
        what = f"seq {lo}..{hi}" if n == 1 else f"{n} messages within seq {lo}..{hi}"
        secevents.emit("acl", "denied", channel=self.s.channel.value,
                       detail=f"{why} for {what}", count=n)

    def _teardown(self) -> None:
        self._report_denials(force=True)
        client = self._client
        self._client = None
        self.stats.connected = False
        if client is not None:
            if self._stop.is_set():
                info = client.publish(self.topic_status, self._status("offline"), qos=1,
                                      retain=True)
                with contextlib.suppress(RuntimeError, ValueError):
                    info.wait_for_publish(1.0)
            _close(client)
        if self._pending:
            self.store.release(list(self._pending))
            self._pending.clear()
        self._mids.clear()
        self.stats.inflight = 0

    # ------------------------------------------------------------------ status / health

    def _status(self, state: str) -> bytes:
        body: dict[str, Any] = {"node": self.s.node, "site": self.s.site,
                                "channel": self.s.channel.value, "state": state,
                                "time": self.clock.time()}
        if self.stats.cert_expiry is not None:
            body["cert_expiry"] = round(self.stats.cert_expiry, 1)
        return json.dumps(body).encode()

    def delivery(self) -> dict[str, Any]:
        """How deliveries on this channel are confirmed, and whether that is verified."""
        v3 = self.cfg.mqtt_version == 3
        out: dict[str, Any] = {"mqtt": "3.1.1" if v3 else "5", "confirm": self._mode,
                               "unconfirmed": self.stats.unconfirmed_messages,
                               "holds": self.stats.held_topics}
        state = self._gate.state()
        if self._mode == PUBACK:
            state = HELD if state == HELD else ("undetectable" if v3 else VERIFIED)
        out["state"] = state
        if state == "undetectable":
            out["note"] = ("MQTT 3.1.1 without echo: denials on this channel are "
                           "undetectable")
        elif state == HELD:
            out["held"] = {t.rsplit("/", 1)[-1]: tt.reason
                           for t, tt in self._gate.topics.items() if tt.state == HELD}
        elif state != VERIFIED:
            out["note"] = ("MQTT 3.1.1: no delivery confirmed by echo yet; denials on this "
                           "channel are unverified")
        return out

    def _check_certs(self) -> None:
        """At start and daily: days left on the client cert and CA; warn ahead, error after."""
        now = self.clock.monotonic()
        if now < self._next_cert_check:
            return
        self._next_cert_check = now + 86400.0
        left = cert_days_left(self.cfg, self.clock.time())
        if not left:
            return
        (soonest, path), ch = min(left), self.s.channel.value
        self.stats.cert_expiry = soonest
        warn_days = float(self.cfg.tls.expiry_warning) / 86400.0
        if soonest < 0:
            self.log.error("certificate %s expired %.0f days ago; the broker will refuse it",
                           path, -soonest)
            secevents.emit("cert", "expired", channel=ch, detail=f"{path}")
        elif soonest < warn_days:
            self.log.warning("certificate %s expires in %.1f days; renew it", path, soonest)
            secevents.emit("cert", "warning", channel=ch,
                           detail=f"{path} expires in {soonest:.1f} days")

    def _maybe_health(self, client: mqtt.Client) -> None:
        now = self.clock.monotonic()
        if now < self._next_health:
            return
        self._next_health = now + float(self.cfg.health_interval)
        self._check_certs()
        self._report_denials(force=True)  # the health message counts every refusal
        body: dict[str, Any] = {"node": self.s.node, "site": self.s.site,
                                "channel": self.s.channel.value, "time": self.clock.time()}
        if self._health is not None:
            body.update(self._health())
        client.publish(self.topic_health, json.dumps(body, default=str).encode(), qos=1)


class _TrackingContext:
    """An SSLContext stand-in that remembers the socket it wrapped, so a failed handshake
    (untrusted server, refused client certificate) does not leak it."""

    def __init__(self, ctx: ssl.SSLContext) -> None:
        self._ctx = ctx
        self._last: ssl.SSLSocket | None = None

    def __getattr__(self, name: str) -> Any:
        return getattr(self._ctx, name)

    def wrap_socket(self, sock: Any, **kwargs: Any) -> ssl.SSLSocket:
        self._last = self._ctx.wrap_socket(sock, **kwargs)
        return self._last

    def close_last(self) -> None:
        if self._last is not None:
            with contextlib.suppress(OSError):
                self._last.close()
            self._last = None


def check_secrets(cfg: ChannelConfig) -> None:
    """Every secret file this channel loads is owner-only (KeyFileError names the fix)."""
    from edge_agent.security.keys import check_private

    for path in (cfg.tls.key_file, cfg.password_file):
        if path is not None:
            check_private(path)


def sealer(cfg: ChannelConfig, settings: UplinkSettings) -> Any:
    """The channel's payload sealer (signed by the node, HPKE to the platform key), or
    None."""
    if cfg.seal is None or not cfg.seal.enabled or cfg.seal.public_key_file is None:
        return None
    if settings.signing_key is None:
        raise UplinkError(f"channel {settings.channel.value} seals: it needs the node "
                          "signing key (edge-agent keys init)")
    from edge_agent.security.seal import Sealer

    return Sealer.from_file(cfg.seal.public_key_file, settings.signing_key, settings.site,
                            cfg.seal.suite)


def cert_days_left(cfg: ChannelConfig, now: float) -> list[tuple[float, Path]]:
    """(days left, file) for the client certificate and the CA file, when configured."""
    from edge_agent.security.pki import days_left

    out: list[tuple[float, Path]] = []
    for path in (cfg.tls.cert_file, cfg.tls.ca_file):
        if path is None:
            continue
        try:
            out.append((days_left(path, now), path))
        except (OSError, ValueError):
            continue  # unreadable here: the TLS handshake reports it
    return out


def _close(client: mqtt.Client) -> None:
    with contextlib.suppress(OSError, ValueError):
        client.disconnect()
    client.loop_stop()


def _retry_state(attempt: int) -> RetryCallState:
    state = RetryCallState(retry_object=None, fn=None, args=(), kwargs={})  # type: ignore[arg-type]
    state.attempt_number = attempt
    return state
