"""Device faults: a USB serial adapter that vanishes and returns, an I2C bus that errors.

In-process agent (the rig needs its hands on the emulated hardware) with three sensors on
the ot channel: ``gen`` (load), ``meter`` (DSMR P1 meter on a pty, behind a stable
``by-id``-like path) and ``climate`` (SHT31 on an emulated I2C bus).

1. The meter's adapter is unplugged (pty closed, path gone) for ``outage`` seconds, then
   plugged back; the meter's import power changes while it is away (450 -> 600 W).
2. The climate sensor's bus NAKs (device gone) for ``outage`` seconds, then comes back
   with bus errors (arbitration lost) and CRC-damaged answers; its temperature changes
   while it is away (21 -> 23 degC).

Checked at the consumer: the agent stays up; the other sensors keep delivering inside each
outage; the failing sensor delivers again after it; nothing is invented: no reading of a
failing sensor is stamped inside its outage, every value after it is the device's new
value (no stale value carried over), and no more readings arrive than the device produced.
Then the usual store check (no silent loss, bounded duplicates, lane order).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass
from pathlib import Path

from edge_agent.config import load_config
from edge_agent.core.model import Channel
from edge_agent.daemon.runtime import Agent
from edge_agent.devices.dsmr.emulator import DsmrEmulator
from edge_agent.devices.registry import SENSOR_TYPES
from edge_agent.devices.sht31.emulator import SHT31Device
from edge_agent.devices.sht31.options import SHT31Options
from edge_agent.hal.emulated import EmulatedDevice
from edge_agent.hal.emulated.i2c import EmulatedI2CBus
from edge_agent.tools.consumer import Consumer
from edge_agent.tools.mosquitto import Mosquitto
from hil.common import wait_for, write_site
from hil.faults.rig import (
    AgentProcess,
    Result,
    consumer,
    drain_and_stop,
    judge,
    quiet_site,
    read_store,
)

SENSORS = """\
  - {id: gen, type: load, channel: ot, rate: 500, chunk: 0.02}
  - id: meter
    type: dsmr-p1
    channel: ot
    interval: 100ms
    silence_timeout: 1.0
    emulate: {interval: 0.2, power_w: 450.0}
  - id: climate
    type: sht31
    channel: ot
    interval: 100ms
    emulate: {temperature: 21.0, humidity: 40.0, noise: 0.0}
