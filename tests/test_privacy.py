"""Minimisation and pseudonymisation: allow-lists, raw streams never leave, keyed pseudonyms."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec

from edge_agent.config import load_config
from edge_agent.core.model import Channel, Priority, Reading
from edge_agent.daemon.status import read_status
from edge_agent.devices.registry import SENSOR_TYPES
from edge_agent.security import seal
from edge_agent.security.privacy import PrivacyStage, pseudonym
from edge_agent.tools.consumer import Consumer
from edge_agent.tools.mosquitto import Mosquitto
from tests.conftest import EDGE_AGENT, enrol_node, start_agent, wait_for, write_site

SUBJECT = "park-soon-ja-19420317"


def r(sensor: str, name: str, v: float = 1.0) -> Reading:
    return Reading(sensor, Channel.IT, Priority.NORMAL, name, v, 1.7e9)


def _cfg(tmp_path: Path, sensors: str) -> list:  # type: ignore[type-arg]
    cfg = write_site(tmp_path, "mqtt://127.0.0.1:1", "mqtt://127.0.0.1:2", sensors=sensors)
    return load_config(cfg, SENSOR_TYPES).sensors


def test_allow_list_and_raw_streams(tmp_path: Path) -> None:
    sensors = _cfg(tmp_path, "  - {id: ox, type: max30102, publish: [heart_rate, ppg_red]}\n"
                             "  - {id: acc, type: mpu6050}\n")
    stage = PrivacyStage(sensors, None)
    out = stage.apply([r("ox", "heart_rate"), r("ox", "spo2"), r("ox", "ppg_red")])
    assert [x.name for x in out] == ["heart_rate"]  # ppg is never published, even if listed
    out = stage.apply([r("acc", "activity"), r("acc", "accel_x"), r("acc", "raw")])
    assert [x.name for x in out] == ["activity"]
    assert stage.dropped_for("ox") == {"spo2": 1, "ppg_red": 1}
    assert stage.dropped_for("acc") == {"accel_x": 1, "raw": 1}


def test_pseudonym_is_keyed_stable_and_hides_the_subject(tmp_path: Path) -> None:
    sensors = _cfg(tmp_path, f"  - {{id: sos, type: button, pin: 17, subject: {SUBJECT}}}\n")
    k1, k2 = b"\x01" * 32, b"\x02" * 32
    out = PrivacyStage(sensors, k1).apply([r("sos", "pressed")])
    (rec,) = [x.senml() for x in out]
    assert rec["n"] == f"{pseudonym(k1, SUBJECT)}/sos/pressed"
    assert rec["n"].startswith("p-") and len(rec["n"].split("/")[0]) == 18
    assert SUBJECT not in json.dumps(rec)
    assert pseudonym(k1, SUBJECT) == pseudonym(k1, SUBJECT) != pseudonym(k2, SUBJECT)


def test_no_identifier_or_dropped_field_leaves_the_node(
        tmp_path: Path, broker_factory: Callable[..., Mosquitto]) -> None:
    ot, it = broker_factory(), broker_factory()
    c = Consumer("127.0.0.1", it.port, "edge/test/n1/it").start()
    cfg = write_site(tmp_path, ot.url, it.url, sensors=(
        f"  - {{id: pulse, type: max30102, subject: {SUBJECT}, publish: [heart_rate],\n"
        "     report_seconds: 1, window_seconds: 4}\n"
        "  - {id: sos, type: load, channel: it, priority: alarm, rate: 5,\n"
        f"     subject: {SUBJECT}}}\n"))
    log = tmp_path / "agent.log"
    p = start_agent(cfg, log)
    try:
        assert wait_for(lambda: any(
            "/pulse/heart_rate" in x["n"] for m in c.snapshot().messages
            for x in m.msg["senml"]) and any(
            h["sensors"].get("pulse", {}).get("dropped") for h in c.snapshot().health),
            timeout=40), log.read_text()[-2000:]
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(15) == 0
        c.stop()
    got = c.snapshot()
    names = {x["n"] for m in got.messages for x in m.msg["senml"]}
    pseud = next(iter(names)).split("/")[0]
    assert pseud.startswith("p-") and names <= {f"{pseud}/pulse/heart_rate",
                                               f"{pseud}/sos/counter"}
    everything = json.dumps([m.msg for m in got.messages] + got.health + [got.status])
    text = log.read_text()
    for where in (everything, text):
        assert SUBJECT not in where and "park-soon" not in where
    key = (tmp_path / "state" / "keys" / "pseudonym.key").read_text().strip()
    assert key not in everything and key not in text
    assert (tmp_path / "state" / "keys" / "pseudonym.key").stat().st_mode & 0o777 == 0o600
    dropped = [h["sensors"]["pulse"]["dropped"] for h in got.health if h["sensors"]["pulse"]
               ["dropped"]]
    assert dropped[-1].get("spo2", 0) >= 1


HEALTH_SENSORS = (
    "  - {id: pulse, type: max30102, report_seconds: 1, window_seconds: 4,\n"
    "     emulate: {heart_rate: 83.0, spo2: 96.0, seed: 7}}\n"
    "  - {id: temp, type: mlx90614, interval: 500ms,\n"
    "     emulate: {object_temperature: 37.41, noise: 0.02, seed: 3}}\n"
    "  - {id: sos, type: button, pin: 17, hold_seconds: 0.3,\n"
    "     emulate: {press_every_seconds: 1.0, jitter_seconds: 0, first_after_seconds: 0.2,\n"
    "               hold_probability: 1.0, bounce_edges: 0}}\n"
    # a radar heart rate out of range: rejected, counted, its error text had the value
    "  - {id: vitals, type: mr60bha1, report_interval: 0,\n"
    "     emulate: {heart_rate: 231, respiration_rate: 14}}\n")


def _value_patterns(opened: list[dict[str, object]]) -> set[str]:
    """A regex per health value the platform received inside the seal: non-integer numbers
    (an integer could equal a count) and the button's "held" (other state words, such as
    a breath state "normal", are also lane names)."""
    pats: set[str] = set()
    for rec in opened:
        v, vs = rec.get("v"), rec.get("vs")
        if isinstance(v, float) and v != int(v):
            pats.add(rf"(?<![\d.]){re.escape(repr(v))}(?!\d)")
        if vs == "held":
            pats.add(r"\bheld\b")
    return pats


NUMBER = r"(?<![A-Za-z_\d])\d"  # a number standing alone (not the 2 of "spo2")


def status_doc(state: Path) -> dict[str, Any] | None:
    """The status file as ``edge-agent status`` reads it, as plain data."""
    doc = read_status(state)[1]
    return None if doc is None else msgspec.to_builtins(doc)  # type: ignore[no-any-return]


def _files_text(root: Path) -> dict[str, str]:
    return {str(p): p.read_bytes().decode("latin-1") for p in root.rglob("*") if p.is_file()}


def test_health_values_never_leave_the_seal_nor_rest_in_plaintext(
        tmp_path: Path, broker_factory: Callable[..., Mosquitto]) -> None:
    """Heart rate, SpO2, body temperature and a held button, sealed on IT; a radar heart
    rate out of range (231/min) rejected and reported. Not one of these values is in any
    file under the state dir (status.json above all), the metrics textfile, the log, or the
    clear part of any message a subscriber on either broker sees; nor after keys shred."""
    ot, it = broker_factory(), broker_factory()
    platform_key = seal.generate_files("x25519", tmp_path / "p.key", tmp_path / "p.pub")
    prom = tmp_path / "textfile" / "edge_agent.prom"
    prom.parent.mkdir()
    cfg = write_site(tmp_path, ot.url, it.url, sensors=HEALTH_SENSORS,
                     extra_it=f"    seal: {{public_key_file: {tmp_path / 'p.pub'}}}\n")
    cfg.write_text(cfg.read_text() + f"metrics: {{textfile: {prom}, interval: 1s}}\n")
    state = tmp_path / "state"
    enrolled = enrol_node(state)
    clear: list[str] = []  # every message as the brokers' subscribers see it, minus "sealed"

    def seen(kind: str, msg: dict[str, object]) -> None:
        clear.append(json.dumps({k: v for k, v in msg.items() if k != "sealed"}))

    subscribers = [Consumer("127.0.0.1", b.port, f"edge/test/n1/{ch}", on_message=seen).start()
                   for b, ch in ((ot, "ot"), (it, "it"))]
    platform = Consumer("127.0.0.1", it.port, "edge/test/n1/it",
                        private_key=platform_key.private_key, node_keys=enrolled).start()
    log = tmp_path / "agent.log"
    p = start_agent(cfg, log)

    def names() -> set[str]:
        return {r["n"] for m in platform.snapshot().messages for r in m.msg["senml"]}

    def vitals_rejected(doc: dict[str, object] | None) -> bool:
        s = ((doc or {}).get("sensors") or {}).get("vitals") or {}  # type: ignore[attr-defined]
        return bool(s.get("errors", {}).get("range"))

    try:
        assert wait_for(lambda: {"pulse/heart_rate", "pulse/spo2", "temp/body_temperature",
                                 "sos/held"} <= names()
                        and vitals_rejected(status_doc(state)) and prom.exists()
                        and any(vitals_rejected(h) for h in platform.snapshot().health),
                        timeout=60), (names(), log.read_text()[-3000:])
    finally:
        p.send_signal(signal.SIGTERM)
        assert p.wait(20) == 0
        for c in (*subscribers, platform):
            c.stop()
    got = platform.snapshot()
    assert not got.bad
    opened = [r for m in got.messages for r in m.msg["senml"]]
    patterns = _value_patterns(opened) | {r"231\s*/min", r"\b231\b"}
    assert any("body_temperature" in r["n"] and isinstance(r.get("v"), float) for r in opened)
    assert r"\bheld\b" in patterns and len(patterns) >= 5, patterns

    where = {**_files_text(state), str(prom): prom.read_text(), str(log): log.read_text(),
             **{f"message {i}": text for i, text in enumerate(clear)}}
    assert str(state / "status.json") in where and len(clear) > 10
    for pat in patterns:
        found = [name for name, text in where.items() if re.search(pat, text)]
        assert not found, (pat, found)

    doc = status_doc(state)
    assert doc is not None
    for sid in ("pulse", "temp", "sos", "vitals"):
        s = doc["sensors"][sid]
        assert "value" not in s.get("last", {}) and "name" not in s.get("last", {}), s
        assert not re.search(NUMBER, s.get("last_error") or ""), s
    assert doc["sensors"]["vitals"]["last_error_kind"] == "range"
    assert doc["sensors"]["vitals"]["last_error"].startswith("range: heart_rate #/min")
    healths = [h for h in got.health if "sensors" in h]
    assert healths and all(not re.search(NUMBER, s.get("last_error") or "")
                           for h in healths for s in h["sensors"].values())

    out = subprocess.run([EDGE_AGENT, "keys", "shred", "-c", str(cfg), "--all", "--yes"],
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert not (state / "status.json").exists() and not prom.exists()
    assert not (state / "keys" / "node-sign.key").exists()
    left = _files_text(state)
    for pat in patterns:
        assert not [name for name, text in left.items() if re.search(pat, text)], pat
