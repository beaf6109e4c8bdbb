"""The MQTT interface document (docs/asyncapi.yaml) and its JSON Schemas
(edge_agent/schemas/) against what the agent really publishes.

The document is read as data: a received topic is matched to a channel by the channel's
address, and the message is validated against that channel's message schemas; QoS and
retain against the operation's MQTT binding.
"""

from __future__ import annotations

import base64
import json
import re
import signal
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgspec
import paho.mqtt.client as mqtt
import pytest
import yaml
from cryptography.hazmat.primitives.asymmetric import ed25519
from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError
from paho.mqtt.enums import CallbackAPIVersion, MQTTProtocolVersion
from paho.mqtt.subscribeoptions import SubscribeOptions
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT7

from edge_agent import schemas
from edge_agent.core.model import Channel, Priority, Reading
from edge_agent.security import nodekey, seal
from edge_agent.security.nodekey import NodeKeys
from edge_agent.tools.mosquitto import Mosquitto
from edge_agent.uplink.envelope import EnvelopeBuilder
from tests.conftest import REPO, start_agent, wait_for

DOC_PATH = REPO / "docs" / "asyncapi.yaml"
SCHEMA_DIR = REPO / "edge_agent" / "schemas"
REGISTRY: Registry[Any] = Registry().with_resources(
    (name, Resource(contents=s, specification=DRAFT7)) for name, s in schemas.files().items())


def validator(name: str) -> Draft7Validator:
    return Draft7Validator(schemas.load(name), registry=REGISTRY)


def load_doc() -> dict[str, Any]:
    doc: dict[str, Any] = yaml.safe_load(DOC_PATH.read_text(encoding="utf-8"))
    return doc


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


def deref(doc: dict[str, Any], node: Any) -> Any:
    while isinstance(node, dict) and set(node) == {"$ref"} and node["$ref"].startswith("#/"):
        node = resolve(doc, node["$ref"])
    return node


def schema_file(message: dict[str, Any]) -> str:
    """The package schema a message's payload refers to (by file name)."""
    ref = message["payload"]["schema"]["$ref"]
    path = (DOC_PATH.parent / ref).resolve()
    assert path.parent == SCHEMA_DIR.resolve(), f"{ref} is not in edge_agent/schemas/"
    return path.name


@dataclass(frozen=True)
class TopicSpec:
    """One documented channel: its address as a pattern, its payload schemas, QoS/retain."""

    name: str
    pattern: re.Pattern[str]
    schema_files: tuple[str, ...]
    qos: int
    retain: bool


def topic_specs(doc: dict[str, Any]) -> list[TopicSpec]:
    sends: dict[str, dict[str, Any]] = {}
    for op in doc["operations"].values():
        if op["action"] == "send":
            ch = deref(doc, op["channel"])
            sends[ch["address"]] = op["bindings"]["mqtt"]
    out = []
    for name, ch in doc["channels"].items():
        if ch["address"] not in sends:
            continue  # received by the node (alarm acknowledgements)
        params = ch.get("parameters", {})
        pattern = re.escape(ch["address"])
        for p in params:
            param = deref(doc, params[p])
            alt = "|".join(map(re.escape, param["enum"])) if "enum" in param else "[^/+#]+"
            pattern = pattern.replace(re.escape("{" + p + "}"), f"(?P<{p}>{alt})")
        files = tuple(schema_file(deref(doc, m)) for m in ch["messages"].values())
        binding = sends[ch["address"]]
        out.append(TopicSpec(name, re.compile(pattern), files, binding["qos"],
                             binding.get("retain", False)))
    return out


# ------------------------------------------------------------------ the document


