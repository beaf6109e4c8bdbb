"""The real GPIO pin factory under the service sandbox (board revision, lgpio errors)."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge_agent.core.errors import HardwareError


def test_board_revision_from_sysfs_device_tree(tmp_path: Path) -> None:
    """Under ProcSubset=pid the unit hides /proc/device-tree and /proc/cpuinfo (where
    gpiozero looks); the revision is read from sysfs's view of the same device tree."""
    from edge_agent.hal.gpio import board_revision

    dt = tmp_path / "linux,revision"
    dt.write_bytes(bytes.fromhex("00c03114"))
    assert board_revision((str(tmp_path / "absent"), str(dt)), "/nonexistent") == 0xC03114
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor\t: 0\nRevision\t: a02082\n")
    assert board_revision((str(tmp_path / "absent"),), str(cpuinfo)) == 0xA02082
    assert board_revision((str(tmp_path / "absent"),), str(tmp_path / "absent")) is None


def test_real_pin_factory_passes_the_revision_to_gpiozero(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sys
    import types

    from edge_agent.hal import gpio as gpio_inputs

    seen: list[int] = []

    class FakeLGPIOFactory:
        def __init__(self) -> None:
            seen.append(self._get_revision())

        def _get_revision(self) -> int:
            raise AssertionError("gpiozero's own lookup reads the hidden /proc files")

    mod = types.ModuleType("gpiozero.pins.lgpio")
    mod.LGPIOFactory = FakeLGPIOFactory  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gpiozero.pins.lgpio", mod)
    dt = tmp_path / "linux,revision"
    dt.write_bytes(bytes.fromhex("00d04170"))
    monkeypatch.setattr(gpio_inputs, "REVISION_FILES", (str(dt),))
    monkeypatch.setattr(gpio_inputs, "CPUINFO", "/nonexistent")
    gpio_inputs.real_pin_factory()
    assert seen == [0xD04170]
    monkeypatch.setattr(gpio_inputs, "REVISION_FILES", (str(tmp_path / "absent"),))
    with pytest.raises(HardwareError, match="revision"):
        gpio_inputs.real_pin_factory()


def test_lgpio_errors_are_hardware_errors(tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """lgpio raises its own ``lgpio.error`` (not an OSError) when the chip cannot be
    opened, e.g. /dev/gpiochip0 not readable by the service's groups: a counted
    HardwareError, not a crashed sensor thread."""
    import sys
    import types

    from edge_agent.hal import gpio as gpio_inputs

    lgpio_error = type("error", (Exception,), {"__module__": "lgpio"})

    class FakeLGPIOFactory:
        def __init__(self) -> None:
            raise lgpio_error("can not open gpiochip")

    mod = types.ModuleType("gpiozero.pins.lgpio")
    mod.LGPIOFactory = FakeLGPIOFactory  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "gpiozero.pins.lgpio", mod)
    dt = tmp_path / "linux,revision"
    dt.write_bytes(bytes.fromhex("00c03114"))
    monkeypatch.setattr(gpio_inputs, "REVISION_FILES", (str(dt),))
    with pytest.raises(HardwareError, match="can not open gpiochip"):
        gpio_inputs.real_pin_factory()
