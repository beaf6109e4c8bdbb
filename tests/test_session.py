"""The uplink session (edge_agent/uplink/session.py) without a broker: typed events in,
typed actions out, time passed in. A harness plays paho and the store the way the paho
adapter does, and checks the contract after every step:

- nothing is acknowledged in the store without a success PUBACK (or, in echo mode, its
  echo) for that very message;
- the window is never exceeded;
- every batch leased from the store is held by the session until it is acknowledged,
  rejected or released (nothing leased by nobody), and a closed connection releases all;
- per lane, a batch is never published while an older one of its lane waits in the store
  (the order bug of docs/design/0003).
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.core.backoff import Backoff
from edge_agent.core.model import Priority
from edge_agent.store.stats import Batch
from edge_agent.uplink import session as s
from edge_agent.uplink.confirm import ECHO, PUBACK

D, A = "p/data", "p/alarm"


@dataclass
class FakeStore:
    """The store's lease contract, in memory: per lane in order, alarms first."""

    batches: dict[int, Batch] = field(default_factory=dict)
    inflight: set[int] = field(default_factory=set)
    settled: dict[int, str] = field(default_factory=dict)  # first -> "ack" | "reject"
    next_seq: int = 1

    def add(self, lane: Priority, n: int = 1, size: int = 1, payload: int = 2) -> list[int]:
        firsts = []
        for _ in range(n):
            senml = b"[" + b" " * (payload - 2) + b"]"
            b = Batch(lane, self.next_seq, self.next_seq + size - 1, senml)
            self.batches[b.first] = b
            firsts.append(b.first)
            self.next_seq += size
        return firsts

    def pending(self, lane: Priority | None = None) -> list[int]:
        return sorted(f for f, b in self.batches.items()
                      if f not in self.settled and (lane is None or b.lane == lane))

    def lease(self, n: int, lanes: tuple[Priority, ...]) -> list[Batch]:
        out = [self.batches[f] for lane in sorted(lanes) for f in self.pending(lane)
               if f not in self.inflight][:n]
        self.inflight.update(b.first for b in out)
        return out

    def settle(self, first: int, how: str) -> None:
        assert first in self.inflight, f"{how} of {first}, which nobody leased"
        assert first not in self.settled
        self.inflight.discard(first)
        self.settled[first] = how

    def release(self, firsts: tuple[int, ...]) -> None:
        for f in firsts:
            assert f in self.inflight, f"release of {f}, which is not in flight"
            self.inflight.discard(f)


