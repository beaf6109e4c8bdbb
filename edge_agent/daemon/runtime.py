"""The daemon: sensors -> ingest queue -> writer (group commit) -> store -> uplink.

Every thread is started here and watched here. A sensor that dies is logged and restarted
with backoff; a writer or uplink that dies is a bug that stops the agent with an error
(systemd restarts it; the store keeps what was accepted).
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import msgspec

from edge_agent.config.schema import SiteConfig
from edge_agent.core.backoff import Backoff
from edge_agent.core.clock import Clock, SystemClock
from edge_agent.core.errors import (
    DurabilityError,
    EdgeAgentError,
    StoreClosedError,
    StoreError,
    StoreFullError,
)
from edge_agent.core.model import Channel, Reading
from edge_agent.daemon import health
from edge_agent.daemon.ingest import IngestQueue
from edge_agent.daemon.memtrim import Trimmer, libc_trim, pin_mmap_threshold
from edge_agent.daemon.status import runtime_dir
from edge_agent.daemon.storescan import StoreScan
from edge_agent.daemon.watch_hub import WatchHub
from edge_agent.daemon.watch_socket import WatchServer, open_watch, summary_of
from edge_agent.daemon.welfare_service import WelfareService, build_service
from edge_agent.devices.base import Sensor, SensorContext, SensorSpec
from edge_agent.devices.modem import GSM_MODEM
from edge_agent.devices.registry import SensorType
from edge_agent.hal.backend import open_hardware
from edge_agent.security import events as secevents
from edge_agent.security.keys import load_key, load_or_create_key
from edge_agent.security.periodkeys import PeriodKeyring, open_keyring
from edge_agent.security.privacy import PrivacyStage, load_pseudonym_key
from edge_agent.store.channel_store import ChannelStore
from edge_agent.uplink.paho_adapter import ChannelUplink, UplinkSettings

log = logging.getLogger("edge_agent.daemon.runtime")
MODEM = GSM_MODEM.name


def credential_key(channel: Channel) -> Path | None:
    """``$CREDENTIALS_DIRECTORY/<channel>.key`` when systemd passed it (LoadCredential=)."""
    creds = os.environ.get("CREDENTIALS_DIRECTORY")
    if not creds:
        return None
    path = Path(creds) / f"{channel.value}.key"
    return path if path.is_file() else None


class ChannelWriter:
    """Commits a channel's queued readings: alarms at once (synced), the rest grouped."""

    def __init__(self, channel: Channel, queue: IngestQueue, store: ChannelStore,
                 commit_interval: float, on_commit: Any, clock: Clock,
                 on_alarms: Callable[[list[tuple[int, int]], list[Reading]], None] | None = None,
                 on_accepted: Callable[[list[tuple[int, int]], list[Reading]], None] | None = None,
                 ) -> None:
        self.channel = channel
        self.on_accepted = on_accepted  # every committed batch (the live view); never blocks
        self.on_alarms = on_alarms  # told the sequence ranges of committed alarms
        self.queue = queue
        self.store = store
        self.commit_interval = commit_interval
        self.on_commit = on_commit
        self.clock = clock
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name=f"writer-{channel.value}",
                                       daemon=True)
        self.log = logging.getLogger(f"edge_agent.writer.{channel.value}")
        self.heartbeat = clock.monotonic()

    def _run(self) -> None:
        try:
            next_commit = self.clock.monotonic() + self.commit_interval
            while True:
                self.heartbeat = self.clock.monotonic()
                alarms = self.queue.take_alarms()
                if alarms:
                    self._commit(alarms, alarms=True)
                now = self.clock.monotonic()
                stopping = self.stop.is_set()
                if now >= next_commit or stopping:
                    self._commit(self.queue.take_all())
                    next_commit = now + self.commit_interval
                    if stopping:
                        self._commit(self.queue.take_alarms(), alarms=True)
                        return
                self.queue.wait(max(0.0, min(next_commit - now, 0.5)))
                if self.queue.half_full():
                    next_commit = self.clock.monotonic()  # commit early under load
        except Exception as exc:
            self.error = exc
            self.log.exception("writer crashed")

    def _commit(self, readings: list[Reading], alarms: bool = False) -> None:
        """Commit, with one more try after a storage failure. Readings that are finally not
        accepted are counted once (``store.not_accepted``), however many tries it took."""
        if not readings:
            return
        for attempt in (1, 2):
            try:
                ranges = self.store.append(readings, final=False)
            except DurabilityError as exc:
                # The failed segment is never written again; one more try goes to a new one.
                self.log.error("commit of %d readings failed (attempt %d): %s",
                               len(readings), attempt, exc)
                continue
            except StoreFullError as exc:
                self.log.error("store full: %s", exc)
                break
            except StoreClosedError:
                raise
            except StoreError as exc:  # e.g. no period key could be made: not accepted
                self.log.error("commit of %d readings failed: %s", len(readings), exc)
                break
            if alarms and self.on_alarms is not None:
                self.on_alarms(ranges, readings)
            if self.on_accepted is not None:
                self.on_accepted(ranges, readings)
            self.on_commit()
            return
        self.store.note_not_accepted(len(readings))
        self.log.error("%d readings NOT accepted", len(readings))


