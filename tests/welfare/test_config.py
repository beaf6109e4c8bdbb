"""The welfare: block of the site config: typed, cross-checked, every problem located."""

from __future__ import annotations

import pytest

from edge_agent.config.welfare import (
    AwayRule,
    ClimateRule,
    CorroborateRule,
    InactivityRule,
    MeterRule,
)
from edge_agent.core.errors import ConfigError

from .helpers import SITE, site


def problems(text: str) -> list[str]:
    with pytest.raises(ConfigError) as ei:
        site(text)
    return [p.format() for p in ei.value.problems]


def line_of(text: str, needle: str) -> int:
    return next(i for i, ln in enumerate(text.splitlines(), 1) if needle in ln)


def test_welfare_block_is_typed() -> None:
    (w,) = site().welfare
    assert w.subject == "resident-1"
    assert w.activity == ["pir-hall", "door-front", "radar-bed", "pendant", "sos-button"]
    assert w.inactivity == InactivityRule(8 * 3600, 12 * 3600, 24 * 3600)
    assert w.fall.confirm == 60
    assert w.away == AwayRule("door-front", 12 * 3600)
    assert w.meter == MeterRule("meter-main", 150.0)
    assert w.climate == ClimateRule("climate-living", 33.0, 10.0, 1800.0)


def test_no_welfare_block_is_fine() -> None:
    assert site(SITE[:SITE.index("welfare:")]).welfare == []


def test_unknown_activity_sensor_is_located() -> None:
    text = SITE.replace("[pir-hall, door-front, radar-bed,", "[pir-hall, door-front, radar-bad,")
    n = line_of(text, "radar-bad")
    assert problems(text) == [f"site.yaml:{n}: welfare[0].activity[2]: no sensor 'radar-bad' "
                              "under sensors (did you mean 'radar-bed'?)"]


def test_activity_sensor_must_be_on_it_and_give_evidence() -> None:
    text = SITE.replace("{ id: pir-hall, type: pir, pin: 27 }",
                        "{ id: pir-hall, type: pir, pin: 27, channel: ot }")
    text = text.replace("pendant, sos-button]", "pendant, climate-living]")
    n = line_of(text, "activity: [")
    assert problems(text) == [
        f"site.yaml:{n}: welfare[0].activity[0]: sensor 'pir-hall' is on channel ot: activity "
        "is welfare data and must be on the it channel",
        f"site.yaml:{n}: welfare[0].activity[4]: sensor 'climate-living' is a sht31, which "
        "gives no activity evidence (types that do: adxl345, button, door, ld2410, mpu6050, "
        "mr60bha1, mr60fda1, pir)"]


def test_meter_may_be_on_ot_but_must_measure_power() -> None:
    assert site().welfare[0].meter is not None  # meter-main is on ot
    text = SITE.replace("meter: { sensor: meter-main", "meter: { sensor: pir-hall")
    n = line_of(text, "meter: {")
    assert problems(text) == [f"site.yaml:{n}: welfare[0].meter.sensor: sensor 'pir-hall' is "
                              "a pir, which gives no household power (types that do: "
                              "dlms-hdlc, dsmr-p1, iec62056-21, modbus-rtu)"]


@pytest.mark.parametrize(("given", "want"), [
    ("{ caution: 30m, alarm: 90m, danger: 1d }", (1800, 5400, 86400)),
    ("{ caution: 28800, alarm: 12h, danger: 2d }", (28800, 43200, 172800)),
])
def test_durations_parse(given: str, want: tuple[int, int, int]) -> None:
    text = SITE.replace("{ caution: 8h, alarm: 12h, danger: 24h }", given)
    r = site(text).welfare[0].inactivity
    assert (r.caution, r.alarm, r.danger) == want