class Harness:
    def __init__(self, confirm: str = PUBACK, window: int = 4, slack: int = 2,
                 brokers: int = 2, echo_timeout: float = 5.0, failback: float = 300.0,
                 drain_rate: float = 0.0) -> None:
        self.cfg = s.SessionConfig(brokers=brokers, topic_data=D, topic_alarm=A,
                                   window=window, alarm_slack=slack, confirm=confirm,
                                   echo_timeout=echo_timeout, failback_after=failback,
                                   health_interval=30.0, reconnect_min=1.0,
                                   reconnect_max=8.0, drain_rate=drain_rate)
        self.session = s.Session(self.cfg, rng=random.Random(7))
        self.store = FakeStore()
        self.now = 0.0
        self.mid = 0
        self.fail_next = 0  # the next N publishes fail locally (connection just dropped)
        self.fail_after: int | None = None  # this many succeed, then one fails
        self.sent: dict[int, Batch] = {}  # mid -> batch, this connection
        self.confirmed: set[int] = set()  # firsts with a success PUBACK / echo fed
        self.published: list[Batch] = []
        self.actions: list[s.Action] = []
        self.committed = False  # the store was told of a commit (the adapter's notify)
        self.on_action: Callable[[s.Action], None] | None = None  # runs before each action

    # -- playing paho and the store -----------------------------------------------------

    def feed(self, ev: s.Event) -> list[s.Action]:
        acts = self.session.handle(ev, self.now)
        return self.run(acts)

    def poll(self, dt: float = 0.0) -> list[s.Action]:
        self.now += dt
        return self.run(self.session.poll(self.now))

    def connect(self, broker: int = 0) -> list[s.Action]:
        self.sent.clear()
        acts = self.feed(s.Connected(broker))
        if self.cfg.confirm == ECHO:
            acts += self.feed(s.Subscribed(True))
        return acts

    def close(self, lost: bool = True) -> list[s.Action]:
        acts = self.feed(s.ConnectionLost("gone")) if lost else []
        acts += self.feed(s.Closed())
        self.sent.clear()
        return acts

    def puback(self, mid: int, code: int = 0) -> list[s.Action]:
        b = self.sent.get(mid)
        if b is not None and code < 0x80 and self.cfg.confirm == PUBACK:
            self.confirmed.add(b.first)
        return self.feed(s.PubAck(mid, code, "x"))

    def echo(self, mid: int) -> list[s.Action]:
        b = self.sent[mid]
        self.confirmed.add(b.first)
        return self.feed(s.Echo(self.session.topic_of(b), b.first))

    def run(self, acts: list[s.Action]) -> list[s.Action]:
        # the adapter's order (session.carry_out): an action's answers before the next one
        done = self.session.carry_out(acts, self.do, self.urgent)
        self.check()
        self.actions += done
        return done

    def urgent(self) -> list[s.Action]:
        """The adapter asks for the alarm lane between data steps after a commit."""
        if not self.committed:
            return []
        self.committed = False
        return self.session.alarm_poll(self.now)

    def do(self, a: s.Action) -> list[s.Action]:
        if self.on_action is not None:
            self.on_action(a)
        if isinstance(a, s.Lease):
            got = self.store.lease(a.max_records, a.lanes)
            return self.session.handle(s.Leased(tuple(got)), self.now)
        if isinstance(a, s.Publish):
            self._check_order(a.batch)
            if self.fail_after is not None:
                self.fail_after -= 1
                if self.fail_after < 0:
                    self.fail_after, self.fail_next = None, self.fail_next + 1
            if self.fail_next:
                self.fail_next -= 1
                return self.session.handle(s.SendFailed(a.batch.first, "no conn"), self.now)
            self.mid += 1
            self.sent[self.mid] = a.batch
            self.published.append(a.batch)
            return self.session.handle(s.Sent(a.batch.first, self.mid), self.now)
        if isinstance(a, s.Ack):
            assert a.batch.first in self.confirmed, f"acked {a.batch.first} unconfirmed"
            self.store.settle(a.batch.first, "ack")
        elif isinstance(a, s.Reject):
            self.store.settle(a.batch.first, "reject")
        elif isinstance(a, s.Release):
            self.store.release(a.firsts)
        return []

    # -- the contract ---------------------------------------------------------------------

    def _check_order(self, b: Batch) -> None:
        held = self.session.held_firsts()
        older = [f for f in self.store.pending(b.lane) if f < b.first and f not in held]
        assert not older, f"{b.first} published while older {older} wait in the store"

    def check(self) -> None:
        held = self.session.held_firsts()
        assert self.store.inflight <= held | {0}, (
            f"leased by nobody: {sorted(self.store.inflight - held)}")
        alarm = sum(1 for f in held if self.store.batches[f].lane == Priority.ALARM)
        assert len(held) - alarm <= self.cfg.window
        assert len(held) <= self.cfg.window + self.cfg.alarm_slack


def kinds(acts: list[s.Action]) -> list[str]:
    return [type(a).__name__ for a in acts]


# ---------------------------------------------------------------------- table-driven

def test_connect_publishes_status_then_leases_alarms_first_within_the_window() -> None:
    h = Harness(window=4, slack=2)
    h.store.add(Priority.NORMAL, 6)
    h.store.add(Priority.ALARM, 1)
    assert kinds(h.connect()) == ["PublishStatus"]
    acts = h.poll()
    assert [a.batch.first for a in acts if isinstance(a, s.Publish)] == [7, 1, 2, 3, 4]
    assert h.session.held == 5 and kinds(h.poll()) == ["Lease"]  # alarm room only
    h.puback(2)
    assert [a.batch.first for a in h.poll() if isinstance(a, s.Publish)] == [5]
    assert h.store.settled == {1: "ack"}


