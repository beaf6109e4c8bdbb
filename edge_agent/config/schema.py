"""The site configuration, as frozen dataclasses. Field names are the YAML keys."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal

from edge_agent.config.escalate import EscalateConfig
from edge_agent.config.types import BrokerURL, ByteSize, Duration, Range, Token, TopicPrefix
from edge_agent.config.welfare import WelfareSubject
from edge_agent.core.errors import ConfigProblem
from edge_agent.core.model import Channel, HardwareMode, Priority

# Every number has a finite range (the validator enforces it; tests check none is missing).
DAY = 86400.0
Seconds = Range(0.0, 366 * DAY, "s")
Retention = Range(60, 3660 * DAY, "s")  # up to ten years


@dataclass(frozen=True)
class TLSConfig:
    ca_file: Path | None = None  # None = the system trust store
    cert_file: Path | None = None  # client certificate (mutual TLS)
    # client private key (mode 0600), with cert_file
    key_file: Path | None = None
    # lowest TLS version accepted
    min_version: Literal["1.2", "1.3"] = "1.2"
    # false only with the channel's allow_insecure: true (see docs/SECURITY.md)
    check_hostname: bool = True
    # warn this long before a cert expires
    expiry_warning: Annotated[Duration, Range(0, 365 * DAY, "s")] = Duration(30 * 86400)

    def __post_init__(self) -> None:
        if (self.cert_file is None) != (self.key_file is None):
            raise ValueError("tls: cert_file and key_file go together")


@dataclass(frozen=True)
class SealConfig:
    """End-to-end sealing (HPKE, RFC 9180) of data payloads to the platform's public key."""

    # false only for a channel that carries no health data
    enabled: bool = True
    public_key_file: Path | None = None  # the platform's HPKE public key (PEM)
    # x25519, or mlkem768-x25519 (post-quantum hybrid)
    suite: Literal["x25519", "mlkem768-x25519"] = "x25519"

    def __post_init__(self) -> None:
        if self.enabled and self.public_key_file is None:
            raise ValueError("seal: give public_key_file (the platform's public key) "
                             "or set enabled: false")


@dataclass(frozen=True)
class ChannelConfig:
    # broker URLs, tried in order (mqtts://host:8883; mqtt:// needs allow_insecure)
    brokers: list[BrokerURL]
    topic_prefix: TopicPrefix | None = None  # default: edge/<site>/<node>/<channel>
    client_id: str | None = None  # default: <site>-<node>-<channel>
    # certificates for mqtts:// brokers
    tls: TLSConfig = field(default_factory=TLSConfig)
    # MQTT user name (with password_file)
    username: str | None = None
    # file holding the MQTT password (mode 0600; needs username)
    password_file: Path | None = None
    # allow mqtt:// (plaintext) and tls.check_hostname: false; labs and loopback only
    allow_insecure: bool = False
    # 5, or 3 (MQTT 3.1.1) for brokers without MQTT 5: deliveries confirmed by echo
    mqtt_version: Literal[5, 3] = 5
    # how a delivery is confirmed: auto = echo on MQTT 3.1.1, PUBACK reason codes on 5 (0004)
    confirm: Literal["auto", "echo", "puback"] = "auto"
    # no echo by then: held back and reported
    echo_timeout: Annotated[Duration, Range(0.1, 3600, "s")] = Duration(10)
    # MQTT carries keep-alive as 16-bit seconds; 0 (off) would hide a dead connection
    keepalive: Annotated[Duration, Range(1, 65535, "s")] = Duration(30)
    # messages awaiting PUBACK, fed from the store
    inflight_window: Annotated[int, Range(1, 1000)] = 8
    batch_max: Annotated[int, Range(1, 10000)] = 500  # readings per published message
    # data (SenML bytes) per second at most, one message at a time; 0 = as fast as the
    # broker takes it. Alarms are never paced. For a platform reading data and alarms on
    # one connection: below its speed, so alarms do not queue behind data (interface.md)
    drain_rate: Annotated[ByteSize, Range(0, 1024**4, "B")] = ByteSize(0)
    # how often the health message is published
    health_interval: Annotated[Duration, Range(0.1, DAY, "s")] = Duration(60)
    # first wait before reconnecting when every broker failed (doubles each round, full
    # jitter; a session taken over by another client backs off 1s..60s)
    reconnect_min: Annotated[Duration, Range(0.01, 3600, "s")] = Duration(0.5)
    # longest wait between reconnect attempts (2s at most while alarms wait in the store)
    reconnect_max: Annotated[Duration, Range(0.01, DAY, "s")] = Duration(30)
    key_file: Path | None = None  # store key; default <state_dir>/keys/<channel>.key
    bind_address: str | None = None  # local address to connect from (OT/IT interfaces)
    # ordered: brokers in preference order, fail back to the first after failback_after;
    # any: a cluster, every node as good as another (a start chosen per node, no failback)
    failover: Literal["ordered", "any"] = "ordered"
    # on a fallback broker (failover: ordered): retry the first after
    failback_after: Annotated[Duration, Range(0, 7 * DAY, "s")] = Duration(300)
    seal: SealConfig | None = None  # required on the it channel (see SECURITY.md)

    def __post_init__(self) -> None:
        if not self.brokers:
            raise ValueError("brokers: give at least one broker URL")
        if not 1 <= self.inflight_window <= 1000:
            raise ValueError("inflight_window must be between 1 and 1000")
        if not 1 <= self.batch_max <= 10000:
            raise ValueError("batch_max must be between 1 and 10000")
        if self.reconnect_min <= 0 or self.reconnect_max < self.reconnect_min:
            raise ValueError("need 0 < reconnect_min <= reconnect_max")
        if self.echo_timeout <= 0:
            raise ValueError("echo_timeout must be above 0")


