"""Each device type end to end: the host drives the device, the host subscriber receives."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest

from edge_agent.devices.bme280.emulator import BME280Device
from edge_agent.devices.bme280.options import BME280Emulate
from edge_agent.protocols import accel as pa
from edge_agent.protocols import bme280 as pb
from edge_agent.tools.consumer import Consumer

from .readings import Value, wait_values
from .rig import Rig, sensor_lines


@pytest.mark.lg_feature("p1")
def test_p1_meter_on_a_tty(agent: Rig, ot: Consumer) -> None:
    meter = agent.p1()
    meter.set_power(1234.0)
    agent.install_site(sensor_lines(
        f"{{id: meter-main, type: dsmr-p1, port: {agent.p1_port}, channel: ot}}"))
    agent.start()
    got = wait_values(ot, "meter-main", "power_import", 2, timeout=90)
    assert got and got[-1] == pytest.approx(1234.0), (got, agent.logs()[-3000:])
    meter.set_power(2500.0)
    later = wait_values(ot, "meter-main", "power_import", 1, timeout=60,
                        accept=lambda v: v == pytest.approx(2500.0))
    assert later, "a changed power value did not come through"
    assert wait_values(ot, "meter-main", "energy_import_t1", 1), "no energy register"


def near(expected: float) -> Callable[[Value], bool]:
    return lambda v: v == pytest.approx(expected)


@pytest.mark.lg_feature(["p1", "serial_hotplug"])
def test_serial_adapter_unplugged_and_back(agent: Rig, ot: Consumer) -> None:
    meter = agent.p1()
    agent.install_site(sensor_lines(
        f"{{id: meter-main, type: dsmr-p1, port: {agent.p1_port}, channel: ot}}"))
    agent.start()
    pid = agent.main_pid()
    assert wait_values(ot, "meter-main", "power_import", 2, timeout=90)
    for n, watts in enumerate((777.0, 888.0, 999.0), 1):  # three times: reliably, not once
        meter.unplug()
        time.sleep(4)
        meter.set_power(watts)
        meter.replug()
        back = wait_values(ot, "meter-main", "power_import", 2, timeout=120,
                           accept=near(watts))
        assert len(back) >= 2, \
            f"replug {n}: no readings after the adapter came back\n{agent.logs()[-3000:]}"
        assert agent.main_pid() == pid, \
            f"replug {n}: the agent restarted instead of recovering the port"


@pytest.mark.lg_feature("gpio")
def test_gpio_button_pir_door(agent: Rig, it: Consumer) -> None:
    agent.install_site(sensor_lines(
        "{id: sos-button, type: button, pin: 17, channel: it, priority: alarm}",
        "{id: motion-hall, type: pir, pin: 27, channel: it}",
        "{id: door-front, type: door, pin: 22, channel: it}"))
    agent.start()
    # the agent's bias settings (pull-up for button and door, pull-down for the PIR) set
    # the simulated lines as a real pull resistor would: the door reads open at start
    # (the first reading waits for lgpio and gpiozero to load: slow under TCG on a busy host)
    if not wait_values(it, "door-front", "open", 1, timeout=180):
        status = agent.edge_agent(f"status -c {agent.site_path}").out
        raise AssertionError(f"door state not reported\n{agent.logs()[-3000:]}\n{status}")
    agent.set_pull(22, high=False)  # door shut: the reed closes to GND
    assert wait_values(it, "door-front", "open", 1, timeout=60, accept=lambda v: v is False)
    agent.set_pull(17, high=False)  # the button pressed: contact to GND
    time.sleep(0.5)
    agent.set_pull(17, high=True)
    assert wait_values(it, "sos-button", "pressed", 1, timeout=60), \
        f"button press not delivered\n{agent.logs()[-3000:]}"
    agent.set_pull(27, high=True)  # the PIR's output goes high on motion
    assert wait_values(it, "motion-hall", "motion", 1, timeout=60, accept=lambda v: v is True)
    agent.set_pull(22, high=True)
    assert len(wait_values(it, "door-front", "open", 2, timeout=60,
                           accept=lambda v: v is True)) >= 2
    alarms = [m for m in it.snapshot().messages if m.topic.endswith("/alarm")]
    assert alarms, "the button press did not go out on the alarm lane"


def bme280_registers(temperature: float, humidity: float, pressure: float) -> dict[int, int]:
    """The register image of a BME280 after a forced measurement (from the emulator)."""
    dev = BME280Device(BME280Emulate(temperature=temperature, humidity=humidity,
                                     pressure=pressure, noise=0.0))
    dev.write(bytes([pb.REG_CTRL_HUM, 1, pb.REG_CTRL_MEAS, (1 << 5) | (1 << 2) | 1]))
    regs: dict[int, int] = {}
    for start, n in ((pb.REG_CALIB_T_P, pb.CALIB_T_P_LEN), (pb.REG_CALIB_H, pb.CALIB_H_LEN),
                     (pb.REG_CHIP_ID, 1), (pb.REG_DATA, pb.DATA_LEN)):
        for i, b in enumerate(dev.write_read(bytes([start]), n)):
            regs[start + i] = b
    regs[pb.REG_STATUS] = 0
    return regs


def accel_registers(who_reg: int, who: int, data_reg: int, data: bytes) -> dict[int, int]:
    regs = {who_reg: who}
    regs.update({data_reg + i: b for i, b in enumerate(data)})
    return regs


@pytest.mark.lg_feature("i2c_stub")
def test_i2c_chips_through_the_kernel(agent: Rig, it: Consumer) -> None:
    """BME280, MPU6050 and ADXL345 register maps in i2c-stub, read by the real drivers
    through /dev/i2c-N (an SMBus-only adapter: register reads become SMBus transfers)."""
    agent.i2c_load(0x76, bme280_registers(24.5, 40.0, 100_000.0))
    agent.i2c_load(0x68, accel_registers(pa.MPU_WHO_AM_I, 0x68, pa.MPU_ACCEL_XOUT_H,
                                         pa.mpu_encode(0.0, 0.0, 1.5, 8)))
    agent.i2c_load(0x53, accel_registers(pa.ADXL_DEVID, 0xE5, pa.ADXL_DATAX0,
                                         pa.adxl_encode(0.0, 0.0, 1.5, 8)))
    bus = agent.i2c_bus
    agent.install_site(sensor_lines(
        f"{{id: climate, type: bme280, bus: {bus}, address: 0x76, interval: 2s, channel: it}}",
        f"{{id: pendant-mpu, type: mpu6050, bus: {bus}, sample_rate_hz: 10,"
        " activity_seconds: 3, channel: it}",
        f"{{id: pendant-adxl, type: adxl345, bus: {bus}, sample_rate_hz: 10,"
        " activity_seconds: 3, channel: it}"))
    agent.start()
    t = wait_values(it, "climate", "temperature", 1, timeout=90)
    assert t and t[0] == pytest.approx(24.5, abs=0.02), (t, agent.logs()[-3000:])
    h = wait_values(it, "climate", "humidity", 1)
    p = wait_values(it, "climate", "pressure", 1)
    assert h[0] == pytest.approx(40.0, abs=0.1) and p[0] == pytest.approx(100_000, abs=5)
    # 1.5 g at rest is 0.5 g of activity: 4.90 m/s2
    for sensor in ("pendant-mpu", "pendant-adxl"):
        a = wait_values(it, sensor, "activity", 1, timeout=90)
        assert a and a[0] == pytest.approx(4.903, abs=0.05), (sensor, a,
                                                                agent.logs()[-3000:])


@pytest.mark.lg_feature("bme280")
def test_real_bme280_on_the_bench(agent: Rig, it: Consumer) -> None:
    """A real BME280 breakout (pi rig): plausible room values, nothing invented."""
    agent.install_site(sensor_lines(
        f"{{id: climate, type: bme280, bus: {agent.i2c_bus}, interval: 2s, channel: it}}"))
    agent.start()
    t = wait_values(it, "climate", "temperature", 2, timeout=60)
    p = wait_values(it, "climate", "pressure", 1)
    assert len(t) >= 2 and all(isinstance(v, float) and 5 < v < 40 for v in t), t
    assert p and isinstance(p[0], float) and 85_000 < p[0] < 108_000, p
