"""The device registry: every device declared once, in its own folder, and everything that
lists devices (config, decode, doctor, docs) reading it from there."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path

import pytest
import yaml

from edge_agent.cli import doctor
from edge_agent.cli.decode import PROTOCOLS
from edge_agent.config import parse_config
from edge_agent.core.clock import ManualClock
from edge_agent.devices import docs
from edge_agent.devices.registry import DECODE_PROTOCOLS, FAMILIES, SENSOR_TYPES, family_types
from edge_agent.hal.emulated import EmulatedHardware
from tests.device_helpers import context, spec

REPO = Path(__file__).resolve().parent.parent
DEVICES = REPO / "edge_agent" / "devices"

SITE = """\
site: test
node: n1
hardware: emulated
state_dir: {state}
channels:
  ot: {{brokers: ["mqtt://127.0.0.1:1883"], allow_insecure: true}}
  it: {{brokers: ["mqtt://127.0.0.1:1884"], allow_insecure: true, seal: {{enabled: false}}}}
sensors:
{sensors}
"""


def sample_entries(family: str) -> list[dict[str, object]]:
    entries = yaml.safe_load((DEVICES / family / "sample.yaml").read_text())
    assert isinstance(entries, list) and entries, f"{family}/sample.yaml: a list of entries"
    return entries


@pytest.mark.parametrize("family", FAMILIES)
def test_family_folder_is_complete(family: str) -> None:
    folder = DEVICES / family
    for name in ("__init__.py", "driver.py", "options.py", "README.md", "sample.yaml"):
        assert (folder / name).is_file(), f"{family}/{name} missing"
    assert list((folder / "tests").glob("test_*.py")), f"{family} has no tests"
    types = family_types(family)
    assert types and all(SENSOR_TYPES[t.name] is t for t in types)
    if any(t.emulator is not None for t in types):
        assert (folder / "emulator.py").is_file()


@pytest.mark.parametrize("family", FAMILIES)
def test_sample_is_accepted_and_builds_on_emulated_hardware(family: str,
                                                            tmp_path: Path) -> None:
    text = (DEVICES / family / "sample.yaml").read_text()
    sensors = "\n".join("  " + line for line in text.splitlines())
    site = SITE.format(state=tmp_path / "state", sensors=sensors)
    cfg = parse_config(site, "site.yaml", tmp_path, SENSOR_TYPES)
    names = {t.name for t in family_types(family)}
    assert {s.type for s in cfg.sensors} == names, "the sample shows every type of its family"
    clock = ManualClock()
    hw = EmulatedHardware(clock)
    try:
        for sc in cfg.sensors:
            sensor = SENSOR_TYPES[sc.type].build(spec(sc.type, sensor_id=sc.id), sc.options,
                                                 context(hw, clock))
            assert sensor.id == sc.id
    finally:
        hw.close()


def test_types_are_listed_once_in_family_order() -> None:
    names = [t.name for f in FAMILIES for t in family_types(f)]
    assert names == list(SENSOR_TYPES)
    assert len(names) == len(set(names))


def test_decode_protocols_come_from_the_devices() -> None:
    assert PROTOCOLS is DECODE_PROTOCOLS
    assert set(DECODE_PROTOCOLS) == {"iec62056-21", "dsmr-p1", "modbus-rtu", "dlms-hdlc",
                                     "ld2410", "mr60"}
    assert {n for n, p in DECODE_PROTOCOLS.items() if p.keyed} == {"dlms-hdlc", "dsmr-p1"}
    # both radar models share the one mr60 parser
    assert SENSOR_TYPES["mr60fda1"].decode is SENSOR_TYPES["mr60bha1"].decode


def test_cli_decode_choices_are_the_registry() -> None:
    from edge_agent.cli.main import build_parser

    parser = build_parser()
    args = parser.parse_args(["decode", "--protocol", "mr60", "x"])
    assert args.protocol == "mr60"
    with pytest.raises(SystemExit):
        parser.parse_args(["decode", "--protocol", "not-a-protocol", "x"])


def test_self_reporting_serial_devices_include_dlms_push() -> None:
    talking = {n for n, t in SENSOR_TYPES.items() if t.self_reporting}
    assert talking == {"dsmr-p1", "ld2410", "mr60fda1", "mr60bha1", "dlms-hdlc"}
    assert all(SENSOR_TYPES[n].bus == "serial" for n in talking)


def test_i2c_default_addresses_are_the_options_defaults() -> None:
    got = {n: t.i2c_address for n, t in SENSOR_TYPES.items() if t.bus == "i2c"}
    assert got == {"sht31": 0x44, "bme280": 0x76, "mlx90614": 0x5A, "max30102": 0x57,
                   "mpu6050": 0x68, "adxl345": 0x53}
    for name, t in SENSOR_TYPES.items():
        fields = {f.name: f for f in dataclasses.fields(t.options)}
        if t.bus == "i2c" and "address" in fields:
            assert t.i2c_address == fields["address"].default, name


def test_health_data_types() -> None:
    health = {n for n, t in SENSOR_TYPES.items() if t.health_data}
    assert health == {"max30102", "mlx90614", "mpu6050", "adxl345", "mr60fda1", "mr60bha1"}
    assert all(SENSOR_TYPES[n].default_channel.value == "it" for n in health)


def test_doctor_keeps_no_device_list_of_its_own() -> None:
    assert not hasattr(doctor, "I2C_DEFAULTS") and not hasattr(doctor, "SELF_REPORTING")


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return out


def _device_code() -> list[Path]:
    """Everything in edge_agent/devices that runs on real hardware: drivers, options and
    the shared driver modules (not the emulators, the declarations or the tests)."""
    out = []
    for path in sorted(DEVICES.rglob("*.py")):
        rel = path.relative_to(DEVICES)
        if "tests" in rel.parts or rel.name in ("emulator.py", "__init__.py", "docs.py",
                                                "registry.py"):
            continue
        out.append(path)
    return out


def test_no_driver_imports_an_emulator_or_branches_on_the_hardware_mode() -> None:
    code = _device_code()
    assert any(p.name == "driver.py" for p in code)
    for path in code:
        imports = _imports(path)
        bad = {m for m in imports if m.endswith(".emulator") or ".hal.emulated" in m
               or m.startswith("gpiozero.pins.mock")}
        assert not bad, f"{path.relative_to(REPO)} imports {bad}"
        text = path.read_text()
        assert "hardware ==" not in text and "hardware !=" not in text, path
        assert '"emulated"' not in text, path


def test_docs_devices_md_is_current() -> None:
    committed = (REPO / "docs" / "devices.md").read_text()
    assert committed == docs.render(), (
        "docs/devices.md is stale: python -m edge_agent.devices.docs > docs/devices.md")


def test_every_family_readme_has_the_sections() -> None:
    for family in FAMILIES:
        text = (DEVICES / family / "README.md").read_text()
        for section in ("**Wiring.**", "**Readings.**", "**Faults counted.**",
                        "**Emulator.**"):
            assert section in text, f"{family}/README.md lacks {section}"