def test_regression_a_local_publish_failure_releases_the_rest_of_the_lease() -> None:
    """Design note 0003: paho refused the 3rd publish of a lease (the connection had just
    dropped). Batches 4..6 were never handed to paho; they stayed leased by nobody and
    were sent after a restart, behind newer data."""
    h = Harness(window=8)
    h.store.add(Priority.NORMAL, 6)
    h.connect()
    h.fail_after = 2
    acts = h.poll()
    assert [a.batch.first for a in acts if isinstance(a, s.Publish)] == [1, 2, 3]
    assert s.Release((3, 4)) in acts  # 3 and the rest of its lease step (data in steps)
    cut = next(i for i, a in enumerate(acts) if isinstance(a, s.Disconnect))
    assert not h.session.connected
    assert not any(isinstance(a, s.Publish | s.Lease) for a in acts[cut:])  # 5, 6 stay
    assert h.store.inflight == h.session.held_firsts() == {1, 2}  # in flight in paho
    assert h.close(lost=False) == [s.Release((1, 2))]
    assert h.store.inflight == set()
    h.connect()
    assert [a.batch.first for a in h.poll() if isinstance(a, s.Publish)] == [1, 2, 3, 4, 5, 6]


def test_an_alarm_is_published_before_the_data_lease_that_follows_it() -> None:
    """The adapter once carried out the session's actions breadth first: the alarm's
    Publish (the answer to the alarm Lease) waited until the data Lease after it had read
    and decrypted a whole window of data."""
    h = Harness(window=4, slack=2)
    h.store.add(Priority.NORMAL, 6)
    h.store.add(Priority.ALARM, 1)
    h.connect()
    acts = h.poll()
    steps = [(type(a).__name__, a.batch.first if isinstance(a, s.Publish) else a.lanes)
             for a in acts if isinstance(a, s.Lease | s.Publish)]
    assert steps[:3] == [("Lease", (Priority.ALARM,)), ("Publish", 7),
                         ("Lease", s.ALL_LANES)]


def test_an_alarm_committed_during_a_data_lease_goes_out_after_at_most_one_data_message(
        ) -> None:
    h = Harness(window=6, slack=2)
    h.store.add(Priority.NORMAL, 6)
    h.connect()
    seen: list[int] = []

    def commit_an_alarm_after_the_first_data_publish(a: s.Action) -> None:
        if isinstance(a, s.Publish):
            seen.append(a.batch.first)
            if len(seen) == 1:
                h.store.add(Priority.ALARM, 1)  # the writer commits an alarm meanwhile
                h.committed = True
    h.on_action = commit_an_alarm_after_the_first_data_publish
    h.poll()
    assert seen == [1, 2, 7, 3, 4, 5, 6]  # 2 was already being handed to paho
    assert len(h.session.held_firsts()) == 7


def test_without_a_commit_the_data_lease_is_not_interrupted() -> None:
    h = Harness(window=4, slack=2)
    h.store.add(Priority.NORMAL, 4)
    h.connect()
    h.committed = False
    leases = [a for a in h.poll() if isinstance(a, s.Lease)]
    assert [(a.lanes, a.max_records) for a in leases] == [
        ((Priority.ALARM,), 2), (s.ALL_LANES, s.DATA_LEASE_STEP), (s.ALL_LANES, 2)]


def test_an_alarm_committed_while_acks_are_handled_goes_before_the_next_ack() -> None:
    h = Harness(window=4, slack=2)
    h.store.add(Priority.NORMAL, 4)
    h.connect()
    h.poll()
    order: list[str] = []

    def note(a: s.Action) -> None:
        if isinstance(a, s.Ack):
            order.append(f"ack {a.batch.first}")
            if a.batch.first == 1:
                h.store.add(Priority.ALARM, 1)
                h.committed = True
        elif isinstance(a, s.Publish):
            order.append(f"publish {a.batch.first}")
    h.on_action = note
    acts = [a for mid in (1, 2) for a in h.puback(mid)]
    assert order == ["ack 1", "publish 5", "ack 2"]
    assert sum(isinstance(a, s.Ack) for a in acts) == 2


def test_alarms_leased_later_go_ahead_of_data_not_yet_handed_to_paho() -> None:
    h = Harness(window=4, slack=2)
    h.connect()
    data = h.store.add(Priority.NORMAL, 3)
    alarm = h.store.add(Priority.ALARM, 1)
    sess = h.session
    d = tuple(h.store.batches[f] for f in data)
    first = sess.handle(s.Leased(d), h.now)  # the first goes to paho, two wait
    assert [a.batch.first for a in first if isinstance(a, s.Publish)] == [data[0]]
    assert sess.handle(s.Leased((h.store.batches[alarm[0]],)), h.now) == []  # one at a time
    nxt = sess.handle(s.Sent(data[0], 1), h.now)
    assert [a.batch.first for a in nxt if isinstance(a, s.Publish)] == alarm