def test_document_parses_and_every_referenced_schema_ships_in_the_package() -> None:
    doc = load_doc()
    assert doc["asyncapi"].startswith("3.")
    refs: list[str] = []

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "$ref":
                    refs.append(v)
                else:
                    walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)

    walk(doc)
    files = set()
    for ref in refs:
        if ref.startswith("#/"):
            resolve(doc, ref)  # KeyError when dangling
            continue
        path = (DOC_PATH.parent / ref).resolve()
        assert path.parent == SCHEMA_DIR.resolve(), ref
        files.add(path.name)
    # every shipped schema is documented, every documented one is shipped and loadable
    assert files == set(schemas.NAMES) == {p.name for p in SCHEMA_DIR.glob("*.json")}
    for name in schemas.NAMES:
        Draft7Validator.check_schema(schemas.load(name))
        for ref in re.findall(r'"\$ref":\s*"([^"#]+)', json.dumps(schemas.load(name))):
            assert ref in schemas.NAMES, f"{name} refers to {ref}, not in the package"
    # the four topics under the channel prefix, QoS 1; only status retained (and the will)
    specs = {s.name: s for s in topic_specs(doc)}
    assert set(specs) == {"data", "alarm", "status", "health"}
    assert all(s.qos == 1 for s in specs.values())
    assert [n for n, s in specs.items() if s.retain] == ["status"]
    # the one topic the node receives from the platform: alarm acknowledgements on IT
    sent = {deref(doc, op["channel"])["address"] for op in doc["operations"].values()
            if op["action"] == "send"}
    received = {deref(doc, op["channel"])["address"]: op for op in doc["operations"].values()
                if op["action"] == "receive"}
    received = {a: op for a, op in received.items() if a not in sent}  # not an echo
    assert list(received) == ["edge/{site}/{node}/{channel}/alarm/ack"]
    ack = deref(doc, doc["channels"]["alarmAck"]["messages"]["alarmAck"])
    assert schema_file(ack) == schemas.ALARM_ACK
    assert [deref(doc, s)["host"] for s in doc["channels"]["alarmAck"]["servers"]] \
        == [doc["servers"]["it"]["host"]]
    for server in doc["servers"].values():
        will = server["bindings"]["mqtt"]["lastWill"]
        assert will["qos"] == 1 and will["retain"] is True and will["topic"].endswith("/status")
        schemes = [deref(doc, s)["type"] for s in server["security"]]
        assert "X509" in schemes


def test_schemas_are_in_the_installed_package() -> None:
    """pyproject's package-data ships them: loadable through importlib.resources."""
    from importlib import resources

    root = resources.files("edge_agent.schemas")
    for name in schemas.NAMES:
        assert json.loads(root.joinpath(name).read_text(encoding="utf-8"))["$schema"]
    with pytest.raises(KeyError, match="no message schema"):
        schemas.load("nope.json")


def examples() -> Iterator[tuple[str, str, dict[str, Any]]]:
    doc = load_doc()
    for mname, message in doc["components"]["messages"].items():
        for ex in message.get("examples", []):
            yield mname, schema_file(message), ex["payload"]


def test_every_documented_example_is_valid() -> None:
    seen = set()
    for mname, fname, payload in examples():
        validator(fname).validate(payload)
        seen.add(mname)
    assert seen == {"dataClear", "dataSealed", "status", "health", "alarmAck"}


# ------------------------------------------------------------------ schemas vs the code


def reading(value: Any, t: float = 1_717_000_000.25, unit: str | None = "W") -> Reading:
    return Reading("meter-main", Channel.OT, Priority.NORMAL, "power", value, t, unit)


def senml_bytes(rs: list[Reading]) -> bytes:
    return msgspec.json.encode([r.senml() for r in rs])


SAMPLE = [reading(1234.5), reading(7, unit=None), reading(True, unit=None),
          reading("closed", unit=None), reading(3.0, t=41.5)]  # the last: clock unset


def test_code_built_messages_validate() -> None:
    recs = json.loads(senml_bytes(SAMPLE))
    assert recs[-1]["clock_"] == "unsynced"
    validator(schemas.SENML).validate(recs)
    clear = json.loads(EnvelopeBuilder("pi-1", Channel.OT).data(Priority.ALARM, 5, 9,
                                                                 senml_bytes(SAMPLE)))
    validator(schemas.DATA_CLEAR).validate(clear)
    for suite in seal.SUITES:
        kp = seal.generate(suite)
        node = ed25519.Ed25519PrivateKey.generate()
        sealer = seal.Sealer(kp.public_key, node, "site-1", suite)
        sealed = json.loads(EnvelopeBuilder("pi-1", Channel.IT, sealer).data(
            Priority.NORMAL, 1, 5, senml_bytes(SAMPLE)))
        validator(schemas.DATA_SEALED).validate(sealed)
        keys = NodeKeys()
        keys.add("site-1", "pi-1", node.public_key())
        validator(schemas.SENML).validate(seal.open_sealed(sealed, kp.private_key, keys)["senml"])


