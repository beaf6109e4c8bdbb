"""Installation limits and register monotonicity for meter values."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge_agent.devices.dsmr.options import DsmrOptions
from edge_agent.protocols.plausibility import MeterGuard, MeterLimits


def test_defaults_follow_a_230_v_100_a_three_phase_installation() -> None:
    g = MeterGuard(MeterLimits())
    assert g.verdict("voltage_l1", 230.7, "V") is None
    assert g.verdict("voltage_l2", 0.0, "V") is None  # a phase the meter does not measure
    assert g.verdict("voltage_l1", 100.0, "V") == ("range", "outside 115..345 V")
    assert g.verdict("voltage_l1", 2322.0, "V") is not None  # 0.1 V read as 1 V
    assert g.verdict("current_l1", 6.781, "A") is None
    assert g.verdict("current_l1", 6781.0, "A") is not None  # mA read as A
    assert g.verdict("current_l1", -99.0, "A") is None
    assert g.verdict("power_import", 3 * 345 * 100.0, "W") is None
    assert g.verdict("power_import", 3 * 345 * 100.0 + 1, "W") is not None
    assert g.verdict("power_import_l1", 345 * 100.0 + 1, "W") is not None  # one phase


def test_limits_are_sensor_options() -> None:
    o = DsmrOptions(nominal_voltage=120.0, voltage_band=[0.9, 1.1], max_current=25.0,
                    phases=1)
    g = MeterGuard(o)
    assert g.verdict("voltage_l1", 230.0, "V") is not None
    assert g.verdict("voltage_l1", 121.0, "V") is None
    assert g.verdict("current_l1", 30.0, "A") is not None
    assert g.verdict("power_import", 132.0 * 25 + 1, "W") is not None
    for bad in ({"nominal_voltage": 0.0}, {"voltage_band": [1.2, 1.5]},
                {"voltage_band": [0.5]}, {"max_current": -1.0}, {"phases": 4}):
        with pytest.raises(ValueError):
            DsmrOptions(**bad)  # type: ignore[arg-type]


def test_energy_registers_never_go_backwards() -> None:
    g = MeterGuard(MeterLimits())
    assert g.verdict("energy_import", 1000.0, "Wh") is None
    assert g.verdict("energy_import", 1000.0, "Wh") is None  # unchanged is fine
    assert g.verdict("energy_import", 999.0, "Wh") == \
        ("energy-decrease", "register went back from 1000 to 999 Wh")
    assert g.verdict("energy_export", 5.0, "Wh") is None  # per register
    assert g.verdict("energy_import", 1001.0, "Wh") is None  # passes the last value again
    assert g.verdict("power_import", 0.0, "W") is None and g.verdict("power_import", 5, "W") \
        is None


@given(st.lists(st.floats(0, 1e12), max_size=50))
def test_accepted_register_values_are_monotonic(values: list[float]) -> None:
    g = MeterGuard(MeterLimits())
    accepted = [v for v in values if g.verdict("energy_import", v, "Wh") is None]
    assert accepted == sorted(accepted)
