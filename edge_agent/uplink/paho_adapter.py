"""One channel's MQTT uplink: paho-mqtt driven by the sans-I/O ``Session`` (session.py).

Threads: paho's network thread (``loop_start``) and one pump thread owned here. paho
callbacks never touch the store, the session or our locks: they turn what paho reports
into typed session events on a bounded queue and wake the pump. The pump feeds those
events to the session and carries out the actions it returns (lease from the store,
publish, ack/reject/release in the store, subscribe, report). All decisions (window,
confirmation by PUBACK or echo, failover, backoff, what to report) are the session's.
"""

from __future__ import annotations

import contextlib
import json
import logging
import queue
import random
import ssl
import threading
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge_agent.config.schema import ChannelConfig
from edge_agent.config.types import BrokerURL
from edge_agent.core.clock import Clock, SystemClock
from edge_agent.core.errors import UplinkError
from edge_agent.core.model import Channel, Priority
from edge_agent.security import events as secevents
from edge_agent.store.channel_store import ChannelStore
from edge_agent.uplink import session as s
from edge_agent.uplink.confirm import confirm_mode, echo_seq
from edge_agent.uplink.envelope import EnvelopeBuilder
from edge_agent.uplink.reasons import describe, is_auth
from edge_agent.uplink.tls import (
    TrackingContext,
    cert_days_left,
    check_secrets,
    read_secret,
    tls_context,
)

CONNACK_TIMEOUT = 10.0
EVENT_QUEUE_MAX = 100_000  # paho events waiting for the pump (bounded by the window)