def _valid(fname: str) -> dict[str, Any]:
    return next(p for _, f, p in examples() if f == fname)


def _record() -> dict[str, Any]:
    return {"n": "meter-main/power", "u": "W", "v": 1.5, "t": 1_717_000_000.0}


def _clear_with(**rec: Any) -> dict[str, Any]:
    return {**_valid(schemas.DATA_CLEAR), "senml": [{**_record(), **rec}]}


def _without(d: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in d.items() if k != key}


BAD: list[tuple[str, str, Callable[[], Any]]] = [
    # envelope drift: a field missing, an unknown field, a wrong type
    ("clear: no seq", schemas.DATA_CLEAR, lambda: _without(_valid(schemas.DATA_CLEAR), "seq")),
    ("clear: no lane", schemas.DATA_CLEAR, lambda: _without(_valid(schemas.DATA_CLEAR), "lane")),
    ("clear: extra field", schemas.DATA_CLEAR,
     lambda: {**_valid(schemas.DATA_CLEAR), "site": "s"}),
    ("clear: seq of three", schemas.DATA_CLEAR,
     lambda: {**_valid(schemas.DATA_CLEAR), "seq": [1, 2, 3]}),
    ("clear: seq 0", schemas.DATA_CLEAR, lambda: {**_valid(schemas.DATA_CLEAR), "seq": [0, 1]}),
    ("clear: unknown channel", schemas.DATA_CLEAR,
     lambda: {**_valid(schemas.DATA_CLEAR), "channel": "xx"}),
    ("clear: both senml and sealed", schemas.DATA_CLEAR,
     lambda: {**_valid(schemas.DATA_CLEAR), "sealed": "AAAA"}),
    ("clear: empty pack", schemas.DATA_CLEAR,
     lambda: {**_valid(schemas.DATA_CLEAR), "senml": []}),
    # SenML records: exactly the fields we use
    ("record: base name", schemas.DATA_CLEAR, lambda: _clear_with(bn="urn:dev:")),
    ("record: unknown field", schemas.DATA_CLEAR, lambda: _clear_with(x=1)),
    ("record: no time", schemas.DATA_CLEAR,
     lambda: {**_valid(schemas.DATA_CLEAR), "senml": [_without(_record(), "t")]}),
    ("record: no value", schemas.DATA_CLEAR,
     lambda: {**_valid(schemas.DATA_CLEAR), "senml": [_without(_record(), "v")]}),
    ("record: two values", schemas.DATA_CLEAR, lambda: _clear_with(vs="on")),
    ("record: null value (NaN)", schemas.DATA_CLEAR, lambda: _clear_with(v=None)),
    ("record: name without sensor", schemas.DATA_CLEAR, lambda: _clear_with(n="power")),
    ("record: 1970 time, no clock_", schemas.DATA_CLEAR, lambda: _clear_with(t=41.5)),
    ("record: clock_ other value", schemas.DATA_CLEAR,
     lambda: _clear_with(t=41.5, clock_="synced")),
    # sealed envelope: the clear fields bound into the seal, and only them
    ("sealed: no site", schemas.DATA_SEALED,
     lambda: _without(_valid(schemas.DATA_SEALED), "site")),
    ("sealed: no suite", schemas.DATA_SEALED,
     lambda: _without(_valid(schemas.DATA_SEALED), "suite")),
    ("sealed: senml in clear", schemas.DATA_SEALED,
     lambda: {**_valid(schemas.DATA_SEALED), "senml": [_record()]}),
    ("sealed: unsigned suite", schemas.DATA_SEALED,
     lambda: {**_valid(schemas.DATA_SEALED), "suite": "x25519"}),
    ("sealed: not base64", schemas.DATA_SEALED,
     lambda: {**_valid(schemas.DATA_SEALED), "sealed": "not base64!"}),
    # status and health
    ("status: no state", schemas.STATUS, lambda: _without(_valid(schemas.STATUS), "state")),
    ("status: unknown state", schemas.STATUS,
     lambda: {**_valid(schemas.STATUS), "state": "sleeping"}),
    ("status: extra field", schemas.STATUS, lambda: {**_valid(schemas.STATUS), "value": 36.6}),
    ("health: no store", schemas.HEALTH, lambda: _without(_valid(schemas.HEALTH), "store")),
    ("health: a reading value", schemas.HEALTH,
     lambda: {**_valid(schemas.HEALTH), "last_value": 36.6}),
    ("health: store field gone", schemas.HEALTH,
     lambda: {**_valid(schemas.HEALTH),
              "store": _without(_valid(schemas.HEALTH)["store"], "evicted")}),
    ("health: unknown eviction reason", schemas.HEALTH,
     lambda: {**_valid(schemas.HEALTH), "store": {**_valid(schemas.HEALTH)["store"],
                                                   "evicted": {"whim": 1}}}),
    ("health: value in a sensor entry", schemas.HEALTH,
     lambda: {**_valid(schemas.HEALTH), "sensors": {"pulse": {
         **next(iter(_valid(schemas.HEALTH)["sensors"].values())), "last": 72}}}),
]


