"""One channel's uplink as a state machine without I/O: connect/failover/backoff, the
in-flight window, acknowledgements, confirmation by echo, and what to report.

No sockets, no threads, no clock of its own: the adapter (paho_adapter.py) feeds it typed
events with the current monotonic time and carries out the typed actions it returns.

    session = Session(SessionConfig(...))
    session.next_connection(now)        -> Connect(broker) | Backoff(seconds)
    session.handle(Connected(0), now)   -> [PublishStatus(online=True), Subscribe(...)]
    session.poll(now)                   -> [Lease(...), ...]      (window room, timers)
    session.handle(Leased(batches), now) -> [Publish(batch, topic)]  one at a time: the
    session.handle(Sent(first, mid), now) -> [Publish(next)]          adapter answers each
    session.handle(PubAck(mid, 0), now) -> [Ack(first), ...]
    session.handle(Closed(), now)       -> [Release(every batch still held), ...]

The contract with the store (docs/design/0001, 0003): every batch the session asks to be
leased ends as exactly one of ``Ack`` (a success PUBACK, or in echo mode its echo),
``Reject`` (a PUBACK failure code) or ``Release`` (not delivered: sent again later). A
publish that fails locally releases that batch *and every batch of the lease not yet
handed to paho*, and the connection is closed, which releases the ones in flight: nothing
stays leased by nobody, so nothing is delivered behind newer data after a restart.

Confirmation by echo (MQTT 3.1.1, design note 0004): a PUBACK only starts the clock; the
batch is acknowledged when its own message comes back on the node's subscription. The
per-topic trust (held topics, probes) is ``confirm.DeliveryGate``.
"""

from __future__ import annotations

import hashlib
import random
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from edge_agent.core.backoff import Backoff as RetryBackoff
from edge_agent.core.model import Priority
from edge_agent.store.stats import Batch
from edge_agent.uplink.confirm import ECHO, HELD, PUBACK, VERIFIED, DeliveryGate
from edge_agent.uplink.events import (
    Ack,
    Action,
    Backoff,
    Closed,
    Connect,
    Connected,
    ConnectFailed,
    ConnectionLost,
    DenialsReport,
    Disconnect,
    Echo,
    Event,
    Lease,
    Leased,
    PubAck,
    Publish,
    PublishHealth,
    PublishStatus,
    Reject,
    Release,
    SendFailed,
    Sent,
    SessionTakenOver,
    Stopping,
    Subscribe,
    Subscribed,
    SubscriptionRefused,
    TopicHeld,
    TopicRestored,
)

# the events and actions are re-exported: the session's vocabulary
__all__ = ["ALARM_SLACK", "ALL_LANES", "ANY", "DATA_LANES", "DATA_LEASE_STEP", "ORDERED",
           "Ack", "Action", "Backoff", "Closed", "Connect", "ConnectFailed", "Connected",
           "ConnectionLost", "DenialsReport",
           "Disconnect", "Echo", "Event", "Lease", "Leased", "PubAck", "Publish",
           "PublishHealth", "PublishStatus", "Reject", "Release", "SendFailed", "Sent",
           "Session", "SessionConfig", "SessionTakenOver", "Stopping", "Subscribe", "Subscribed",
           "SubscriptionRefused", "TopicHeld", "TopicRestored", "UplinkStats", "start_node"]

