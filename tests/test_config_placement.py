"""Where sensors sit: health data on OT, shared pins, I2C addresses and serial ports."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.config import parse_config
from edge_agent.core.errors import ConfigError
from edge_agent.devices.registry import SENSOR_TYPES

REPO = Path(__file__).resolve().parent.parent

HEAD = """\
site: namwon-01
node: pi-0042
hardware: emulated
state_dir: /var/lib/edge-agent
channels:
  ot:
    brokers: [mqtts://ot.city.example:8883]
  it:
    brokers: [mqtts://it.city.example:8883]
    seal: {enabled: false}
"""


def problems(sensors: str) -> list[str]:
    with pytest.raises(ConfigError) as ei:
        parse_config(HEAD + sensors, "site.yaml", Path("/etc"), SENSOR_TYPES, {})
    return [p.format() for p in ei.value.problems]


def ok(sensors: str):  # type: ignore[no-untyped-def]
    return parse_config(HEAD + sensors, "site.yaml", Path("/etc"), SENSOR_TYPES, {})


def test_health_sensor_on_ot_is_refused_and_names_the_key() -> None:
    (p,) = problems("sensors:\n  - {id: spo2, type: max30102, channel: ot}\n")
    assert p.startswith("site.yaml:12: sensors[0].channel: max30102 readings are health data")
    assert "allow_health_on_ot: true" in p and "in clear" in p


def test_health_sensor_on_ot_with_the_explicit_key_passes() -> None:
    cfg = ok("sensors:\n  - {id: spo2, type: max30102, channel: ot, allow_health_on_ot: true}\n")
    assert cfg.sensors[0].channel.value == "ot"


def test_every_health_type_is_checked() -> None:
    health = sorted(n for n, t in SENSOR_TYPES.items() if t.health_data)
    assert {"max30102", "mlx90614", "mpu6050", "mr60bha1"} <= set(health)
    for name in health:
        port = "port: /dev/ttyS9, " if SENSOR_TYPES[name].bus == "serial" else ""
        found = problems(f"sensors:\n  - {{id: s, type: {name}, {port}channel: ot}}\n")
        assert any("health data" in p for p in found), (name, found)


def test_non_health_sensor_on_ot_passes() -> None:
    assert ok("sensors:\n  - {id: c, type: bme280, channel: ot}\n").sensors


def test_two_sensors_on_one_gpio_pin() -> None:
    (p,) = problems("sensors:\n"
                    "  - {id: sos, type: button, pin: 17}\n"
                    "  - {id: door, type: door, pin: 17}\n")
    assert p.startswith("site.yaml:13: sensors[1].pin: GPIO pin 17 is already used by "
                        "sensor 'sos' (line 12)")


def test_one_i2c_address_twice_on_one_bus_counts_defaults() -> None:
    # sht31 defaults to 0x44; the second names it explicitly
    (p,) = problems("sensors:\n"
                    "  - {id: a, type: sht31}\n"
                    "  - {id: b, type: sht31, address: 0x44}\n")
    assert "sensors[1].address: I2C address 0x44 on bus 1 is already used by sensor 'a'" in p
    # same address on another bus, or another address: fine
    ok("sensors:\n  - {id: a, type: sht31}\n  - {id: b, type: sht31, bus: 3}\n")
    ok("sensors:\n  - {id: a, type: sht31}\n  - {id: b, type: sht31, address: 0x45}\n")


def test_one_serial_port_twice() -> None:
    (p,) = problems("sensors:\n"
                    "  - {id: m, type: dsmr-p1, channel: ot, port: /dev/ttyUSB0}\n"
                    "  - {id: r, type: ld2410, port: /dev/ttyUSB0}\n")
    assert "sensors[1].port: serial port /dev/ttyUSB0 is already used by sensor 'm'" in p


def test_a_disabled_sensor_may_share_hardware() -> None:
    ok("sensors:\n"
       "  - {id: sos, type: button, pin: 17}\n"
       "  - {id: spare, type: door, pin: 17, enabled: false}\n")


def test_no_sensors_is_a_warning_not_an_error() -> None:
    cfg = ok("sensors: []\n")
    (w,) = cfg.warnings
    assert w.path == "sensors" and "no sensors" in w.message
    assert ok("").warnings[0].path == "sensors"
    assert ok("sensors:\n  - {id: g, type: load, channel: ot}\n").warnings == []


@pytest.mark.parametrize("name", ["elderly-home.yaml", "meter-room.yaml", "mixed.yaml"])
def test_shipped_site_examples_name_no_node(name: str) -> None:
    """A default node name would give every node installed from the example one
    identity: the node comes from EDGE_NODE (install.sh writes it) with no fallback."""
    text = (REPO / "configs" / name).read_text()
    (line,) = [ln for ln in text.splitlines() if ln.startswith("node:")]
    assert line.split("#")[0].strip() == "node: ${EDGE_NODE}"