@pytest.mark.parametrize(("why", "fname", "make"), BAD, ids=[b[0] for b in BAD])
def test_schemas_reject_drift(why: str, fname: str, make: Callable[[], Any]) -> None:
    msg = make()
    assert msg != _valid(fname)
    with pytest.raises(ValidationError):
        validator(fname).validate(msg)


def test_sealed_example_is_real_base64() -> None:
    base64.b64decode(_valid(schemas.DATA_SEALED)["sealed"], validate=True)


# ------------------------------------------------------------------ the real agent


@dataclass
class Got:
    broker: str
    topic: str
    payload: bytes
    qos: int
    retain: bool


class Subscriber:
    """A platform-side paho client: everything on one broker, as published (MQTT 5
    retain-as-published, so a live retained publish keeps its retain flag)."""

    def __init__(self, name: str, broker: Mosquitto) -> None:
        self.name = name
        self.got: list[Got] = []
        self._lock = threading.Lock()
        self._subscribed = threading.Event()
        self.client = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=f"platform-{name}",
                                  protocol=MQTTProtocolVersion.MQTTv5)
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_connect = lambda c, *a: c.subscribe(
            "#", options=SubscribeOptions(qos=2, retainAsPublished=True))  # QoS as published
        self.client.connect("127.0.0.1", broker.port)
        self.client.loop_start()
        assert self._subscribed.wait(10)

    def _on_message(self, client: mqtt.Client, userdata: Any, m: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.got.append(Got(self.name, m.topic, bytes(m.payload), m.qos, bool(m.retain)))

    def messages(self) -> list[Got]:
        with self._lock:
            return list(self.got)

    def count(self, suffix: str, pred: Callable[[dict[str, Any]], bool] = lambda m: True) -> int:
        return sum(1 for g in self.messages()
                   if g.topic.endswith(suffix) and pred(json.loads(g.payload)))

    def stop(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def demo_site(tmp_path: Path) -> Path:
    """configs/demo.yaml as it is (emulated DSMR meter on OT; climate sensor and an SOS
    button with a subject on sealed IT), health every second instead of every 10."""
    text = (REPO / "configs" / "demo.yaml").read_text(encoding="utf-8")
    assert text.count("health_interval: 10s") == 2
    cfg = tmp_path / "demo.yaml"
    cfg.write_text(text.replace("health_interval: 10s", "health_interval: 1s")
                   .replace("first_after_seconds: 4", "first_after_seconds: 1"))
    return cfg


@pytest.mark.slow
def test_everything_the_agent_publishes_matches_the_document(
        tmp_path: Path, broker_factory: Callable[..., Mosquitto],
        monkeypatch: pytest.MonkeyPatch) -> None:
    doc = load_doc()
    specs = topic_specs(doc)
    platform = seal.generate_files("x25519", tmp_path / "platform.key",
                                   tmp_path / "platform.pub")
    ot, it = broker_factory(), broker_factory()
    state = tmp_path / "state"
    monkeypatch.setenv("EDGE_OT_BROKER", ot.url)
    monkeypatch.setenv("EDGE_IT_BROKER", it.url)
    monkeypatch.setenv("EDGE_STATE_DIR", str(state))
    monkeypatch.setenv("EDGE_IT_SEAL_KEY", str(tmp_path / "platform.pub"))
    subs = {"ot": Subscriber("ot", ot), "it": Subscriber("it", it)}
    log = tmp_path / "agent.log"
    proc = start_agent(demo_site(tmp_path), log)
    try:
        def enough() -> bool:
            return (subs["ot"].count("/data") >= 1 and subs["ot"].count("/health") >= 2
                    and subs["it"].count("/data") >= 1 and subs["it"].count("/alarm") >= 1
                    and subs["it"].count("/health") >= 2
                    and all(s.count("/status", lambda m: m["state"] == "online")
                            for s in subs.values()))

        assert wait_for(enough, timeout=60), log.read_text()[-3000:]
        # killed: the broker publishes the status will (offline, retained)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
        assert wait_for(lambda: all(s.count("/status", lambda m: m["state"] == "offline")
                                    for s in subs.values()), timeout=15)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for s in subs.values():
            s.stop()

    node_keys = NodeKeys.load(state / "keys" / nodekey.ENROLMENT)
    by_kind: dict[tuple[str, str], int] = {}
    opened_records = 0
    for s in subs.values():
        for g in s.messages():
            where = f"{g.broker} {g.topic}: {g.payload[:300]!r}"
            match = [(spec, m) for spec in specs if (m := spec.pattern.fullmatch(g.topic))]
            assert len(match) == 1, f"undocumented topic: {where}"
            spec, m = match[0]
            assert m["site"] == "demo" and m["node"] == "pi-demo", where
            assert m["channel"] == g.broker, f"topic of the other channel: {where}"
            assert (g.qos, g.retain) == (spec.qos, spec.retain), where
            msg = json.loads(g.payload.decode("utf-8"))
            why = {f: [f"{e.message} at {list(e.absolute_path)}"
                       for e in validator(f).iter_errors(msg)] for f in spec.schema_files}
            fits = [f for f, errors in why.items() if not errors]
            assert len(fits) == 1, f"{where} fits {fits or why}"
            assert (msg["channel"], msg["node"], msg.get("site", "demo")) == (
                g.broker, "pi-demo", "demo"), where
            kind = fits[0]
            by_kind[(spec.name, kind)] = by_kind.get((spec.name, kind), 0) + 1
            if spec.name in ("data", "alarm"):
                assert (msg["lane"] == "alarm") == (spec.name == "alarm"), where
                # OT in clear, IT sealed, as demo.yaml says
                assert kind == (schemas.DATA_SEALED if g.broker == "it"
                                else schemas.DATA_CLEAR), where
                recs = msg.get("senml")
                if kind == schemas.DATA_SEALED:
                    recs = seal.open_sealed(g.payload, platform.private_key,
                                            node_keys)["senml"]
                    validator(schemas.SENML).validate(recs)
                    opened_records += len(recs)
                assert len(recs) == msg["seq"][1] - msg["seq"][0] + 1, where
    for spec_name, kind in (("data", schemas.DATA_CLEAR), ("data", schemas.DATA_SEALED),
                            ("alarm", schemas.DATA_SEALED), ("status", schemas.STATUS),
                            ("health", schemas.HEALTH)):
        assert by_kind.get((spec_name, kind), 0) >= 1, (spec_name, kind, by_kind)
    assert opened_records >= 2