ALARM_SLACK = 16  # extra in-flight slots only alarms may use, so they never wait for backlog
SUBACK_TIMEOUT = 10.0  # echo mode: no SUBACK within this after CONNACK -> reconnect
DENIAL_REPORT_INTERVAL = 60.0  # refused publishes: one report per this, with a count
# Another client with our client id: the broker closes our session (MQTT 5 DISCONNECT
# reason 0x8E). Two nodes configured with one node name do this to each other forever;
# reconnects then back off (full jitter, TAKEOVER_MIN .. TAKEOVER_MAX) so both get through.
SESSION_TAKEN_OVER = 0x8E
UNSPECIFIED = 0x80  # paho's code for a connection closed without a DISCONNECT
TAKEOVER_MIN = 1.0
TAKEOVER_MAX = 60.0
# MQTT 3.1.1 has no DISCONNECT from the broker, and some MQTT 5 brokers (mosquitto 2.0.11)
# just close the socket: this many connections in a row closed without a reason within
# SHORT_CONNECTION of their CONNACK is reported as a suspected takeover
SHORT_CONNECTION = 10.0
SHORT_IN_A_ROW = 3
STABLE_CONNECTION = 60.0  # a connection that lived this long resets the takeover backoff
# alarms waiting in the store: never wait longer than this between reconnect attempts
ALARM_RECONNECT_MAX = 2.0
DATA_LEASE_STEP = 2  # data leased (read, decrypted) at most this many messages at a time
PACE_BURST = 0.05  # drain_rate: at most this many seconds' worth of data saved up
DATA_LANES = (Priority.NORMAL, Priority.BULK)
ALL_LANES = tuple(Priority)
ORDERED = "ordered"  # brokers in order of preference; fail back to the first
ANY = "any"  # a cluster: every node as good as another; spread, move on, no failback


def _is_data_work(a: Action) -> bool:
    """Work an alarm need not wait for: leasing, publishing or acknowledging data (an
    acknowledgement may sync the ack journal when a store file is done with)."""
    if isinstance(a, Lease):
        return a.lanes != (Priority.ALARM,)
    return isinstance(a, Publish | Ack) and a.batch.lane != Priority.ALARM


def start_node(seed: str, brokers: int) -> int:
    """Where a node starts in an ``any`` broker list: a jittered choice, stable per seed
    (the node's identity), so a fleet spreads over the cluster instead of piling onto
    the first node, and one node keeps its choice across restarts."""
    digest = hashlib.sha256(seed.encode()).digest()
    return random.Random(digest).randrange(brokers)


@dataclass
class UplinkStats:
    connected: bool = False
    broker: str | None = None
    connects: int = 0
    connect_failures: int = 0
    published_messages: int = 0
    published_readings: int = 0
    rejected_messages: int = 0
    last_publish: float | None = None  # wall time of the last confirmed delivery
    last_error: str | None = None
    inflight: int = 0
    by_lane: dict[str, int] = field(default_factory=dict)
    cert_expiry: float | None = None  # days left on the client cert (or CA), soonest
    unconfirmed_messages: int = 0  # held back: acknowledged but no echo (MQTT 3.1.1)
    held_topics: int = 0  # times a topic was held back as refused (no echo / disconnects)
    takeovers: int = 0  # sessions closed because another client used our client id


@dataclass(frozen=True)
class SessionConfig:
    brokers: int  # how many, in order of preference
    topic_data: str
    topic_alarm: str
    window: int = 8
    confirm: str = PUBACK  # PUBACK or ECHO (confirm.confirm_mode)
    echo_timeout: float = 10.0
    failback_after: float = 300.0
    health_interval: float = 60.0
    reconnect_min: float = 1.0
    reconnect_max: float = 60.0
    alarm_slack: int = ALARM_SLACK
    mqtt_version: int = 5
    failover: str = ORDERED  # ORDERED or ANY
    seed: str = ""  # ANY: the node's identity, chooses the starting broker
    # data (normal and bulk lanes) at most this many SenML bytes per second, one message
    # at a time; 0: as fast as the broker takes it. Alarms are never paced.
    drain_rate: float = 0.0

    def __post_init__(self) -> None:
        if self.brokers < 1:
            raise ValueError("a session needs at least one broker")
        if self.failover not in (ORDERED, ANY):
            raise ValueError(f"failover must be {ORDERED!r} or {ANY!r}, not {self.failover!r}")
        if self.drain_rate < 0:
            raise ValueError("drain_rate must not be negative")


@dataclass
class _InFlight:
    """A batch handed to paho, until it is confirmed, refused or returned to the store."""

    batch: Batch
    topic: str
    mid: int
    acked_at: float | None = None  # PUBACK time (echo mode: the echo is still awaited)


