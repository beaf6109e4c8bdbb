"""Minimisation and pseudonymisation: allow-lists, raw streams never leave, keyed pseudonyms."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

from edge_agent.config import load_config
from edge_agent.consumer import Consumer
from edge_agent.drivers.registry import SENSOR_TYPES
from edge_agent.model import Channel, Priority, Reading
from edge_agent.mosquitto import Mosquitto
from edge_agent.privacy import PrivacyStage, pseudonym
from tests.conftest import start_agent, wait_for, write_site

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
