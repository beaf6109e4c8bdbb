"""``dsmr-p1``: a DSMR / ESMR / Fluvius smart meter's P1 port (see README.md)."""

from edge_agent.core.model import Channel, Priority
from edge_agent.devices.dsmr.driver import build
from edge_agent.devices.dsmr.emulator import emulate
from edge_agent.devices.dsmr.options import DsmrOptions
from edge_agent.devices.sensor_type import DecodeProtocol, SensorType
from edge_agent.protocols import dsmr

DECODE = DecodeProtocol("dsmr-p1", parser=lambda keys: dsmr.Parser())

DSMR_P1 = SensorType(
    name="dsmr-p1",
    summary="DSMR 2.2-5 / ESMR 5 / Fluvius smart meter P1 port: energy, power, "
            "voltage, current, tariff, M-Bus gas/water/heat",
    options=DsmrOptions,
    driver=build,
    default_channel=Channel.OT,
    default_priority=Priority.NORMAL,
    default_interval=10.0,
    emulator=emulate,
    bus="serial",
    self_reporting=True,
    decode=DECODE,
)

TYPES = (DSMR_P1,)
