"""Load and validate a site configuration: strict, typed, every problem located.

    cfg = load_config(path, sensor_types)     # raises ConfigError with every problem

Sensor types are passed in (the driver registry) so this layer does not import drivers.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol

from edge_agent.config.escalate import build_escalate
from edge_agent.config.placement import PlacementInfo, clashes
from edge_agent.config.schema import (
    ChannelConfig,
    LoggingConfig,
    MetricsConfig,
    SensorCommon,
    SensorConfig,
    SiteConfig,
    StoreConfig,
)
from edge_agent.config.types import Token
from edge_agent.config.validate import Validator
from edge_agent.config.welfare import build_welfare
from edge_agent.config.yamlsrc import Limits, Map, Node, Scalar, Seq, node_at, parse_yaml, too_big
from edge_agent.core.errors import ConfigError, ConfigProblem
from edge_agent.core.model import Channel, HardwareMode, Priority

__all__ = ["ConfigError", "Limits", "SensorTypeInfo", "SiteConfig", "load_config", "locate",
           "parse_config"]


class SensorTypeInfo(PlacementInfo, Protocol):
    """What the config layer needs to know about a sensor type (and placement checks)."""

    @property
    def options(self) -> type: ...
    @property
    def default_channel(self) -> Channel: ...
    @property
    def default_priority(self) -> Priority: ...
    @property
    def default_interval(self) -> float: ...


@dataclass(frozen=True)
class _Top:
    # the municipality's site id (e.g. namwon-01): part of the topics and client ids
    site: Token
    # this node's name, unique per Pi (e.g. pi-0042): no default in the shipped examples
    node: Token
    # raspberry-pi: the Pi's real buses; emulated: every device emulated in-process
    hardware: HardwareMode
    # keys, stores, sequence numbers and the status file (mode 0700)
    state_dir: Path
    # the MQTT channels: ot (meters, operations) and it (health, welfare)
    channels: dict[Channel, ChannelConfig]
    # the durable encrypted store, one per channel
    store: StoreConfig = field(default_factory=StoreConfig)
    # log verbosity (to the journal via stderr)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    # optional Prometheus textfile with the health counters
    metrics: MetricsConfig = field(default_factory=MetricsConfig)


def load_config(path: Path, sensor_types: Mapping[str, SensorTypeInfo],
                env: Mapping[str, str] | None = None,
                limits: Limits | None = None) -> SiteConfig:
    """Read, substitute, validate. Raises ConfigError listing every problem."""
    name = str(path)
    limits = limits or Limits()
    text = read_text(path, limits)
    return parse_config(text, name, path.resolve().parent, sensor_types, env, limits)


def read_text(path: Path, limits: Limits) -> str:
    """The file as text, at most ``limits.max_bytes``; ConfigError saying what to do."""
    name = str(path)

    def fail(line: int, msg: str) -> ConfigError:
        return ConfigError([ConfigProblem(name, line, "", msg)])

    try:
        with open(path, "rb") as f:
            data = f.read(limits.max_bytes + 1)
    except FileNotFoundError:
        raise fail(1, "file not found: check the path (the service reads "
                      "/etc/edge-agent/site.yaml)") from None
    except IsADirectoryError:
        raise fail(1, "this is a directory: give the site YAML file") from None
    except PermissionError:
        raise fail(1, "permission denied: run as the service user or root, or make the "
                      "file readable (chmod 0640, group edge-agent)") from None
    except OSError as exc:
        raise fail(1, f"cannot read: {exc.strerror or exc}") from None
    if len(data) > limits.max_bytes:
        raise fail(1, too_big(len(data), limits))
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise fail(line, f"byte 0x{data[exc.start]:02x} is not UTF-8 text (is this a binary "
                         "file?): a site file is UTF-8 YAML; save it as UTF-8") from None


def parse_config(text: str, name: str, base_dir: Path,
                 sensor_types: Mapping[str, SensorTypeInfo],
                 env: Mapping[str, str] | None = None,
                 limits: Limits | None = None) -> SiteConfig:
    tree, problems = parse_yaml(text, name, os.environ if env is None else env, limits)
    if tree is None:
        raise ConfigError(problems)
    v = Validator(name, base_dir)
    v.problems.extend(problems)
    top = v.dataclass_from(_Top, tree, "", skip_keys=frozenset({"sensors", "welfare",
                                                                     "escalate"}))
    sensors_node = tree.get("sensors") if isinstance(tree, Map) else None
    placed = _sensors(v, sensors_node, sensor_types, top)
    sensors = [p.config for p in placed]
    allow = {p.config.id: p.allow_health_on_ot for p in placed}
    for c in clashes(sensors, sensor_types, allow):
        p = placed[c.index]
        v.problem(node_at(p.node, c.key), f"sensors[{p.index}].{c.key}", c.message)
    warnings: list[ConfigProblem] = []
    if top is not None and not sensors:
        warnings.append(ConfigProblem(name, node_at(tree, "sensors").line, "sensors",
                                      "no sensors: the agent will run and publish only its "
                                      "health and status"))
    welfare = build_welfare(v, tree.get("welfare") if isinstance(tree, Map) else None, sensors)
    escalate = build_escalate(v, tree.get("escalate") if isinstance(tree, Map) else None,
                              sensors)
    if top is not None:
        _check_channels(v, tree, top)
    if top is None:
        raise ConfigError(sorted(v.problems, key=lambda p: p.line))
    cfg = SiteConfig(**{f.name: getattr(top, f.name) for f in dataclasses.fields(top)},
                     sensors=sensors, welfare=welfare, escalate=escalate,
                     source=base_dir / Path(name).name,
                     warnings=warnings)
    if v.problems:
        raise ConfigError(sorted(v.problems, key=lambda p: p.line), partial=cfg)
    return cfg


def locate(path: Path, where: str, env: Mapping[str, str] | None = None) -> int:
    """The line of ``where`` (``channels.ot.tls.key_file``, ``sensors[2].key_file``) in the
    site file, or of its deepest part found; 1 when the file cannot be read."""
    try:
        text = read_text(path, Limits())
    except ConfigError:
        return 1
    tree, _ = parse_yaml(text, str(path), os.environ if env is None else env, Limits())
    if tree is None:
        return 1
    keys: list[str | int] = []
    for part in where.split("."):
        name, _, rest = part.partition("[")
        keys.append(name)
        if rest:
            keys.append(int(rest.rstrip("]")))
    node: Node = tree
    line = tree.line
    for k in keys:
        if isinstance(node, Map) and isinstance(k, str):
            found = next(((kl, n) for key, kl, n in node.items if key == k), None)
            if found is None:
                break
            line, node = found
        elif isinstance(node, Seq) and isinstance(k, int) and k < len(node.items):
            node = node.items[k]
            line = node.line
        else:
            break
    return line


def _check_channels(v: Validator, tree: Node, top: _Top) -> None:
    if not top.channels:
        v.problem(node_at(tree, "channels"), "channels", "define at least one channel (ot, it)")
    for ch, cc in top.channels.items():
        base = f"channels.{ch.value}"
        for i, url in enumerate(cc.brokers):
            if not url.tls and not cc.allow_insecure:
                v.problem(node_at(tree, "channels", ch.value, "brokers", i),
                          f"{base}.brokers[{i}]",
                          f"plaintext {url} refused: use mqtts:// or set allow_insecure: true "
                          "for this channel")
        if not cc.tls.check_hostname and not cc.allow_insecure:
            v.problem(node_at(tree, "channels", ch.value, "tls", "check_hostname"),
                      f"{base}.tls.check_hostname",
                      "host names are always checked: fix the broker certificate's names "
                      "(or the URL); false is only for test rigs, with allow_insecure: true")
        files = {
            "tls.ca_file": cc.tls.ca_file, "tls.cert_file": cc.tls.cert_file,
            "tls.key_file": cc.tls.key_file, "password_file": cc.password_file,
            "key_file": cc.key_file,
            "seal.public_key_file": cc.seal.public_key_file if cc.seal else None,
        }
        for key, p in files.items():
            if p is not None and not p.is_file():
                v.problem(node_at(tree, "channels", ch.value, *key.split(".")),
                          f"{base}.{key}", f"file not found: {p}")
        if cc.password_file is not None and cc.username is None:
            v.problem(node_at(tree, "channels", ch.value, "password_file"),
                      f"{base}.password_file", "password_file needs username")
        if ch is Channel.IT and cc.seal is None:
            v.problem(node_at(tree, "channels", ch.value), f"{base}.seal",
                      "health data is sealed end to end by default: give seal: "
                      "{public_key_file: PLATFORM_PUBLIC_KEY} (or seal: {enabled: false})")


@dataclass(frozen=True)
class _Placed:
    config: SensorConfig
    index: int  # in the YAML list
    node: Map
    allow_health_on_ot: bool


def _sensors(v: Validator, node: Node | None, types: Mapping[str, SensorTypeInfo],
             top: _Top | None) -> list[_Placed]:
    if node is None or (isinstance(node, Scalar) and node.value is None):
        return []
    if not isinstance(node, Seq):
        if not (isinstance(node, Scalar) and node.bad):
            v.problem(node, "sensors", "expected a list of sensors")
        return []
    out: list[_Placed] = []
    seen: dict[str, int] = {}
    common_keys = frozenset(f.name for f in dataclasses.fields(SensorCommon))
    for i, item in enumerate(node.items):
        path = f"sensors[{i}]"
        if not isinstance(item, Map):
            v.problem(item, path, "expected a mapping with id and type")
            continue
        type_node = item.get("type")
        stype = type_node.value if isinstance(type_node, Scalar) else None
        info = types.get(stype) if isinstance(stype, str) else None
        if type_node is not None and info is None \
                and not (isinstance(type_node, Scalar) and type_node.bad):
            known = ", ".join(sorted(types))
            v.problem(type_node, f"{path}.type", f"unknown sensor type {stype!r} (known: {known})")
        common_map = Map(item.line, [t for t in item.items if t[0] in common_keys])
        common = v.dataclass_from(SensorCommon, common_map, path)
        if info is None:
            continue
        opt_map = Map(item.line, [t for t in item.items if t[0] not in common_keys])
        options = v.dataclass_from(info.options, opt_map, path, also_known=common_keys)
        if common is None or options is None:
            continue
        if common.id in seen:
            v.problem(node_at(item, "id"), f"{path}.id",
                      f"duplicate sensor id {common.id!r} (first on line {seen[common.id]})")
            continue
        seen[common.id] = item.line
        channel = common.channel or info.default_channel
        if top is not None and channel not in top.channels:
            v.problem(node_at(item, "channel"), f"{path}.channel",
                      f"channel {channel.value!r} is not defined under channels")
        interval = float(common.interval if common.interval is not None else info.default_interval)
        if interval <= 0:
            v.problem(node_at(item, "interval"), f"{path}.interval", "must be above 0")
        out.append(_Placed(SensorConfig(
            id=common.id, type=common.type, channel=channel,
            priority=common.priority if common.priority is not None else info.default_priority,
            interval=interval, enabled=common.enabled, options=options, line=item.line,
            subject=common.subject, publish=common.publish), i, item, common.allow_health_on_ot))
    return out