def _ack_all(h: Harness) -> None:
    for mid in list(h.sent):
        if h.sent[mid].first not in h.confirmed:
            h.puback(mid)


def test_drain_rate_paces_data_one_message_at_a_time_and_never_alarms() -> None:
    rate = 10_000.0  # SenML bytes per second
    h = Harness(window=8, slack=4, drain_rate=rate)
    h.store.add(Priority.NORMAL, 200, payload=1_000)
    h.connect()
    sent_at: list[float] = []
    for _ in range(300):  # 3 s, polled every 10 ms like a busy pump
        before = len(h.published)
        h.poll(0.01)
        sent_at += [h.now] * (len(h.published) - before)
        _ack_all(h)
    # 10 kB/s of 1 kB messages: 10 per second (plus the saved-up burst), never two at once
    assert 29 <= len(sent_at) <= 32
    gaps = [b - a for a, b in itertools.pairwise(sent_at)]
    assert gaps[0] >= 0.049 and all(g >= 0.099 for g in gaps[1:])  # after the 50 ms burst
    h.store.add(Priority.ALARM, 4, payload=1_000)
    before = len(h.published)
    h.poll(0.001)  # owed credit for data: alarms go at once
    assert [b.lane for b in h.published[before:]] == [Priority.ALARM] * 4


def test_drain_rate_says_when_data_may_go_again() -> None:
    h = Harness(window=8, drain_rate=1_000.0)
    h.store.add(Priority.NORMAL, 3, payload=500)
    h.connect()
    h.poll()
    assert len(h.published) == 1
    due = h.session.wake_at(h.now)
    assert due is not None and due == pytest.approx(h.now + 0.45)  # 500 B - 50 B saved
    h.poll(0.44)
    assert len(h.published) == 1
    h.poll(0.01)
    assert len(h.published) == 2


def test_without_drain_rate_a_poll_fills_the_window() -> None:
    h = Harness(window=8)
    h.store.add(Priority.NORMAL, 20, payload=100_000)
    h.connect()
    h.poll()
    assert len(h.published) == 8 and h.session.wake_at(h.now) is None


def test_an_alarm_backlog_rides_the_data_window_but_never_past_window_plus_slack() -> None:
    h = Harness(window=3, slack=2)
    h.store.add(Priority.ALARM, 12)
    h.connect()
    h.poll()
    h.poll()  # the window counts alarms that came through the data lease too
    assert h.session.held == 5 and len(h.published) == 5
    h.puback(1)
    h.poll()
    assert h.session.held == 5 and [b.first for b in h.published] == [1, 2, 3, 4, 5, 6]


def test_puback_failure_dead_letters_and_reports_once_per_interval() -> None:
    h = Harness()
    h.store.add(Priority.NORMAL, 3)
    h.connect()
    h.poll()
    acts = h.puback(1, 0x87) + h.puback(2, 0x87)
    assert next(a for a in acts if isinstance(a, s.Reject)).why.startswith("PUBACK 0x87")
    reports = [a for a in acts if isinstance(a, s.DenialsReport)]
    assert len(reports) == 1 and reports[0].count == 1  # the first at once, then batched
    acts = h.poll(61.0)
    (rep,) = [a for a in acts if isinstance(a, s.DenialsReport)]
    assert (rep.count, rep.low, rep.high) == (1, 2, 2)
    assert h.store.settled == {1: "reject", 2: "reject"}
    assert h.session.stats.rejected_messages == 2


def test_echo_mode_acks_only_on_the_echo_and_holds_a_silent_topic() -> None:
    h = Harness(confirm=ECHO, echo_timeout=5.0)
    h.store.add(Priority.NORMAL, 2)
    h.store.add(Priority.ALARM, 1)
    assert kinds(h.feed(s.Connected(0))) == ["PublishStatus", "Subscribe"]
    assert h.poll() == []  # no lease before the SUBACK
    h.feed(s.Subscribed(True))
    h.poll()
    mids = {b.first: m for m, b in h.sent.items()}
    h.puback(mids[3])
    assert h.store.settled == {}  # a PUBACK is not a delivery here
    h.echo(mids[3])
    assert h.store.settled == {3: "ack"}
    h.puback(mids[1])
    h.puback(mids[2])
    acts = h.poll(5.0)  # no echo of the data within echo_timeout
    assert s.Release((1,)) in acts and s.Release((2,)) in acts
    (held,) = [a for a in acts if isinstance(a, s.TopicHeld)]
    assert held.topic == D and "no echo" in held.reason
    assert h.session.delivery()["state"] == "held"
    # held: one probe at a time, oldest first, when due
    assert not [a for a in h.poll(1.0) if isinstance(a, s.Publish)]
    probe = [a for a in h.poll(4.0) if isinstance(a, s.Publish)]
    assert [a.batch.first for a in probe] == [1]
    mid = max(h.sent)
    h.puback(mid)
    acts = h.echo(mid)
    assert any(isinstance(a, s.TopicRestored) for a in acts)
    assert [a.batch.first for a in h.poll() if isinstance(a, s.Publish)] == [2]