def test_bad_duration_and_unordered_levels() -> None:
    text = SITE.replace("alarm: 12h", "alarm: twelve").replace("confirm: 60s", "confirm: 6o")
    out = problems(text)
    assert out == [
        f"site.yaml:{line_of(text, 'inactivity:')}: welfare[0].inactivity.alarm: expected a "
        "duration (e.g. 1s, 250ms, 7d), got 'twelve'",
        f"site.yaml:{line_of(text, 'confirm')}: welfare[0].fall.confirm: expected a duration "
        "(e.g. 1s, 250ms, 7d), got '6o'"]
    text = SITE.replace("danger: 24h", "danger: 10h")
    (p,) = problems(text)
    assert p.startswith(f"site.yaml:{line_of(text, 'inactivity:')}: welfare[0].inactivity."
                        "danger: danger must be longer than alarm (levels are ordered "
                        "caution < alarm < danger; got 43200s, 36000s)")


def test_climate_for_key_and_typos() -> None:
    text = SITE.replace("for: 30m", "fore: 30m")
    (p,) = problems(text)
    assert p == (f"site.yaml:{line_of(text, 'climate:')}: welfare[0].climate.fore: unknown "
                 "key (did you mean 'for'?)")
    text = SITE.replace("for: 30m", "for: soon")
    (p,) = problems(text)
    assert "welfare[0].climate.for: expected a duration" in p


def test_away_door_and_fall_sensors_are_checked() -> None:
    text = SITE.replace("away: { door: door-front", "away: { door: pir-hall")
    (p,) = problems(text)
    assert p.endswith("welfare[0].away.door: sensor 'pir-hall' is a pir, which gives no door "
                      "events (types that do: door)")
    text = SITE.replace("radar-bed, pendant, sos-button]", "sos-button]")
    (p,) = problems(text)
    assert p.endswith("welfare[0].fall: no sensor under activity reports falls (adxl345, "
                      "mpu6050, mr60fda1)")


def test_confirm_must_outlast_two_accelerometer_periods() -> None:
    text = SITE.replace("activity_seconds: 25", "activity_seconds: 30")
    (p,) = problems(text)
    assert p == (f"site.yaml:{line_of(text, 'confirm')}: welfare[0].fall.confirm: must be "
                 "longer than twice the activity_seconds of 'pendant' (30s): a recovery after "
                 "a fall shows only in the accelerometer's next mean")


def test_duplicate_subject_and_missing_keys() -> None:
    text = SITE + "  - subject: resident-1\n    activity: [pir-hall]\n  - activity: [pir-hall]\n"
    out = problems(text)
    assert any("welfare[1].subject: subject 'resident-1' already has rules" in p for p in out)
    assert any("welfare[2].subject: required key is missing" in p for p in out)


def test_welfare_must_be_a_list() -> None:
    text = SITE[:SITE.index("welfare:")] + "welfare: { subject: x }\n"
    (p,) = problems(text)
    assert p.endswith("welfare: expected a list of residents (subject, activity, ...)")


def test_corroborate_block_is_optional_typed_and_checked() -> None:
    assert site().welfare[0].corroborate == CorroborateRule(900, 3 * 3600, 5400)
    text = SITE.replace("for: 30m }\n", "for: 30m }\n    corroborate: { quiet: 5h, follow: 2h }\n")
    assert site(text).welfare[0].corroborate == CorroborateRule(900, 5 * 3600, 7200)
    text = SITE.replace("for: 30m }\n",
                        "for: 30m }\n    corroborate: { within: 20m, follow: 10m }\n")
    (p,) = problems(text)
    assert p.startswith(f"site.yaml:{line_of(text, 'corroborate:')}: welfare[0].corroborate"
                        ".follow: follow must be between within (1200s) and 4h")
    text = SITE.replace("for: 30m }\n", "for: 30m }\n    corroborate: { within: 2h }\n")
    (p,) = problems(text)
    assert "welfare[0].corroborate.within: within must be between 1m and 1h" in p
    text = SITE.replace("for: 30m }\n", "for: 30m }\n    corroborate: { qiet: 2h }\n")
    (p,) = problems(text)
    assert p.endswith("welfare[0].corroborate.qiet: unknown key (did you mean 'quiet'?)")