class BrokerRefusedError(UplinkError):
    """The broker answered CONNECT with a failure code (``auth``: it refused who we are)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"broker refused the connection: {text}")
        self.code = code

    @property
    def auth(self) -> bool:
        return is_auth(self.code)


class ConnectTimeoutError(UplinkError):
    """No CONNACK in time: a network or broker problem, not a refusal."""


class ClosedDuringConnectError(UplinkError):
    """The connection closed before CONNACK. Over TLS 1.3 this is how a broker refuses the
    client certificate (after the client's side of the handshake is done)."""


@dataclass(frozen=True)
class UplinkSettings:
    node: str
    site: str
    channel: Channel
    topic_prefix: str
    client_id: str
    config: ChannelConfig
    signing_key: Any = None  # the node's Ed25519 key: signs what a sealed channel seals


@dataclass(frozen=True)
class _ConnAck:
    """CONNACK (before the session is told): only the connect handshake waits for it."""

    code: ReasonCode


class ChannelUplink:
    def __init__(self, settings: UplinkSettings, store: ChannelStore,
                 clock: Clock | None = None, log: logging.Logger | None = None,
                 health: Callable[[], dict[str, Any]] | None = None,
                 rng: random.Random | None = None,
                 on_alarm_delivered: Callable[[int, int], None] | None = None,
                 on_alarm_ack: Callable[[bytes], None] | None = None) -> None:
        if store.channel is not settings.channel:
            raise UplinkError("uplink and store channels differ")
        self.s = settings
        self.cfg = cfg = settings.config
        self.store = store
        self.clock = clock or SystemClock()
        self.log = log or logging.getLogger(f"edge_agent.uplink.{settings.channel.value}")
        self._health = health
        check_secrets(cfg)  # refuse to start on a loose key or password file
        self._env = EnvelopeBuilder(settings.node, settings.channel, sealer(cfg, settings),
                                    store=getattr(store, "store_id", None))
        self.topic_data = f"{settings.topic_prefix}/data"
        self.topic_alarm = f"{settings.topic_prefix}/alarm"
        self.topic_status = f"{settings.topic_prefix}/status"
        self.topic_health = f"{settings.topic_prefix}/health"
        # alarm escalation (IT): told when the broker took an alarm, and the platform's acks
        self.topic_ack = f"{settings.topic_prefix}/alarm/ack"
        self._on_alarm_delivered = on_alarm_delivered
        self._on_alarm_ack = on_alarm_ack
        self._subacks: deque[str] = deque(maxlen=16)  # who asked for each SUBACK, in order
        self.session = s.Session(s.SessionConfig(
            brokers=len(cfg.brokers), topic_data=self.topic_data, topic_alarm=self.topic_alarm,
            window=cfg.inflight_window, confirm=confirm_mode(cfg),
            echo_timeout=float(cfg.echo_timeout), failback_after=float(cfg.failback_after),
            health_interval=float(cfg.health_interval),
            reconnect_min=float(cfg.reconnect_min), reconnect_max=float(cfg.reconnect_max),
            mqtt_version=cfg.mqtt_version, failover=cfg.failover,
            drain_rate=float(cfg.drain_rate),
            seed=f"{settings.site}/{settings.node}/{settings.channel.value}"), rng)
        self.stats = self.session.stats
        self._next_cert_check = 0.0
        self._check_certs()
        self._events: queue.Queue[s.Event | _ConnAck] = queue.Queue(maxsize=EVENT_QUEUE_MAX)
        self._wake = threading.Event()
        self._committed = threading.Event()  # a commit since the last data lease
        self._published = 0  # data messages handed to paho by the current _apply
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: BaseException | None = None
        self._flush_deadline = 0.0
        # a backlog found at connect: (monotonic start, wall time, readings waiting)
        self._drain: tuple[float, float, int] | None = None
        self._next_drain_check = 0.0
        # liveness for the service watchdog: refreshed by the pump thread at least every
        # ~1 s, or set ahead to the end of a deliberate wait (reconnect backoff)
        self.heartbeat = self.clock.monotonic()

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name=f"uplink-{self.s.channel.value}",
                                        daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """New data in the store: wake the pump now (alarms go out at once, ahead of the
        rest of a data lease being sent)."""
        self._committed.set()
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

    def delivery(self) -> dict[str, Any]:
        """How deliveries on this channel are confirmed, and whether that is verified."""
        return self.session.delivery()

    # ------------------------------------------------------------------ paho callbacks
    # (network thread: only enqueue and wake)

    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any,
                    rc: ReasonCode, props: Properties | None) -> None:
        self._put(_ConnAck(rc))

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any,
                       rc: ReasonCode, props: Properties | None) -> None:
        self._put(s.ConnectionLost(describe(rc.value, str(rc), disconnect=True), rc.value))

    def _on_publish(self, client: mqtt.Client, userdata: Any, mid: int,
                    rc: ReasonCode, props: Properties | None) -> None:
        self._put(s.PubAck(mid, rc.value if rc.is_failure else 0,
                           describe(rc.value, str(rc)) if rc.is_failure else str(rc)))

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int,
                      codes: list[ReasonCode], props: Properties | None) -> None:
        granted = not any(rc.is_failure for rc in codes)
        try:
            who = self._subacks.popleft()  # SUBACKs come back in the order of SUBSCRIBEs
        except IndexError:
            who = "session"
        if who == "ack":
            if not granted:
                self.log.error("cannot subscribe to %s: the platform's alarm "
                               "acknowledgements will not reach this node", self.topic_ack)
                secevents.emit("acl", "denied", channel=self.s.channel.value,
                               detail=f"subscribe {self.topic_ack} refused")
            return
        self._put(s.Subscribed(granted=granted))

    def _on_message(self, client: mqtt.Client, userdata: Any, m: mqtt.MQTTMessage) -> None:
        if m.topic == self.topic_ack:
            if self._on_alarm_ack is not None:
                self._on_alarm_ack(bytes(m.payload))  # only queues it
            return
        seq = echo_seq(bytes(m.payload))  # our own data/alarm message, back through the broker
        if seq is not None:
            self._put(s.Echo(m.topic, seq[0]))

    def _put(self, ev: s.Event | _ConnAck) -> None:
        try:
            self._events.put_nowait(ev)
        except queue.Full:  # cannot happen with a bounded window; never block paho
            self.log.error("event queue full; dropping %s", type(ev).__name__)
        self._wake.set()

    def _take(self) -> Iterable[s.Event | _ConnAck]:
        while True:
            try:
                yield self._events.get_nowait()
            except queue.Empty:
                return

    # ------------------------------------------------------------------ pump thread

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                now = self.heartbeat = self.clock.monotonic()
                step = self.session.next_connection(now, self._alarms_pending())
                if isinstance(step, s.Backoff):
                    self.log.info("no broker connection; retrying in %.1fs", step.seconds)
                    self._backoff_wait(now, step.seconds)
                    continue
                client = self._connect(step.broker)
                if client is None:
                    continue
                self._subacks.clear()
                self._apply(client, self.session.handle(s.Connected(step.broker),
                                                        self.clock.monotonic()))
                if self._on_alarm_ack is not None:
                    self._subacks.append("ack")
                    client.subscribe(self.topic_ack, qos=1)
                self._note_backlog()
                self._pump(client)
                self._teardown(client)
        except Exception as exc:  # a bug: make it visible to the supervisor
            self.error = exc
            self.log.exception("uplink crashed")
            raise

    def _note_backlog(self) -> None:
        """Connected with readings waiting (after an outage or a restart): time the drain."""
        if self._drain is None:
            waiting = sum(self.store.stats().backlog.values())
            if waiting:
                self._drain = (self.clock.monotonic(), self.clock.time(), waiting)
                self.log.info("connected with a backlog of %d readings; sending it", waiting)

    def _check_drained(self, now: float) -> None:
        """At most once a second: log once the backlog found at connect is delivered."""
        self._next_drain_check = now + 1.0
        assert self._drain is not None
        started, wall, waiting = self._drain
        st = self.store.stats()
        # everything taken before the connect has gone (live readings may keep arriving)
        if sum(st.backlog.values()) and (st.oldest_undelivered is None
                                         or st.oldest_undelivered < wall):
            return
        took = max(0.0, now - started)
        rate = f", {waiting / took:.0f} readings/s" if took >= 1.0 else ""
        self.log.info("backlog drained: %d readings in %.1f s%s", waiting, took, rate)
        self._drain = None

    def _alarms_pending(self) -> bool:
        return bool(self.store.stats().backlog.get(Priority.ALARM.label, 0))

    def _backoff_wait(self, now: float, seconds: float) -> None:
        """Wait before reconnecting; cut short to ALARM_RECONNECT_MAX when an alarm comes
        in meanwhile (notify() wakes this), and at once on stop."""
        deadline = now + seconds
        self.heartbeat = deadline
        while not self._stop.is_set():
            t = self.clock.monotonic()
            if self._alarms_pending():
                deadline = min(deadline, now + s.ALARM_RECONNECT_MAX)
            if t >= deadline:
                return
            self.heartbeat = max(self.heartbeat, t)
            self._wake.wait(min(deadline - t, 1.0))
            self._wake.clear()

    def _connect(self, i: int) -> mqtt.Client | None:
        url = self.cfg.brokers[i]
        try:
            client = self._open(url)
        except (OSError, UplinkError, ssl.SSLError) as exc:
            self.session.handle(s.ConnectFailed(i, f"{url}: {exc}"), self.clock.monotonic())
            self.log.warning("cannot connect to %s: %s", url, exc)
            # a refusal of our identity or certificate is a security event; a timeout, a
            # dropped connection or a busy broker is a network one (logged above)
            auth = isinstance(exc, ssl.SSLError) or (
                isinstance(exc, BrokerRefusedError) and exc.auth) or (
                isinstance(exc, ClosedDuringConnectError) and url.tls)
            if auth:
                secevents.emit("auth", "failure", channel=self.s.channel.value,
                               detail=f"{url}: {exc}")
            return None
        self.stats.broker = str(url)
        self.log.info("connected to %s", url)
        return client

    def _open(self, url: BrokerURL) -> mqtt.Client:
        """Connect and wait for a successful CONNACK (UplinkError otherwise)."""
        proto = mqtt.MQTTv5 if self.cfg.mqtt_version == 5 else mqtt.MQTTv311
        client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=self.s.client_id,
                             protocol=proto, reconnect_on_failure=False)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_publish = self._on_publish
        client.on_subscribe = self._on_subscribe
        client.on_message = self._on_message
        client.max_inflight_messages_set(self.cfg.inflight_window + s.ALARM_SLACK + 4)
        client.max_queued_messages_set(0)
        tracked = TrackingContext(tls_context(self.cfg)) if url.tls else None
        if tracked is not None:
            client.tls_set_context(tracked)  # type: ignore[arg-type]
        if self.cfg.username:
            password = read_secret(self.cfg.password_file) if self.cfg.password_file else None
            client.username_pw_set(self.cfg.username, password)
        client.will_set(self.topic_status, self._status("offline"), qos=1, retain=True)
        for _ in self._take():  # stale events of a previous connection
            pass
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
        deadline = self.clock.monotonic() + CONNACK_TIMEOUT
        while self.clock.monotonic() < deadline and not self._stop.is_set():
            self.heartbeat = self.clock.monotonic()
            try:
                ev = self._events.get(timeout=0.1)
            except queue.Empty:
                continue
            if isinstance(ev, _ConnAck):
                if ev.code.is_failure:
                    _close(client)
                    raise BrokerRefusedError(ev.code.value, describe(ev.code.value, str(ev.code)))
                return client
            if isinstance(ev, s.ConnectionLost):
                _close(client)
                why = f"disconnected during connect: {ev.reason}"
                if url.tls:
                    why += " (over TLS: the broker may refuse the client certificate)"
                raise ClosedDuringConnectError(why)
        _close(client)
        raise ConnectTimeoutError(f"no CONNACK within {CONNACK_TIMEOUT:g}s: the network or the "
                                  "broker is slow or dropping packets (not a refusal)")

    def _pump(self, client: mqtt.Client) -> None:
        session = self.session
        while True:
            now = self.heartbeat = self.clock.monotonic()
            for ev in self._take():
                if not isinstance(ev, _ConnAck):
                    self._apply(client, session.handle(ev, now))
            if not session.connected:
                return
            if self._stop.is_set():
                if not session.stopping:
                    self._apply(client, session.handle(s.Stopping(), now))
                if session.idle or now >= self._flush_deadline:
                    return
                self._wake.wait(0.05)
                self._wake.clear()
                continue
            published = self._apply(client, session.poll(now))
            if self._drain is not None and now >= self._next_drain_check:
                self._check_drained(now)
            if not session.connected:
                return
            if not published:
                due = session.wake_at(now)  # drain_rate: when data may go again
                self._wake.wait(1.0 if due is None else min(1.0, max(0.0, due - now)))
                self._wake.clear()

    def _apply(self, client: mqtt.Client, actions: list[s.Action]) -> int:
        """Carry out the session's actions (and those its answers bring), depth first
        (``Session.carry_out``). Returns how many data messages were handed to paho."""
        self._published = 0
        self.session.carry_out(actions, lambda a: self._do(client, a), self._urgent)
        return self._published

    def _urgent(self) -> list[s.Action]:
        """Between the steps of a data lease: new data was committed meanwhile (perhaps an
        alarm): lease the alarm lane first."""
        if not self._committed.is_set():
            return []
        self._committed.clear()
        return self.session.alarm_poll(self.clock.monotonic())

    def _do(self, client: mqtt.Client, a: s.Action) -> list[s.Action]:
        """One action; returns the session's answers to it."""
        now = self.clock.monotonic()
        if isinstance(a, s.Lease):
            if a.lanes != (Priority.ALARM,):
                self._committed.clear()  # this lease sees every commit so far
            batches = self.store.lease(a.max_records, lanes=a.lanes,
                                       max_readings=self.cfg.batch_max)
            return self.session.handle(s.Leased(tuple(batches)), now)
        if isinstance(a, s.Publish):
            b = a.batch
            info = client.publish(a.topic, self._env.data(b.lane, b.first, b.last, b.senml),
                                  qos=1)
            if info.rc == mqtt.MQTT_ERR_SUCCESS:
                self._published += 1
                return self.session.handle(s.Sent(b.first, info.mid), now)
            return self.session.handle(s.SendFailed(b.first, mqtt.error_string(info.rc)), now)
        if isinstance(a, s.Ack):
            self.store.ack(a.batch.first)
            self.stats.last_publish = self.clock.time()
            if a.batch.lane is Priority.ALARM and self._on_alarm_delivered is not None:
                self._on_alarm_delivered(a.batch.first, a.batch.last)
        elif isinstance(a, s.Reject):
            self.store.reject(a.batch.first, a.why)
        elif isinstance(a, s.Release):
            self.store.release(a.firsts)
        else:
            self._side(client, a)
        return []

    def _side(self, client: mqtt.Client, a: s.Action) -> None:
        """Actions that do not touch the store: connection, status, reports."""
        ch = self.s.channel.value
        if isinstance(a, s.Disconnect):
            self.log.warning("%s", a.reason)
        elif isinstance(a, s.Subscribe):
            self._subacks.append("session")
            client.subscribe([(t, 1) for t in a.topics])
        elif isinstance(a, s.PublishStatus):
            client.publish(self.topic_status, self._status("online" if a.online else "offline"),
                           qos=1, retain=True)
        elif isinstance(a, s.PublishHealth):
            self._publish_health(client)
        elif isinstance(a, s.TopicHeld):
            self.log.error("%s: the broker dropped or refused it (not authorized?); holding "
                           "%s back in the store and probing with one message at a time",
                           a.reason, a.topic)
            secevents.emit("acl", "denied", channel=ch,
                           detail=f"{a.reason}; held back, not delivered")
        elif isinstance(a, s.TopicRestored):
            self.log.warning("%s accepts publishes again; sending its backlog", a.topic)
            secevents.emit("acl", "restored", channel=ch, detail=f"{a.topic}: confirmed again "
                           f"(seq {a.batch.first}..{a.batch.last})")
        elif isinstance(a, s.DenialsReport):
            what = (f"seq {a.low}..{a.high}" if a.count == 1
                    else f"{a.count} messages within seq {a.low}..{a.high}")
            secevents.emit("acl", "denied", channel=ch, detail=f"{a.why} for {what}",
                           count=a.count)
        elif isinstance(a, s.SessionTakenOver):
            self._log_takeover(a)
        elif isinstance(a, s.SubscriptionRefused):
            self.log.error("%s", a.why)
            secevents.emit("acl", "denied", channel=ch, detail=a.why)

    def _log_takeover(self, a: s.SessionTakenOver) -> None:
        """Once per run in plain words; later ones are counted (health: takeovers)."""
        if a.count > 1:
            self.log.debug("session taken over again (%d so far): %s", a.count, a.reason)
            return
        may, share = ("may be", "may share") if a.suspected else ("is", "share")
        self.log.error(
            "another node %s using client id %s: two nodes %s node %s (site %s); give "
            "each Pi its own node name (EDGE_NODE in /etc/edge-agent/edge-agent.env, or "
            "node: in the site file). %s. Reconnecting with backoff; further takeovers are "
            "counted in the health message (takeovers), not logged",
            may, self.s.client_id, share, self.s.node, self.s.site, a.reason)
        secevents.emit("identity", "conflict", channel=self.s.channel.value,
                       detail=f"client id {self.s.client_id}: {a.reason}")

    def _teardown(self, client: mqtt.Client) -> None:
        if self._stop.is_set():
            info = client.publish(self.topic_status, self._status("offline"), qos=1,
                                  retain=True)
            with contextlib.suppress(RuntimeError, ValueError):
                info.wait_for_publish(1.0)
        _close(client)
        self._apply(client, self.session.handle(s.Closed(), self.clock.monotonic()))

    # ------------------------------------------------------------------ status / health

    def _status(self, state: str) -> bytes:
        body: dict[str, Any] = {"node": self.s.node, "site": self.s.site,
                                "channel": self.s.channel.value, "state": state,
                                "time": self.clock.time()}
        if self.stats.cert_expiry is not None:
            body["cert_expiry"] = round(self.stats.cert_expiry, 1)
        return json.dumps(body).encode()

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

    def _publish_health(self, client: mqtt.Client) -> None:
        self._check_certs()
        body: dict[str, Any] = {"node": self.s.node, "site": self.s.site,
                                "channel": self.s.channel.value, "time": self.clock.time()}
        if self._health is not None:
            body.update(self._health())
        client.publish(self.topic_health, json.dumps(body, default=str).encode(), qos=1)


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


def _close(client: mqtt.Client) -> None:
    with contextlib.suppress(OSError, ValueError):
        client.disconnect()
    client.loop_stop()