def test_a_late_echo_of_a_released_batch_is_ignored() -> None:
    h = Harness(confirm=ECHO)
    h.store.add(Priority.NORMAL, 1)
    h.connect()
    h.poll()
    h.close()
    assert h.feed(s.Echo(D, 1)) == [] and h.store.settled == {}


def test_repeated_disconnects_right_after_publishing_hold_the_topic() -> None:
    h = Harness()
    h.store.add(Priority.NORMAL, 1)
    notices: list[s.Action] = []
    for _ in range(3):
        h.connect()
        h.poll(1.0)
        notices += [a for a in h.close() if isinstance(a, s.TopicHeld)]
    assert [n.topic for n in notices] == [D]  # type: ignore[union-attr]
    assert h.session.stats.held_topics == 1


def test_failover_round_then_backoff_with_full_jitter_then_failback() -> None:
    h = Harness(brokers=2, failback=60.0)
    sess = h.session
    assert sess.next_connection(0.0) == s.Connect(0)
    sess.handle(s.ConnectFailed(0, "refused"), 0.0)
    assert sess.next_connection(0.0) == s.Connect(1)
    sess.handle(s.ConnectFailed(1, "refused"), 0.0)
    delays = []
    for _ in range(6):
        step = sess.next_connection(0.0)
        assert isinstance(step, s.Backoff)
        delays.append(step.seconds)
        assert sess.next_connection(0.0) == s.Connect(0)
        sess.handle(s.ConnectFailed(0, "x"), 0.0)
        sess.handle(s.ConnectFailed(1, "x"), 0.0)
    ref = Backoff(1.0, 8.0, rng=random.Random(7))
    assert delays == [ref.next_delay() for _ in range(6)]
    assert sess.stats.connect_failures == 14
    h.connect(broker=1)
    assert sess.next_connection(0.0) == s.Connect(0)  # a new round starts at the first
    assert h.poll(59.0) and sess.connected
    acts = h.poll(2.0)
    assert kinds(acts) == ["Disconnect"] and "first broker" in acts[0].reason  # type: ignore[union-attr]


def test_stopping_leases_nothing_more_and_waits_for_the_window() -> None:
    h = Harness()
    h.store.add(Priority.NORMAL, 6)
    h.connect()
    h.poll()
    h.feed(s.Stopping())
    assert not [a for a in h.poll() if isinstance(a, s.Lease)]
    assert not h.session.idle
    for mid in list(h.sent):
        h.puback(mid)
    assert h.session.idle and len(h.store.settled) == 4


# ---------------------------------------------------------------------- any sequence

steps = st.lists(st.one_of(
    st.tuples(st.just("add"), st.sampled_from(list(Priority)), st.integers(1, 4)),
    st.tuples(st.just("poll"), st.floats(0.0, 8.0)),
    st.tuples(st.just("puback"), st.integers(0, 20), st.sampled_from([0, 0, 0, 0x87])),
    st.tuples(st.just("echo"), st.integers(0, 20)),
    st.tuples(st.just("stray"), st.integers(0, 40)),
    st.tuples(st.just("lost"), st.booleans()),
    st.tuples(st.just("fail"), st.integers(1, 3)),
    st.tuples(st.just("connect"), st.integers(0, 1)),
), max_size=60)