"""


def emulated(agent: Agent, sensor_id: str) -> EmulatedDevice:
    """The emulated hardware the agent built for one sensor (the rig's handle on it)."""
    sensor = next(r.sensor for r in agent.sensors if r.sensor.id == sensor_id)
    hw = sensor.ctx.hw
    assert isinstance(hw, EmulatedDevice), f"{sensor_id} is not on emulated hardware"
    return hw


@dataclass(frozen=True)
class Point:
    name: str
    value: float | str | bool | None  # SenML v, vs or vb
    time: float


def points(c: Consumer, sensor: str) -> list[Point]:
    out = []
    for m in c.snapshot().messages:
        for r in m.msg.get("senml", []):
            if r["n"].startswith(sensor + "/"):
                name = r["n"][len(sensor) + 1:]
                out.append(Point(name, r.get("v", r.get("vs", r.get("vb"))), r["t"]))
    return out


def inside(ps: list[Point], lo: float, hi: float) -> int:
    return sum(1 for p in ps if lo < p.time < hi)


def devices(work: Path, outage: float = 1.5) -> Result:
    res = Result("devices", f"DSMR P1 adapter unplugged {outage:g}s; I2C device NAK "
                            f"{outage:g}s, then a bus error and a CRC error (in-process)")
    with Mosquitto(work / "broker") as b:
        c = consumer(b.port, keep=True)
        cfg = load_config(write_site(work, [b.url], sensors=SENSORS), SENSOR_TYPES)
        agent = Agent(cfg, SENSOR_TYPES)
        runner = threading.Thread(target=agent.run_until_stopped, kwargs={"poll": 0.2},
                                  name="hil-agent", daemon=True)
        runner.start()
        emu = emulated(agent, "meter").emulator
        assert isinstance(emu, DsmrEmulator)
        climate = emulated(agent, "climate")
        bus, dev = climate.i2c(SHT31Options().bus), climate.emulator
        assert isinstance(bus, EmulatedI2CBus) and isinstance(dev, SHT31Device)
        addr = SHT31Options().address
        started = wait_for(lambda: all(points(c, s) for s in ("gen", "meter", "climate")), 20)

        # 1. the serial adapter vanishes and comes back; the meter's power changes meanwhile
        t0 = time.time()
        emu.unplug()
        time.sleep(outage / 2)
        emu.set_power(600.0)
        time.sleep(outage / 2)
        emu.replug()
        t1 = time.time()
        meter_back = wait_for(lambda: any(p.time >= t1 for p in points(c, "meter")), 15)
        meter_recovery = time.time() - t1

        # 2. the I2C device NAKs (gone from the bus), comes back; its room got warmer
        t2 = time.time()
        bus.unplug(addr)
        time.sleep(outage / 2)
        dev.temperature = 23.0
        time.sleep(outage / 2)
        bus.plug(addr)
        t3 = time.time()
        climate_back = wait_for(lambda: any(p.time >= t3 for p in points(c, "climate")), 15)
        climate_recovery = time.time() - t3

        # 3. transient faults on a working bus: arbitration lost, then a garbled answer
        def errors() -> dict[str, int]:
            return dict(agent.health(Channel.OT)["sensors"]["climate"]["errors"])

        before = errors()
        t4 = time.time()
        bus.bus_error_next(addr, 1)
        dev.corrupt_next = 1
        transient_ok = wait_for(lambda: all(
            errors().get(k, 0) > before.get(k, 0) for k in ("HardwareError", "checksum")), 10)
        t5 = time.time()
        transient_ok &= wait_for(lambda: any(p.time >= t5 for p in points(c, "climate")), 10)
        transient_recovery = time.time() - t4
        time.sleep(0.5)
        alive = (runner.is_alive() and all(w.error is None for w in agent.writers.values())
                 and all(u.error is None for u in agent.uplinks.values()))
        health = agent.health(Channel.OT)["sensors"]
        agent.stop_event.set()
        runner.join(15)
        stopped = not runner.is_alive()
        drained = drain_and_stop(AgentProcess(quiet_site(work, [b.url]), work / "agent.log"), c)
        view = read_store(work / "state")

        gen, mp, cp = points(c, "gen"), points(c, "meter"), points(c, "climate")
        power = [p for p in mp if p.name == "power_import"]
        temps = [p for p in cp if p.name == "temperature"]
        # the meter stamps its telegrams (1 s resolution): nothing stamped while it was gone
        invented_meter = inside(mp, t0 + 0.01, t1 - 1.0)
        stale_meter = sum(1 for p in power if p.time >= t1 and p.value != 600.0) + sum(
            1 for p in power if p.time <= t0 and p.value != 450.0)
        produced_meter = emu.sent - emu.dropped
        invented_climate = inside(cp, t2 + 0.2, t3 - 0.05)
        stale_climate = sum(1 for p in temps if p.time >= t3 and p.value != 23.0) + sum(
            1 for p in temps if p.time <= t2 and p.value != 21.0)
        others_kept = (inside(gen, t0, t1) > 0 and inside(cp, t0, t1) > 0
                       and inside(gen, t2, t3) > 0 and inside(mp, t2, t3) > 0)
        not_invented = (invented_meter == 0 and stale_meter == 0 and invented_climate == 0
                        and stale_climate == 0 and len(power) <= produced_meter
                        and len(temps) <= dev.measurements)
        judge(res, c, view, resends=2,
              extra_ok=(started and alive and stopped and meter_back and climate_back
                        and transient_ok and others_kept and not_invented and drained))
        c.stop()
    errs = {k: dict(v["errors"]) for k, v in health.items() if v["errors"]}
    res.figures["recovery_s"] = (f"meter {meter_recovery:.1f}, climate {climate_recovery:.1f}"
                                 f" / {transient_recovery:.1f}")
    res.figures["invented"] = invented_meter + invented_climate + stale_meter + stale_climate
    res.saw = (f"agent up: {alive}; while the meter was away: gen {inside(gen, t0, t1)}, "
               f"climate {inside(cp, t0, t1)} readings; while the bus failed: gen "
               f"{inside(gen, t2, t3)}, meter {inside(mp, t2, t3)}; meter back after "
               f"{meter_recovery:.1f}s ({len(power)} telegrams of {produced_meter} sent while "
               f"plugged), climate back after {climate_recovery:.1f}s and "
               f"{transient_recovery:.1f}s after a bus + CRC error ({len(temps)} readings "
               f"of {dev.measurements} measurements); readings stamped inside an outage "
               f"{invented_meter + invented_climate}, stale values after it "
               f"{stale_meter + stale_climate}; sensor errors counted {errs}; "
               f"{res.received} of {res.accepted} seqs")
    return res
