"""NGSI-LD entities (key-values form) following the FIWARE Smart Data Models, from opened
data messages: what a platform puts into its context broker.

- ``DeviceMeasurement`` (dataModel.Device): one per SenML record.
- ``SmartMeteringObservation`` (dataModel.Device): an OT meter's energy register.
- ``Alert`` (dataModel.Alert): a record on the alarm lane.
- ``Device`` (dataModel.Device): one per sensor, from the quantities it reports.

What may go where (``docs/platform.md``): OT entities may go to the city's context broker.
IT readings are health data: their entities go only to the welfare platform's own,
access-controlled broker (``channel="it"`` entities say so in ``dataProvider``), a
``Device`` for an IT sensor carries no value, and an IT ``Alert`` carries category,
sub-category and severity, never the vital sign that raised it (no ``data``).

Records whose clock was not set (``clock_: unsynced``) and values that are not numbers,
booleans or strings are not converted: ``Converted.skipped`` counts them with the reason.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

CONTEXT = [
    "https://raw.githubusercontent.com/smart-data-models/dataModel.Device/master/context.jsonld",
    "https://uri.etsi.org/ngsi-ld/v1/ngsi-ld-core-context.jsonld",
]

# SenML unit -> UN/CEFACT common code (the Smart Data Models' unitCode convention)
CEFACT = {"W": "WTT", "Wh": "WHR", "kWh": "KWH", "V": "VLT", "A": "AMP", "Cel": "CEL",
          "%RH": "P1", "%": "P1", "Pa": "PAL", "m": "MTR", "beat/min": "4N", "count": "C62"}

# reading name -> Device.controlledProperty (the model's enum); None: none fits
CONTROLLED = {"power": "power", "power_import": "power", "power_import_avg": "power",
              "power_import_max": "power", "energy_import": "energy", "voltage": "power",
              "current": "power", "power_factor": "power", "temperature": "temperature",
              "humidity": "humidity", "pressure": "atmosphericPressure", "motion": "motion",
              "motion_count": "motion", "presence": "occupancy", "open": "occupancy",
              "body_temperature": "temperature", "fall": "movementActivity",
              "counter": "fillingLevel"}

# alarm reading name -> Alert subCategory (the model's enum) and severity
ALERTS = {"fall": ("fallenPatient", "critical"), "held": ("fallenPatient", "critical"),
          "pressed": ("fallenPatient", "critical"), "heart_rate": ("heartAttack", "high"),
          "spo2_alarm": ("asthmaAttack", "high"), "temperature": ("highTemperature", "medium")}

ENERGY_UNITS = {"Wh": 0.001, "kWh": 1.0}  # -> kWh


class NgsiError(ValueError):
    """A message cannot be converted (the message says which field)."""


@dataclass
class Converted:
    entities: list[dict[str, Any]] = field(default_factory=list)
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> records

    def skip(self, why: str) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1


def urn(kind: str, *parts: str) -> str:
    return f"urn:ngsi-ld:{kind}:" + ":".join(p.replace(":", "-") for p in parts)


def iso(t: float) -> str:
    return dt.datetime.fromtimestamp(t, dt.UTC).isoformat(timespec="milliseconds") \
        .replace("+00:00", "Z")


def _records(senml: Iterable[dict[str, Any]]) -> Iterable[tuple[str, dict[str, Any]]]:
    """Full names (base name applied, RFC 8428 section 4.5) with their records."""
    base = ""
    for rec in senml:
        base = rec.get("bn", base)
        yield base + str(rec.get("n", "")), rec


def convert(msg: dict[str, Any], site: str | None = None) -> Converted:
    """The entities for one opened data message (``senml`` in clear)."""
    try:
        node, channel, senml = msg["node"], msg["channel"], msg["senml"]
    except KeyError as exc:
        raise NgsiError(f"message lacks {exc.args[0]!r} (open sealed messages first)") from None
    site = site or str(msg.get("site", ""))
    alarm = msg.get("lane") == "alarm"
    out = Converted()
    for i, (name, rec) in enumerate(_records(senml)):
        if rec.get("clock_") == "unsynced" or not isinstance(rec.get("t"), int | float):
            out.skip("clock not set")
            continue
        sensor, _, quantity = name.partition("/")
        if not sensor or not quantity:
            raise NgsiError(f"senml[{i}].n {name!r}: expected <sensor>/<reading>")
        dev = urn("Device", site, node, sensor)
        seq = f"{msg['seq'][0] + i}"
        ent = _measurement(rec, urn("DeviceMeasurement", site, node, channel, seq), dev,
                           name, channel)
        if ent is None:
            out.skip("value not a number, boolean or string")
            continue
        out.entities.append(ent)
        if channel == "ot" and rec.get("u") in ENERGY_UNITS and "v" in rec:
            out.entities.append(_meter(rec, urn("SmartMeteringObservation", site, node,
                                                channel, seq), dev))
        if alarm:
            out.entities.append(_alert(rec, urn("Alert", site, node, channel, seq), dev,
                                       quantity, channel))
    return out


def _provider(channel: str) -> str:
    return "edge-agent welfare (IT, health data)" if channel == "it" else "edge-agent (OT)"


def _measurement(rec: dict[str, Any], eid: str, dev: str, name: str,
                 channel: str) -> dict[str, Any] | None:
    ent: dict[str, Any] = {"id": eid, "type": "DeviceMeasurement", "refDevice": dev,
                           "controlledProperty": name, "dateObserved": iso(rec["t"]),
                           "dataProvider": _provider(channel), "@context": CONTEXT}
    if isinstance(rec.get("v"), int | float) and not isinstance(rec.get("v"), bool):
        ent["numValue"] = rec["v"]
    elif isinstance(rec.get("vb"), bool):
        ent["textValue"] = "true" if rec["vb"] else "false"
    elif isinstance(rec.get("vs"), str):
        ent["textValue"] = rec["vs"]
    else:
        return None
    if rec.get("u") in CEFACT:
        ent["unit"] = CEFACT[rec["u"]]
    return ent


def _meter(rec: dict[str, Any], eid: str, dev: str) -> dict[str, Any]:
    kwh = float(rec["v"]) * ENERGY_UNITS[rec["u"]]
    return {"id": eid, "type": "SmartMeteringObservation", "refDevice": dev,
            "meterType": "Electricity", "totalConsumption": kwh,
            "dateObserved": iso(rec["t"]), "dataProvider": _provider("ot"),
            "@context": CONTEXT}


def _alert(rec: dict[str, Any], eid: str, dev: str, quantity: str,
           channel: str) -> dict[str, Any]:
    sub, severity = ALERTS.get(quantity, (None, "high"))
    ent: dict[str, Any] = {"id": eid, "type": "Alert", "alertSource": dev,
                           "category": "health" if channel == "it" else "security",
                           "severity": severity, "dateIssued": iso(rec["t"]),
                           "dataProvider": _provider(channel), "@context": CONTEXT}
    if sub is not None and channel == "it":
        ent["subCategory"] = sub
    if channel == "ot":  # OT alarms carry their reading; IT alarms never do (health data)
        ent["data"] = {k: v for k, v in rec.items() if k in ("n", "v", "vb", "vs", "u")}
    return ent


def device(site: str, node: str, sensor: str, readings: Iterable[str], channel: str,
           state: str | None = None) -> dict[str, Any]:
    """The ``Device`` for one sensor: its controlled properties, never a value."""
    props = sorted({CONTROLLED[r] for r in readings if r in CONTROLLED})
    if not props:
        raise NgsiError(f"sensor {sensor!r}: no reading maps to a Device.controlledProperty "
                        f"of the model ({sorted(readings)})")
    ent: dict[str, Any] = {"id": urn("Device", site, node, sensor), "type": "Device",
                           "category": ["meter" if channel == "ot" else "sensor"],
                           "controlledProperty": props, "name": sensor,
                           "dataProvider": _provider(channel), "@context": CONTEXT}
    if state is not None:
        ent["deviceState"] = state
    return ent