@pytest.mark.parametrize("confirm", [PUBACK, ECHO])
@settings(max_examples=250, deadline=None)
@given(script=steps)
def test_any_event_sequence_keeps_the_contract(confirm: str,
                                               script: list[tuple[object, ...]]) -> None:
    h = Harness(confirm=confirm, window=3, slack=2, echo_timeout=4.0, failback=20.0)
    for step in script:
        kind = step[0]
        if kind == "add":
            lane, n = step[1], step[2]
            assert isinstance(lane, Priority) and isinstance(n, int)
            h.store.add(lane, n, size=2)
        elif kind == "connect" and not h.session.connected:
            h.connect(int(step[1]))  # type: ignore[call-overload]
        elif kind == "poll":
            h.poll(float(step[1]))  # type: ignore[arg-type]
        elif kind in ("puback", "echo") and h.sent:
            mid = sorted(h.sent)[int(step[1]) % len(h.sent)]  # type: ignore[call-overload]
            if kind == "puback":
                h.puback(mid, int(step[2]))  # type: ignore[call-overload]
            elif confirm == ECHO:
                h.echo(mid)
        elif kind == "stray":  # PUBACK of a status message; echoes that confirm nothing
            n = int(step[1])  # type: ignore[call-overload]
            h.feed(s.PubAck(10_000 + n))
            h.feed(s.Echo(D, 10_000 + n))
            h.feed(s.Echo("p/other", n))
            if confirm == PUBACK:  # no echo confirms anything on a PUBACK channel
                h.feed(s.Echo(D, n))
                h.feed(s.Echo(A, n))
        elif kind == "fail":
            h.fail_next = int(step[1])  # type: ignore[call-overload]
        elif kind == "lost" and (h.session.connected or step[1]):
            h.close(lost=bool(step[1]))
        if not h.session.connected and h.session.held:
            h.close(lost=False)  # the adapter closes what the session gave up
        h.check()
    h.close(lost=False)
    assert h.store.inflight == set()
    assert h.session.held == 0
    # at least once, in order per lane: every batch settled or still waiting in the store
    for lane in Priority:
        firsts = [b.first for b in h.published if b.lane == lane]
        firsts_once = list(dict.fromkeys(firsts))
        assert firsts_once == sorted(firsts_once), f"lane {lane}: first sends out of order"


# ---------------------------------------------------------------------- takeovers, alarms


def test_session_taken_over_is_reported_counted_and_backs_off() -> None:
    """MQTT 5 DISCONNECT 0x8E: another client uses our client id. Reported once per
    takeover (the adapter logs the first), counted, and the next connect waits first."""
    h = Harness(brokers=1)
    sess = h.session
    assert sess.next_connection(0.0) == s.Connect(0)
    h.connect()
    h.poll(3.0)
    acts = h.feed(s.ConnectionLost("0x8E Session taken over", s.SESSION_TAKEN_OVER))
    (note,) = [a for a in acts if isinstance(a, s.SessionTakenOver)]
    assert not note.suspected and note.count == 1 and "0x8E" in note.reason
    assert sess.stats.takeovers == 1 and "taken over" in (sess.stats.last_error or "")
    h.feed(s.Closed())
    step = sess.next_connection(h.now)
    assert isinstance(step, s.Backoff)  # not straight back in (that would ping-pong)
    assert sess.next_connection(h.now) == s.Connect(0)
    # an ordinary drop after that is no takeover
    h.connect()
    h.poll(1.0)
    acts = h.feed(s.ConnectionLost("0x80 dropped", 0x80))
    assert not [a for a in acts if isinstance(a, s.SessionTakenOver)]
    h.feed(s.Closed())
    assert sess.next_connection(h.now) == s.Connect(0)
    assert sess.stats.takeovers == 1


def test_takeover_backoff_grows_and_resets_after_a_stable_connection() -> None:
    h = Harness(brokers=1)
    sess = h.session
    caps = []
    for _ in range(5):
        h.connect()
        h.poll(1.0)
        h.feed(s.ConnectionLost("taken", s.SESSION_TAKEN_OVER))
        h.feed(s.Closed())
        caps.append(sess._takeover.cap())
        assert isinstance(sess.next_connection(h.now), s.Backoff)
    assert caps == sorted(caps) and caps[-1] > caps[0]
    h.connect()
    h.poll(s.STABLE_CONNECTION + 1)
    h.feed(s.ConnectionLost("taken", s.SESSION_TAKEN_OVER))
    assert sess._takeover.attempt == 0  # reset: a stable connection had lived meanwhile
    assert sess.stats.takeovers == 6


