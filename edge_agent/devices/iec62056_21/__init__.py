"""``iec62056-21``: a meter read through an IEC 62056-21 optical probe (see README.md)."""

from edge_agent.core.model import Channel, Priority
from edge_agent.devices.iec62056_21.driver import build
from edge_agent.devices.iec62056_21.emulator import emulate
from edge_agent.devices.iec62056_21.options import IecOptions
from edge_agent.devices.sensor_type import DecodeProtocol, SensorType
from edge_agent.protocols import iec62056_21

DECODE = DecodeProtocol("iec62056-21", parser=lambda keys: iec62056_21.Parser())

IEC62056_21 = SensorType(
    name="iec62056-21",
    summary="meter read by an IEC 62056-21 optical probe (mode C readout): energy, "
            "power, voltage, current, frequency",
    options=IecOptions,
    driver=build,
    default_channel=Channel.OT,
    default_priority=Priority.NORMAL,
    default_interval=60.0,
    emulator=emulate,
    bus="serial",
    decode=DECODE,
)

TYPES = (IEC62056_21,)