@dataclass
class SensorRunner:
    sensor: Sensor
    thread: threading.Thread | None = None
    restarts: int = 0
    restart_at: float = 0.0
    backoff: Backoff | None = None


class Agent:
    def __init__(self, config: SiteConfig, sensor_types: Mapping[str, SensorType],
                 clock: Clock | None = None, stop_event: threading.Event | None = None,
                 fsync: Callable[[int], None] = os.fsync) -> None:
        self.cfg = config
        self._fsync = fsync  # the stores' fsync (fault rigs inject failures here)
        self.clock = clock or SystemClock()
        self.stop_event = stop_event or threading.Event()
        self.stores: dict[Channel, ChannelStore] = {}
        self.queues: dict[Channel, IngestQueue] = {}
        self.writers: dict[Channel, ChannelWriter] = {}
        self.uplinks: dict[Channel, ChannelUplink] = {}
        self.scans: dict[Channel, StoreScan] = {}  # the stores' scans after READY=1
        self.trimmer = Trimmer(self.clock, libc_trim())  # heap back to the kernel
        pin_mmap_threshold()  # large buffers stay out of the heap
        self.sensors: list[SensorRunner] = []
        self.last_readings: dict[str, Reading] = {}  # per sensor, for `edge-agent status`
        self.keyrings: dict[Channel, PeriodKeyring] = {}
        self._sensor_stop = threading.Event()
        self._sensor_types = sensor_types
        self.welfare: WelfareService | None = None  # welfare rules and local escalation
        self.watch = WatchHub()  # accepted readings for `edge-agent watch`
        self.watch_server: WatchServer | None = None
        self.hardware = open_hardware(config.hardware, self.clock)  # once, for every sensor
        self._build()

    # ------------------------------------------------------------------ construction

    def _build(self) -> None:
        cfg = self.cfg
        cfg.state_dir.mkdir(parents=True, exist_ok=True, mode=0o700)
        try:
            self._build_channels()
            self._build_sensors()
            self._build_welfare()
        except BaseException:
            # A store holds its directory's lock until closed: a half-built agent must not
            # keep one (a reload falling back to the old configuration reopens it).
            for store in self.stores.values():
                store.close()
            self.hardware.close()
            raise

    def _signing_key(self) -> Any:
        """The node's Ed25519 key when a channel seals (created like the at-rest keys)."""
        if not any(cc.seal is not None and cc.seal.enabled for cc in self.cfg.channels.values()):
            return None
        from edge_agent.security import nodekey

        key, path, created = nodekey.load_or_create(self.cfg.state_dir)
        if created:
            pub = path.with_name(nodekey.ENROLMENT)
            nodekey.write_enrolment(pub, nodekey.enrolment(self.cfg.site, self.cfg.node,
                                                           key.public_key()))
            fp = nodekey.fingerprint(key.public_key())
            log.warning("created the node signing key %s (mode 0600, %s); the platform must "
                        "enrol %s or it rejects this node's sealed payloads", path, fp, pub)
            secevents.emit("keys", "created", detail=f"node signing key: {path} {fp}")
        return key

    def _build_channels(self) -> None:
        cfg = self.cfg
        signing_key = self._signing_key()
        for ch, cc in cfg.channels.items():
            key_path = cfg.key_file(ch)
            cred = credential_key(ch)  # systemd LoadCredential= wins over the state dir
            if cred is not None:
                key = load_key(cred)
            elif cc.key_file is not None:
                key = load_key(key_path)
            else:
                key, created = load_or_create_key(key_path)
                if created:
                    log.warning("created a new at-rest key for channel %s: %s (mode 0600); "
                                "back it up or buffered data is unreadable if it is lost",
                                ch.value, key_path)
            keys = open_keyring(cfg.state_dir, ch.value, key, float(cfg.store.key_period),
                                cfg.store.retention.get(ch), self.clock,
                                on_event=secevents.sink(ch.value))
            if isinstance(keys, PeriodKeyring):
                self.keyrings[ch] = keys
            store = ChannelStore(
                cfg.state_dir / "store", ch, keys, max_bytes=int(cfg.store.max_bytes),
                segment_bytes=int(cfg.store.segment_bytes), batch_max=cfg.store.batch_max,
                retention=cfg.store.retention.get(ch), clock=self.clock, fsync=self._fsync,
                on_event=secevents.sink(ch.value), recover_later=True,
                hint_dir=runtime_dir())
            self.stores[ch] = store
            self.queues[ch] = IngestQueue(cfg.store.queue_max, name=ch.value, clock=self.clock,
                                          max_bytes=int(cfg.store.queue_max_bytes))
            settings = UplinkSettings(node=cfg.node, site=cfg.site, channel=ch,
                                      topic_prefix=cfg.topic_prefix(ch),
                                      client_id=cfg.client_id(ch), config=cc,
                                      signing_key=signing_key)
            it = ch is Channel.IT and (bool(cfg.welfare) or cfg.escalate is not None)
            uplink = ChannelUplink(settings, store, self.clock,
                                   health=lambda ch=ch: self.health(ch),  # type: ignore[misc]
                                   on_alarm_delivered=self._alarm_delivered if it else None,
                                   on_alarm_ack=self._alarm_ack if it else None)
            self.uplinks[ch] = uplink
            self.writers[ch] = ChannelWriter(ch, self.queues[ch], store,
                                             float(cfg.store.commit_interval), uplink.notify,
                                             self.clock,
                                             on_alarms=self._alarms_accepted if it else None,
                                             on_accepted=partial(self.watch.accepted, ch))
            self.scans[ch] = StoreScan(store, self._sensor_stop, uplink.notify,
                                       lambda ch=ch: self._scanned(ch))  # type: ignore[misc]

    def _build_sensors(self) -> None:
        cfg = self.cfg
        self.privacy = PrivacyStage(cfg.sensors, load_pseudonym_key(cfg.state_dir) if any(
            s.subject for s in cfg.sensors if s.enabled) else None)
        ctx = SensorContext(hw=self.hardware, clock=self.clock,
                            log=logging.getLogger("edge_agent.sensor"),
                            state_dir=cfg.state_dir / "sensors")
        for sc in cfg.sensors:
            if not sc.enabled:
                continue
            stype = self._sensor_types[sc.type]
            spec = SensorSpec(id=sc.id, type=sc.type, channel=sc.channel, priority=sc.priority,
                              interval=sc.interval)
            try:
                sensor = stype.build(spec, sc.options, ctx)
            except (EdgeAgentError, OSError) as exc:
                log.error("sensor %s (%s) cannot start: %s", sc.id, sc.type, exc)
                continue
            self.sensors.append(SensorRunner(sensor, backoff=Backoff(1.0, 60.0)))

    def _build_welfare(self) -> None:
        cfg = self.cfg
        modems = {r.sensor.id: r.sensor for r in self.sensors if r.sensor.spec.type == MODEM}
        it = self.queues.get(Channel.IT)

        def publish(readings: list[Reading]) -> bool:
            return it is not None and it.put(readings, self._sensor_stop)

        self.welfare = build_service(cfg, clock=self.clock, hw=self.hardware, modems=modems,
                                     pseudonym_key=lambda: load_pseudonym_key(cfg.state_dir),
                                     publish=publish)

    def _alarms_accepted(self, ranges: list[tuple[int, int]], readings: list[Reading]) -> None:
        if self.welfare is not None:
            self.welfare.alarms_accepted(ranges, readings)

    def _alarm_delivered(self, first: int, last: int) -> None:
        if self.welfare is not None:
            self.welfare.delivered(first, last)

    def _alarm_ack(self, payload: bytes) -> None:
        if self.welfare is not None:
            self.welfare.ack_payload(payload)

    # ------------------------------------------------------------------ running

    def emit_for(self, sensor: Sensor) -> Any:
        queue = self.queues[sensor.spec.channel]
        stop = self._sensor_stop
        privacy = self.privacy
        last = self.last_readings
        welfare = self.welfare

        def emit(readings: list[Reading]) -> None:
            if welfare is not None:
                welfare.observe(readings)  # on the node only: before the allow-list
            kept = privacy.apply(readings)  # allow-list and pseudonyms, before anything is kept
            if kept:
                last[sensor.id] = kept[-1]
                queue.put(kept, stop)

        return emit

    def _scanned(self, ch: Channel) -> None:
        """Every segment the store of ``ch`` found at open is scanned (its scan thread)."""
        line = recovered_line(ch.value, self.stores[ch].stats(), self.clock.time())
        if line:
            log.info("%s", line)
        self.trimmer.request()  # the scan's buffers are garbage now

    def start(self) -> None:
        for ch in self.cfg.channels:
            self.writers[ch].thread.start()
            self.uplinks[ch].start()
            self.scans[ch].thread.start()
        if self.welfare is not None:
            self.welfare.start()
        for runner in self.sensors:
            self._start_sensor(runner)
        self.watch_server = open_watch(self.cfg.state_dir, self.watch, self._watch_summary, {
            "site": str(self.cfg.site), "node": str(self.cfg.node),
            "channels": [c.value for c in self.cfg.channels]})
        log.info("running: site %s node %s, %d sensors, channels %s", self.cfg.site,
                 self.cfg.node, len(self.sensors), ",".join(c.value for c in self.cfg.channels))

    def _start_sensor(self, runner: SensorRunner) -> None:
        s = runner.sensor

        def target() -> None:
            try:
                s.run(self.emit_for(s), self._sensor_stop)
            except Exception:
                log.exception("sensor %s crashed", s.id)

        runner.thread = threading.Thread(target=target, name=f"sensor-{s.id}", daemon=True)
        runner.thread.start()

    def supervise_once(self) -> None:
        """Restart dead sensors, enforce retention, surface crashed core threads."""
        now = self.clock.monotonic()
        for runner in self.sensors:
            t = runner.thread
            if t is not None and not t.is_alive() and not self._sensor_stop.is_set():
                assert runner.backoff is not None
                if runner.restart_at == 0.0:
                    runner.restart_at = now + runner.backoff.next_delay()
                elif now >= runner.restart_at:
                    runner.restarts += 1
                    runner.restart_at = 0.0
                    log.warning("restarting sensor %s (restart %d)", runner.sensor.id,
                                runner.restarts)
                    self._start_sensor(runner)
        for ch, w in self.writers.items():
            if w.error is not None or not w.thread.is_alive():
                raise StoreError(f"writer for channel {ch.value} stopped: {w.error}")
        for ch, u in self.uplinks.items():
            if u.error is not None:
                raise EdgeAgentError(f"uplink for channel {ch.value} stopped: {u.error}")
        for ch, scan in self.scans.items():
            if scan.error is not None:
                raise StoreError(f"store scan for channel {ch.value} stopped: {scan.error}")
        if self.welfare is not None and self.welfare.error is not None:
            raise EdgeAgentError(f"welfare service stopped: {self.welfare.error}")
        for store in self.stores.values():
            try:
                store.enforce_retention()
            except (OSError, StoreError) as exc:  # a full or failing disk: next round
                log.error("retention on %s: %s", store.channel.value, exc)
            store.flush_log()
        for q in self.queues.values():
            q.flush_log()
        for keyring in self.keyrings.values():
            try:
                keyring.shred_expired()
            except OSError as exc:
                log.error("shredding expired keys of %s: %s", keyring.channel, exc)
        self.trimmer.maybe(sum(s.accepted for s in self.stores.values()),
                           sum(q.pending for q in self.queues.values()))

    def run_until_stopped(self, poll: float = 1.0) -> None:
        self.start()
        try:
            while not self.stop_event.wait(poll):
                self.supervise_once()
        finally:
            self.shutdown()

    def shutdown(self, timeout: float = 3.0) -> None:
        """Stop sensors, commit what is queued, flush in-flight publishes, close stores."""
        log.info("stopping")
        if self.watch_server is not None:
            self.watch_server.stop()
        self._sensor_stop.set()
        for q in self.queues.values():
            q.close()
        for runner in self.sensors:
            if runner.thread is not None:
                runner.thread.join(1.0)
        if self.welfare is not None:
            self.welfare.stop()  # saves its state; the buzzer goes quiet
        for w in self.writers.values():
            w.stop.set()
            if w.thread.is_alive():
                w.thread.join(timeout)
        for u in self.uplinks.values():
            u.notify()
        for u in self.uplinks.values():
            u.stop(flush_timeout=timeout / 2)
        for s in self.stores.values():
            s.close()  # a scan still running stops at its next segment
        for scan in self.scans.values():
            if scan.thread.is_alive():
                scan.thread.join(timeout)
        self.hardware.close()
        log.info("stopped")

    # ------------------------------------------------------------------ reporting

    def health_model(self) -> health.NodeHealth:
        """The node's health, built from the components' stats (status file, metrics and
        the health message all render this)."""
        cfg = self.cfg
        channels = {
            ch.value: health.ChannelHealth(
                channel=ch.value,
                store=health.store_health(self.stores[ch].stats()),
                ingest=health.IngestHealth(**self.queues[ch].counters()),
                uplink=health.uplink_health(self.uplinks[ch].stats,
                                            [str(b) for b in cfg.channels[ch].brokers]),
                delivery=msgspec.convert(self.uplinks[ch].delivery(), health.DeliveryHealth),
                cert_expiry=health.days(self.uplinks[ch].stats.cert_expiry),
                security=secevents.EVENTS.counts(ch.value))
            for ch in cfg.channels}
        sensors: dict[str, health.SensorHealth] = {}
        for r in self.sensors:
            s, t = r.sensor, r.thread
            sensors[str(s.id)] = health.sensor_health(
                str(s.spec.type), s.spec.channel, alive=bool(t is not None and t.is_alive()),
                restarts=r.restarts, stats=s.stats, dropped=self.privacy.dropped_for(s.id),
                last=self.last_readings.get(s.id))
        for sc in cfg.sensors:
            if sc.enabled and str(sc.id) not in sensors:
                sensors[str(sc.id)] = health.not_started(str(sc.type), sc.channel)
        welfare = None if self.welfare is None else msgspec.convert(
            self.welfare.status(), health.WelfareHealth)
        return health.NodeHealth(time=self.clock.time(), site=str(cfg.site), node=str(cfg.node),
                                 hardware=str(cfg.hardware), state_dir=str(cfg.state_dir),
                                 channels=channels, sensors=sensors, welfare=welfare)

    def _watch_summary(self) -> dict[str, Any]:
        return summary_of(self.health_model())

    def health(self, channel: Channel) -> dict[str, Any]:
        """The body of the channel's MQTT health message."""
        return health.health_message(self.health_model(), channel.value)


def age_text(seconds: float) -> str:
    """``45 s``, ``12 min``, ``3.5 h``, ``2.1 days``: an age a technician reads at a glance."""
    s = max(0.0, seconds)
    if s < 120:
        return f"{s:.0f} s"
    if s < 7200:
        return f"{s / 60:.0f} min"
    if s < 172800:
        return f"{s / 3600:.1f} h"
    return f"{s / 86400:.1f} days"


def recovered_line(channel: str, st: Any, now: float) -> str | None:
    """After a restart: what the store still holds for delivery, or None when nothing."""
    waiting = sum(st.backlog.values())
    if not waiting:
        return None
    oldest = "" if st.oldest_undelivered is None \
        else f", oldest {age_text(now - st.oldest_undelivered)} old"
    lanes = ", ".join(f"{n} {lane}" for lane, n in st.backlog.items() if n)
    return f"channel {channel}: recovered {waiting} undelivered readings ({lanes}{oldest})"