@pytest.mark.parametrize("version", [3, 5])
def test_takeover_suspected_after_short_connections_in_a_row(version: int) -> None:
    """MQTT 3.1.1 says nothing, and some MQTT 5 brokers just close the socket: three
    connections in a row closed without a reason within seconds of their CONNACK are
    reported as a suspected takeover; a long one clears the count."""
    h = Harness(brokers=1)
    h.session = s.Session(s.SessionConfig(**{**h.cfg.__dict__, "mqtt_version": version}),
                          rng=random.Random(1))
    sess = h.session
    notes: list[s.Action] = []
    for _ in range(s.SHORT_IN_A_ROW):
        h.connect()
        h.poll(1.0)
        notes += [a for a in h.close() if isinstance(a, s.SessionTakenOver)]
    assert len(notes) == 1 and notes[0].suspected  # type: ignore[union-attr]
    assert sess.stats.takeovers == 1
    h.connect()
    h.poll(s.SHORT_CONNECTION + 5)
    assert not [a for a in h.close() if isinstance(a, s.SessionTakenOver)]


def test_alarms_pending_cap_the_reconnect_backoff() -> None:
    """Same random draws: without alarms the waits grow to reconnect_max (8 s here); with
    alarms waiting in the store none is longer than ALARM_RECONNECT_MAX."""
    def waits(alarms: bool) -> list[float]:
        sess = Harness(brokers=1).session
        out = []
        for _ in range(12):
            assert sess.next_connection(0.0, alarms) == s.Connect(0)
            sess.handle(s.ConnectFailed(0, "refused"), 0.0)
            step = sess.next_connection(0.0, alarms)
            assert isinstance(step, s.Backoff)
            out.append(step.seconds)
        return out

    plain, urgent = waits(False), waits(True)
    assert max(plain) > s.ALARM_RECONNECT_MAX
    assert max(urgent) <= s.ALARM_RECONNECT_MAX
    assert urgent == [min(w, s.ALARM_RECONNECT_MAX) for w in plain]


def test_connections_closed_right_after_a_publish_are_not_called_a_takeover() -> None:
    """MQTT 3.1.1: a broker that closes the connection on a denied publish looks like a
    short connection too; that is the DeliveryGate's case (a held topic), not a takeover."""
    h = Harness(confirm=ECHO, brokers=1)
    h.session = s.Session(s.SessionConfig(**{**h.cfg.__dict__, "mqtt_version": 3}),
                          rng=random.Random(3))
    h.store.add(Priority.NORMAL, 20)
    notes: list[s.Action] = []
    for _ in range(s.SHORT_IN_A_ROW):
        h.connect()
        h.poll(0.5)  # publishes data; the broker closes before any echo
        assert h.session._unconfirmed_since
        notes += h.close()
    assert not [a for a in notes if isinstance(a, s.SessionTakenOver)]
    assert h.session.stats.takeovers == 0
    assert [a for a in notes if isinstance(a, s.TopicHeld)]  # the gate's verdict instead


def test_a_3_1_1_session_closed_during_a_confirmed_drain_is_a_suspected_takeover() -> None:
    """MQTT 3.1.1, draining a backlog: another client with our client id makes the broker
    close each connection while messages are in flight, but only after echoes showed the
    broker delivers what we send. That is no denial pattern (a broker closing on a denied
    publish does so before any echo on the topic): a suspected takeover, no held topic."""
    h = Harness(confirm=ECHO, brokers=1)
    h.session = s.Session(s.SessionConfig(**{**h.cfg.__dict__, "mqtt_version": 3}),
                          rng=random.Random(3))
    h.store.add(Priority.NORMAL, 200)
    notes: list[s.Action] = []
    for _ in range(s.SHORT_IN_A_ROW):
        h.connect()
        h.poll(0.5)  # the window goes out
        first_mid = min(h.sent)
        notes += h.echo(first_mid)  # the broker delivers: its echo comes back
        assert h.session._inflight  # the rest of the window is still in flight
        assert not h.session._unconfirmed_since
        notes += h.close()  # then the session is taken over
    takeovers = [a for a in notes if isinstance(a, s.SessionTakenOver)]
    assert len(takeovers) == 1 and takeovers[0].suspected
    assert h.session.stats.takeovers == 1
    assert not [a for a in notes if isinstance(a, s.TopicHeld)]
    assert h.session.gate.state() != "held"
    # what was in flight went back to the store, nothing was rejected
    assert "reject" not in h.store.settled.values()