@dataclass(frozen=True)
class StoreConfig:
    # 0 would spin the writer; above 60 s too much waits unaccepted
    # group commit for normal/bulk readings
    commit_interval: Annotated[Duration, Range(0.01, 60, "s")] = Duration(1.0)
    # size budget per channel
    max_bytes: Annotated[ByteSize, Range(256 * 1024, 1024**5, "B")] = ByteSize(256 * 1024**2)
    # size of one store file; max_bytes must hold at least 4
    segment_bytes: Annotated[ByteSize, Range(64 * 1024, 1024**3, "B")] = ByteSize(4 * 1024**2)
    # age limit per channel
    retention: dict[Channel, Annotated[Duration, Retention]] = field(default_factory=dict)
    batch_max: Annotated[int, Range(1, 10000)] = 500  # readings per stored record
    # the writer commits early at half of it: below 2 it would spin
    # readings waiting for the next commit (then sensors block)
    queue_max: Annotated[int, Range(2, 1_000_000)] = 100_000
    # and at most about this much memory (text values count their length; the writer
    # holds as much again while it commits: 2 MiB keeps a burst under 60 MB)
    queue_max_bytes: Annotated[ByteSize, Range(64 * 1024, 1024**3, "B")] = ByteSize(2 * 1024**2)
    # one at-rest key per period; 0 = one static key
    key_period: Annotated[Duration, Seconds] = Duration(86400)

    def __post_init__(self) -> None:
        if self.commit_interval > 60:
            raise ValueError("commit_interval above 60s risks too much unaccepted data")
        if self.segment_bytes < 64 * 1024:
            raise ValueError("segment_bytes must be at least 64KiB")
        if self.max_bytes < 4 * self.segment_bytes:
            raise ValueError("max_bytes must be at least 4 x segment_bytes")
        if not 1 <= self.batch_max <= 10000:
            raise ValueError("batch_max must be between 1 and 10000")
        if 0 < self.key_period < 3600:
            raise ValueError("key_period must be 0 (one static key) or at least 1h")


@dataclass(frozen=True)
class LoggingConfig:
    # debug, info, warning or error
    level: Literal["debug", "info", "warning", "error"] = "info"


@dataclass(frozen=True)
class MetricsConfig:
    """Prometheus node_exporter textfile (written atomically, same counters as health)."""

    textfile: Path | None = None  # e.g. /run/edge-agent-metrics/edge_agent.prom (a tmpfs)
    # how often the textfile is rewritten
    interval: Annotated[Duration, Range(1, DAY, "s")] = Duration(15)

    def __post_init__(self) -> None:
        if self.textfile is not None and not str(self.textfile).endswith(".prom"):
            raise ValueError("metrics.textfile must end in .prom (node_exporter only reads those)")
        if self.interval < 1:
            raise ValueError("metrics.interval must be at least 1s")


@dataclass(frozen=True)
class SensorConfig:
    id: str
    type: str
    channel: Channel
    priority: Priority
    interval: float
    enabled: bool
    options: Any  # the type's options dataclass
    line: int
    subject: str | None = None  # resident identifier: published only as a keyed pseudonym
    publish: list[str] | None = None  # reading names allowed to leave (default: the type's)


@dataclass(frozen=True)
class SensorCommon:
    """The keys every sensor entry may have; the rest belong to the sensor type."""

    # the sensor's name, unique in the file; part of every reading's SenML name
    id: Token
    # the sensor type (docs/devices.md lists them and their keys)
    type: str
    channel: Channel | None = None  # default: the type's channel
    priority: Priority | None = None  # default: the type's priority
    interval: Annotated[Duration, Range(0.001, DAY, "s")] | None = None  # default: the type's
    # false: keep the entry, do not open the device
    enabled: bool = True
    subject: str | None = None  # resident identifier: published only as a keyed pseudonym
    publish: list[str] | None = None  # reading names allowed to leave (default: the type's)
    # a health sensor (pulse oximeter, thermometer, fall radar...) on the ot channel: refused
    # unless this says the site's OT broker is cleared for health data in clear
    allow_health_on_ot: bool = False


@dataclass(frozen=True)
class SiteConfig:
    site: str
    node: str
    hardware: HardwareMode
    state_dir: Path
    channels: dict[Channel, ChannelConfig]
    store: StoreConfig = field(default_factory=StoreConfig)
    sensors: list[SensorConfig] = field(default_factory=list)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    source: Path | None = None
    welfare: list[WelfareSubject] = field(default_factory=list)  # rules per resident
    escalate: EscalateConfig | None = None  # local escalation of alarms the platform missed
    # located findings that do not stop the agent (check-config prints them as WARNING)
    warnings: list[ConfigProblem] = field(default_factory=list)

    def topic_prefix(self, channel: Channel) -> str:
        pre = self.channels[channel].topic_prefix
        return pre if pre else f"edge/{self.site}/{self.node}/{channel.value}"

    def client_id(self, channel: Channel) -> str:
        cid = self.channels[channel].client_id
        return cid if cid else f"{self.site}-{self.node}-{channel.value}"

    def key_file(self, channel: Channel) -> Path:
        kf = self.channels[channel].key_file
        return kf if kf else self.state_dir / "keys" / f"{channel.value}.key"