class Session:
    def __init__(self, cfg: SessionConfig, rng: random.Random | None = None) -> None:
        self.cfg = cfg
        self.stats = UplinkStats()
        self.gate = DeliveryGate([cfg.topic_data, cfg.topic_alarm], cfg.echo_timeout)
        self._backoff = RetryBackoff(cfg.reconnect_min, cfg.reconnect_max, rng=rng)
        self._round = 0  # attempts made in this round
        # ANY: the round starts here (the jittered start; after a failure, the next node)
        self._start = (start_node(cfg.seed, cfg.brokers) if cfg.failover == ANY else 0)
        self._takeover = RetryBackoff(TAKEOVER_MIN, max(TAKEOVER_MAX, cfg.reconnect_max),
                                      rng=rng)
        self._taken_over = False  # the last connection was taken over: back off first
        self._short_losses = 0  # connections in a row closed right after CONNACK
        self.broker: int | None = None  # connected to brokers[broker]
        self.connected = False
        self.stopping = False
        self._ready = False  # may publish data (echo mode: after the SUBACK)
        self._connected_at = 0.0
        self._next_health = 0.0
        self._inflight: dict[int, _InFlight] = {}  # by first sequence number
        self._mids: dict[int, int] = {}  # paho message id -> first
        self._queued: list[Batch] = []  # leased, not yet handed to paho (in lease order)
        self._sending: Batch | None = None  # a Publish is out, its Sent/SendFailed not in
        self._unconfirmed_since: dict[str, float] = {}  # this connection, per topic
        self._conn_confirmed: set[str] = set()  # topics confirmed on this connection
        self._denied: tuple[int, int, int, str] | None = None  # count, low, high, why
        self._denied_at = float("-inf")
        # echo mode, SUBACK refused: subscribe again then (a cluster node whose stream
        # leader is being re-elected refuses for a few seconds, an ACL until it is fixed)
        self._resubscribe_at: float | None = None
        self._resubscribe_delay = 0.0
        self._credit = 0.0  # drain_rate: bytes of data that may go now (negative: owed)
        self._credit_at: float | None = None

    # ------------------------------------------------------------------ carrying out

    def carry_out(self, actions: list[Action], do: Callable[[Action], list[Action]],
                  urgent: Callable[[], list[Action]] | None = None) -> list[Action]:
        """Carry out ``actions`` with ``do`` (which returns this session's answers to one),
        depth first: the answers to an action are carried out before the next action, so
        an alarm's ``Publish`` (the answer to the alarm ``Lease``) never waits behind the
        data ``Lease`` that follows it. Before each ``Lease``, ``Publish`` and ``Ack`` of
        data, ``urgent()`` may put actions first (the adapter's alarm lease when new data
        was committed meanwhile). A ``Lease`` is skipped once the connection is gone or
        stopping (nothing would be sent). Returns what was carried out, in order."""
        todo: deque[Action] = deque(actions)
        done: list[Action] = []
        while todo:
            if urgent is not None and _is_data_work(todo[0]):
                todo.extendleft(reversed(urgent()))
            a = todo.popleft()
            if isinstance(a, Lease) and (not (self.connected and self._ready)
                                         or self.stopping):
                continue
            done.append(a)
            todo.extendleft(reversed(do(a)))
        return done

    # ------------------------------------------------------------------ introspection

    @property
    def held(self) -> int:
        """Batches leased and not yet settled (queued, being sent, or in flight)."""
        return len(self._inflight) + len(self._queued) + (self._sending is not None)

    def held_firsts(self) -> set[int]:
        out = set(self._inflight) | {b.first for b in self._queued}
        if self._sending is not None:
            out.add(self._sending.first)
        return out

    @property
    def idle(self) -> bool:
        """Nothing in flight: a stop may close the connection now."""
        return self.held == 0

    def topic_of(self, batch: Batch) -> str:
        return self.cfg.topic_alarm if batch.lane == Priority.ALARM else self.cfg.topic_data

    # ------------------------------------------------------------------ connecting

    def next_connection(self, now: float, alarms_pending: bool = False) -> Connect | Backoff:
        """Try each broker once per round; when all failed, back off (full jitter).
        ``ordered``: from the first. ``any``: from the round's start node, around the list.
        After a takeover, back off before the first try too. With alarms waiting in the
        store no wait is longer than ALARM_RECONNECT_MAX."""
        if self._taken_over:
            self._taken_over = False
            return Backoff(self._cap(self._takeover.next_delay(), alarms_pending))
        if self._round < self.cfg.brokers:
            return Connect((self._start + self._round) % self.cfg.brokers)
        self._round = 0
        return Backoff(self._cap(self._backoff.next_delay(), alarms_pending))

    @staticmethod
    def _cap(delay: float, alarms_pending: bool) -> float:
        return min(delay, ALARM_RECONNECT_MAX) if alarms_pending else delay

    # ------------------------------------------------------------------ events

    def handle(self, ev: Event, now: float) -> list[Action]:
        if isinstance(ev, Connected):
            return self._connected(ev, now)
        if isinstance(ev, ConnectFailed):
            self._round = (ev.broker - self._start) % self.cfg.brokers + 1
            self.stats.connect_failures += 1
            self.stats.last_error = ev.reason
            return []
        if isinstance(ev, Subscribed):
            return self._subscribed(ev, now)
        if isinstance(ev, Leased):
            return self._leased(ev)
        if isinstance(ev, Sent):
            return self._sent(ev, now)
        if isinstance(ev, SendFailed):
            return self._send_failed(ev)
        if isinstance(ev, PubAck):
            return self._puback(ev, now)
        if isinstance(ev, Echo):
            return self._echo(ev)
        if isinstance(ev, ConnectionLost):
            return self._lost(ev, now)
        if isinstance(ev, Stopping):
            self.stopping = True
            return []
        return self._closed(now)

    def _connected(self, ev: Connected, now: float) -> list[Action]:
        self.broker, self.connected, self._round = ev.broker, True, 0
        if self.cfg.failover == ANY:
            self._start = ev.broker  # a reconnect after a clean close tries it first
        self._backoff.reset()
        self._connected_at = now
        self._unconfirmed_since.clear()
        self._conn_confirmed.clear()
        self._resubscribe_at, self._resubscribe_delay = None, 0.0
        self.stats.connected = True
        self.stats.connects += 1
        out: list[Action] = [PublishStatus(online=True)]
        if self.cfg.confirm == ECHO:  # echoes confirm deliveries: subscribe first
            self._ready = False
            out.append(Subscribe((self.cfg.topic_data, self.cfg.topic_alarm)))
        else:
            self._ready = True
        return out

    def _subscribed(self, ev: Subscribed, now: float) -> list[Action]:
        if not self.connected:
            return []
        self._ready = True
        if ev.granted:
            self._resubscribe_at, self._resubscribe_delay = None, 0.0
            return []
        self._resubscribe_delay = min(max(self.cfg.reconnect_min, 2 * self._resubscribe_delay),
                                      self.cfg.reconnect_max)
        self._resubscribe_at = now + self._resubscribe_delay
        why = (f"cannot subscribe to {self.cfg.topic_data} and {self.cfg.topic_alarm}: no "
               "delivery can be confirmed (grant the node read on its own topics); holding "
               f"data back, subscribing again in {self._resubscribe_delay:g}s")
        self.stats.last_error = why
        return [SubscriptionRefused(why)]

    def _leased(self, ev: Leased) -> list[Action]:
        if not ev.batches:
            return []
        if not (self.connected and self._ready) or self.stopping:
            return [Release(tuple(b.first for b in ev.batches))]
        alarms = [b for b in ev.batches if b.lane == Priority.ALARM]
        if alarms:
            # alarms go ahead of data leased earlier and not yet handed to paho (each lane
            # keeps its own order)
            n = sum(1 for b in self._queued if b.lane == Priority.ALARM)
            self._queued[n:n] = alarms
            self._queued.extend(b for b in ev.batches if b.lane != Priority.ALARM)
        else:
            self._queued.extend(ev.batches)
        return self._send_next()

    def _send_next(self) -> list[Action]:
        if self._sending is not None or not self._queued:
            return []
        self._sending = self._queued.pop(0)
        return [Publish(self._sending, self.topic_of(self._sending))]

    def _sent(self, ev: Sent, now: float) -> list[Action]:
        b = self._sending
        if b is None or b.first != ev.first:
            raise ValueError(f"Sent({ev.first}) answers no Publish")
        self._sending = None
        topic = self.topic_of(b)
        if self.cfg.drain_rate and b.lane != Priority.ALARM:
            self._credit -= len(b.senml)
        self._inflight[b.first] = _InFlight(b, topic, ev.mid)
        self._mids[ev.mid] = b.first
        if topic not in self._conn_confirmed:
            self._unconfirmed_since.setdefault(topic, now)
        self.gate.sent(topic, now)
        self.stats.inflight = len(self._inflight)
        return self._send_next()

    def _send_failed(self, ev: SendFailed) -> list[Action]:
        b = self._sending
        if b is None or b.first != ev.first:
            raise ValueError(f"SendFailed({ev.first}) answers no Publish")
        self._sending = None
        # this batch and the rest of its lease were never handed to paho: back to the
        # store, in order (design note 0003), and reconnect
        back = (b.first, *(x.first for x in self._queued))
        self._queued.clear()
        self.connected = False
        return [Release(back), Disconnect(f"publish failed locally ({ev.reason}); "
                                          "reconnecting")]

    def _puback(self, ev: PubAck, now: float) -> list[Action]:
        first = self._mids.pop(ev.mid, None)
        p = None if first is None else self._inflight.get(first)
        if first is None or p is None:
            return []  # status/health messages, or already confirmed by its echo
        out: list[Action] = []
        if ev.failure:
            del self._inflight[first]
            b = p.batch
            self.stats.rejected_messages += 1
            why = f"PUBACK 0x{ev.code:02X} {ev.reason}"
            self.stats.last_error = f"{why} for seq {b.first}..{b.last}"
            out.append(Reject(b, why))
            out += self._note_denial(b, why, now)
        elif self.cfg.confirm == PUBACK:
            del self._inflight[first]
            out += self._delivered(p)
        else:
            p.acked_at = now  # now wait for its echo
        self.stats.inflight = len(self._inflight)
        return out

    def _echo(self, ev: Echo) -> list[Action]:
        p = self._inflight.get(ev.first)
        if self.cfg.confirm != ECHO or p is None or p.topic != ev.topic:
            # PUBACK mode confirms by PUBACK only; or a late echo of a batch already
            # returned to the store: it is sent again (a duplicate, never a loss)
            return []
        del self._inflight[ev.first]
        self._mids.pop(p.mid, None)
        self.stats.inflight = len(self._inflight)
        return self._delivered(p)

    def _delivered(self, p: _InFlight) -> list[Action]:
        b, s = p.batch, self.stats
        s.published_messages += 1
        s.published_readings += b.count
        s.by_lane[b.lane.label] = s.by_lane.get(b.lane.label, 0) + b.count
        self._conn_confirmed.add(p.topic)
        self._unconfirmed_since.pop(p.topic, None)
        out: list[Action] = [Ack(b)]
        if self.gate.confirmed(p.topic):
            out.append(TopicRestored(p.topic, b))
        return out

    def _lost(self, ev: ConnectionLost, now: float) -> list[Action]:
        out: list[Action] = []
        if self.connected:
            self.stats.last_error = f"disconnected: {ev.reason}"
            out += self._takeover_check(ev, now)
        if not self.stopping:
            for topic in self.gate.disconnected(self._unconfirmed_since, now):
                out.append(self._hold_notice(topic))
        self._unconfirmed_since.clear()
        self.connected = False
        return out

    def _takeover_check(self, ev: ConnectionLost, now: float) -> list[Action]:
        lived = now - self._connected_at
        if lived >= STABLE_CONNECTION:
            self._takeover.reset()
        short = (ev.code in (None, UNSPECIFIED) and not self.stopping
                 and lived < SHORT_CONNECTION)
        if ev.code == SESSION_TAKEN_OVER:
            suspected = False
        elif short and not self._unconfirmed_since:
            # closed right after opening, with nothing in flight, or (MQTT 3.1.1 during a
            # drain) only on topics this connection has seen echoes on: the broker was
            # delivering what we sent, so this is no denial pattern (a broker that closes
            # on a denied publish does so before the first echo on that topic)
            self._short_losses += 1
            if self._short_losses < SHORT_IN_A_ROW:
                return []
            suspected = True
            self._short_losses = 0
        elif short:
            # right after a publish to a topic not confirmed on this connection: a broker
            # refusing that topic looks the same (the DeliveryGate judges that); neither
            # evidence of a takeover nor against it
            return []
        else:
            self._short_losses = 0
            return []
        self._taken_over = True
        self.stats.takeovers += 1
        if suspected:
            why = (f"the broker closed {SHORT_IN_A_ROW} connections in a row within "
                   f"{SHORT_CONNECTION:g}s of connecting ({ev.reason})")
        else:
            why = f"the broker closed the session: 0x{SESSION_TAKEN_OVER:02X} Session taken over"
        self.stats.last_error = f"session taken over: {why}"
        return [SessionTakenOver(suspected, self.stats.takeovers, why)]

    def _closed(self, now: float) -> list[Action]:
        """Whatever is still held goes back to the store; pending denials are reported."""
        out: list[Action] = self._report_denials(now, force=True)
        if (self.cfg.failover == ANY and not self.stopping and self.broker is not None
                and self._start == self.broker):
            # a connection ended: the next round starts at the node after this one (no
            # failback; a node that just failed is tried last)
            self._start = (self.broker + 1) % self.cfg.brokers
        back = sorted(self.held_firsts())
        if back:
            out.append(Release(tuple(back)))
        self._inflight.clear()
        self._mids.clear()
        self._queued.clear()
        self._sending = None
        self.connected = self._ready = False
        self.stats.connected = False
        self.stats.inflight = 0
        return out

    # ------------------------------------------------------------------ timers and room

    def poll(self, now: float) -> list[Action]:
        """Timers (echo expiry, failback, health, denial reports) and the window's room:
        what to lease next. Call when woken and at least every second."""
        if not self.connected:
            return []
        if (self.cfg.failover == ORDERED and self.broker
                and now - self._connected_at > self.cfg.failback_after):
            self.connected = False
            return [Disconnect("trying the first broker again")]
        out: list[Action] = self._expire(now)
        if self._resubscribe_at is not None and now >= self._resubscribe_at:
            self._resubscribe_at = None  # until its SUBACK says again
            out.append(Subscribe((self.cfg.topic_data, self.cfg.topic_alarm)))
        if not self._ready:
            if now - self._connected_at > SUBACK_TIMEOUT:
                self.connected = False
                out.append(Disconnect(f"no SUBACK within {SUBACK_TIMEOUT:g}s"))
            return out
        if not self.stopping:
            out += self._leases(now)
        out += self._report_denials(now)
        if now >= self._next_health:
            self._next_health = now + self.cfg.health_interval
            out += self._report_denials(now, force=True)  # the health message counts them
            out.append(PublishHealth())
        return out

    def alarm_poll(self, now: float) -> list[Action]:
        """Only the alarm lane's room: asked between the actions of a data lease when new
        data was committed meanwhile, so an alarm does not wait for the rest of it."""
        if not (self.connected and self._ready) or self.stopping:
            return []
        alarm = self._held_alarms()
        room = self._alarm_room(now, alarm)
        return [Lease((Priority.ALARM,), room)] if room > 0 else []

    def _held_alarms(self) -> int:
        alarm = sum(1 for p in self._inflight.values() if p.batch.lane == Priority.ALARM)
        alarm += sum(1 for b in self._queued if b.lane == Priority.ALARM)
        if self._sending is not None and self._sending.lane == Priority.ALARM:
            alarm += 1
        return alarm

    def _alarm_room(self, now: float, alarm: int) -> int:
        alarm_cap = self.gate.allowance(self.cfg.topic_alarm, now, alarm)
        return self.cfg.alarm_slack - alarm if alarm_cap is None else alarm_cap

    def _leases(self, now: float) -> list[Action]:
        alarm = self._held_alarms()
        data = self.held - alarm
        alarm_cap = self.gate.allowance(self.cfg.topic_alarm, now, alarm)
        data_cap = self.gate.allowance(self.cfg.topic_data, now, data)
        out: list[Action] = []
        room = self._alarm_room(now, alarm)
        if room > 0:
            out.append(Lease((Priority.ALARM,), room))
            alarm += room
        # an alarm backlog may ride the data window too, but never past window + slack
        room = self.cfg.window - data if data_cap is None else data_cap
        room = min(room, self.cfg.window + self.cfg.alarm_slack - alarm - data,
                   self._paced_room(now))
        # a held alarm topic: its backlog must not ride the data window
        lanes = DATA_LANES if alarm_cap is not None else ALL_LANES
        # in steps: an alarm committed meanwhile is leased between them (carry_out)
        out += [Lease(lanes, min(DATA_LEASE_STEP, room - i))
                for i in range(0, max(room, 0), DATA_LEASE_STEP)]
        return out

    def _paced_room(self, now: float) -> int:
        """drain_rate: one data message when nothing is owed (a message may take the credit
        below zero: the next one waits until that is paid back)."""
        rate = self.cfg.drain_rate
        if not rate:
            return self.cfg.window
        burst = rate * PACE_BURST
        self._credit = burst if self._credit_at is None else min(
            self._credit + (now - self._credit_at) * rate, burst)
        self._credit_at = now
        return 1 if self._credit >= 0 else 0

    def wake_at(self, now: float) -> float | None:
        """drain_rate: when the credit is paid back and data may go again (None: not
        waiting for it)."""
        rate = self.cfg.drain_rate
        if not rate or self._credit >= 0 or self._credit_at is None:
            return None
        return self._credit_at + (-self._credit) / rate

    def _expire(self, now: float) -> list[Action]:
        """Echo mode: a batch acknowledged but not echoed within ``echo_timeout`` was
        dropped by the broker (or cannot be read back): back to the store, reported."""
        if self.cfg.confirm != ECHO:
            return []
        out: list[Action] = []
        timeout = self.cfg.echo_timeout
        for first, p in list(self._inflight.items()):
            if p.acked_at is None or now - p.acked_at < timeout:
                continue  # no PUBACK yet: a stalled connection, keepalive handles that
            del self._inflight[first]
            self._mids.pop(p.mid, None)
            out.append(Release((first,)))
            self.stats.unconfirmed_messages += 1
            why = (f"no echo within {timeout:g}s for seq {p.batch.first}..{p.batch.last} on "
                   f"{p.topic}")
            self.stats.last_error = why
            if self.gate.missing(p.topic, now, why):
                out.append(self._hold_notice(p.topic))
        self.stats.inflight = len(self._inflight)
        return out

    def _hold_notice(self, topic: str) -> TopicHeld:
        self.stats.held_topics += 1
        return TopicHeld(topic, self.gate.topics[topic].reason)

    def _note_denial(self, b: Batch, why: str, now: float) -> list[Action]:
        d = self._denied
        self._denied = ((1, b.first, b.last, why) if d is None else
                        (d[0] + 1, min(d[1], b.first), max(d[2], b.last), why))
        return self._report_denials(now)

    def _report_denials(self, now: float, force: bool = False) -> list[Action]:
        """One report per interval, counting every refused message since the last one:
        a denied topic must not flood the log."""
        if self._denied is None or not (force or now - self._denied_at
                                        >= DENIAL_REPORT_INTERVAL):
            return []
        n, lo, hi, why = self._denied
        self._denied, self._denied_at = None, now
        return [DenialsReport(n, lo, hi, why)]

    # ------------------------------------------------------------------ reporting

    def delivery(self) -> dict[str, Any]:
        """How deliveries on this channel are confirmed, and whether that is verified."""
        v3 = self.cfg.mqtt_version == 3
        out: dict[str, Any] = {"mqtt": "3.1.1" if v3 else "5", "confirm": self.cfg.confirm,
                               "unconfirmed": self.stats.unconfirmed_messages,
                               "holds": self.stats.held_topics}
        state = self.gate.state()
        if self.cfg.confirm == PUBACK:
            state = HELD if state == HELD else ("undetectable" if v3 else VERIFIED)
        out["state"] = state
        if state == "undetectable":
            out["note"] = "MQTT 3.1.1 without echo: denials on this channel are undetectable"
        elif state == HELD:
            out["held"] = {t.rsplit("/", 1)[-1]: tt.reason
                           for t, tt in self.gate.topics.items() if tt.state == HELD}
        elif state != VERIFIED:
            out["note"] = ("MQTT 3.1.1: no delivery confirmed by echo yet; denials on this "
                           "channel are unverified")
        return out
