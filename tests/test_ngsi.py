"""NGSI-LD entities (edge_agent/tools/ngsi.py) validated against the FIWARE Smart Data
Models' published JSON Schemas (vendored in tests/fixtures/sdm, sources in SOURCES.md),
offline: every $ref resolves from the fixtures."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from referencing import Registry, Resource

from edge_agent.core.model import Channel, Priority, Reading
from edge_agent.tools.ngsi import NgsiError, convert, device

SDM = Path(__file__).parent / "fixtures" / "sdm"
BASE = "https://smart-data-models.github.io/"
URLS = {"common-schema.json": "data-models/common-schema.json",
        "device-schema.json": "dataModel.Device/device-schema.json",
        "alert-schema.json": "dataModel.Alert/alert-schema.json",
        "weather-schema.json": "dataModel.Weather/weather-schema.json",
        "Device/schema.json": "dataModel.Device/Device/schema.json",
        "DeviceMeasurement/schema.json": "dataModel.Device/DeviceMeasurement/schema.json",
        "SmartMeteringObservation/schema.json":
            "dataModel.Device/SmartMeteringObservation/schema.json",
        "Alert/schema.json": "dataModel.Alert/Alert/schema.json"}
MODELS = {"Device": "Device/schema.json", "DeviceMeasurement": "DeviceMeasurement/schema.json",
          "SmartMeteringObservation": "SmartMeteringObservation/schema.json",
          "Alert": "Alert/schema.json"}
T = 1_764_500_000.0


def _registry() -> Registry:
    reg: Registry = Registry()
    for f, url in URLS.items():
        reg = reg.with_resource(BASE + url, Resource.from_contents(
            json.loads((SDM / f).read_text())))
    return reg


REGISTRY = _registry()


def check(entity: dict[str, Any]) -> None:
    schema = json.loads((SDM / MODELS[entity["type"]]).read_text())
    body = {k: v for k, v in entity.items() if k != "@context"}  # key-values form
    jsonschema.Draft202012Validator(schema, registry=REGISTRY,
                                    format_checker=jsonschema.FormatChecker()).validate(body)


def msg(channel: Channel, readings: list[Reading], lane: str = "normal") -> dict[str, Any]:
    return {"site": "namwon-01", "node": "pi-0042", "channel": channel.value, "lane": lane,
            "seq": [7, 7 + len(readings) - 1], "senml": [r.senml() for r in readings]}


def r(sensor: str, name: str, value: Any, unit: str | None = None,
      ch: Channel = Channel.OT, t: float = T) -> Reading:
    return Reading(sensor, ch, Priority.NORMAL, name, value, t, unit)


def test_meter_readings_are_valid_measurements_and_a_metering_observation() -> None:
    out = convert(msg(Channel.OT, [r("meter", "power_import", 1234.5, "W"),
                                   r("meter", "energy_import", 98765.0, "Wh")]))
    types = [e["type"] for e in out.entities]
    assert types == ["DeviceMeasurement", "DeviceMeasurement", "SmartMeteringObservation"]
    for e in out.entities:
        check(e)
    assert out.entities[0]["numValue"] == 1234.5 and out.entities[0]["unit"] == "WTT"
    assert out.entities[2]["totalConsumption"] == pytest.approx(98.765)
    assert out.entities[0]["refDevice"] == "urn:ngsi-ld:Device:namwon-01:pi-0042:meter"
    assert out.entities[0]["id"].endswith(":ot:7") and out.entities[1]["id"].endswith(":ot:8")


def test_it_alarm_is_a_health_alert_without_the_value_that_raised_it() -> None:
    fall = r("radar", "fall", True, ch=Channel.IT)
    hr = r("pulse", "heart_rate", 182, "beat/min", ch=Channel.IT)
    out = convert(msg(Channel.IT, [fall, hr], lane="alarm"))
    alerts = [e for e in out.entities if e["type"] == "Alert"]
    assert [a["subCategory"] for a in alerts] == ["fallenPatient", "heartAttack"]
    for e in out.entities:
        check(e)
    assert all("data" not in a and "182" not in json.dumps(a) for a in alerts)
    assert all(a["category"] == "health" for a in alerts)


def test_ot_alarm_alert_carries_its_reading() -> None:
    out = convert(msg(Channel.OT, [r("meter", "power_limit", True)], lane="alarm"))
    alert = next(e for e in out.entities if e["type"] == "Alert")
    check(alert)
    assert alert["data"]["vb"] is True and alert["category"] == "security"


def test_device_entities_are_valid_and_carry_no_value() -> None:
    for ent in (device("namwon-01", "pi-0042", "meter", ["power_import", "energy_import"], "ot"),
                device("namwon-01", "pi-0042", "room", ["temperature", "humidity"], "it",
                       state="ok")):
        check(ent)
        assert not {"value", "dateLastValueReported"} & set(ent)
    with pytest.raises(NgsiError, match="spo2"):
        device("s", "n", "pulse", ["spo2"], "it")  # no controlledProperty fits


def test_unsynced_clock_and_odd_values_are_skipped_and_counted() -> None:
    m = msg(Channel.OT, [r("meter", "power", 1.0, "W", t=5.0), r("meter", "power", 2.0, "W")])
    m["senml"].append({"n": "meter/x", "t": T})  # no value at all
    m["seq"] = [7, 9]
    out = convert(m)
    assert len(out.entities) == 1 and out.entities[0]["numValue"] == 2.0
    assert out.skipped == {"clock not set": 1, "value not a number, boolean or string": 1}
    with pytest.raises(NgsiError, match="sealed"):
        convert({"node": "n", "channel": "it", "seq": [1, 1], "sealed": "x"})


def test_the_schemas_do_reject_a_wrong_entity() -> None:
    """The validation is real: a category outside the model's enum fails."""
    out = convert(msg(Channel.IT, [r("radar", "fall", True, ch=Channel.IT)], lane="alarm"))
    alert = next(e for e in out.entities if e["type"] == "Alert")
    with pytest.raises(jsonschema.ValidationError):
        check({**alert, "category": "welfare"})
    with pytest.raises(jsonschema.ValidationError):
        check({**out.entities[0], "numValue": "1"})
    # "format": "date-time" is only checked with rfc3339-validator installed: check it here
    import datetime as dt

    for e in out.entities:
        for k in ("dateObserved", "dateIssued"):
            if k in e:
                assert e[k].endswith("Z")
                assert dt.datetime.fromisoformat(e[k]).timestamp() == T
