"""``ld2410``: HLK-LD2410 24 GHz presence radar on a UART (see README.md)."""

from edge_agent.core.model import Channel, Priority
from edge_agent.devices.ld2410.driver import build
from edge_agent.devices.ld2410.emulator import emulate
from edge_agent.devices.ld2410.options import LD2410Options
from edge_agent.devices.sensor_type import DecodeProtocol, SensorType
from edge_agent.protocols import ld2410

DECODE = DecodeProtocol("ld2410", parser=lambda keys: ld2410.Parser())

LD2410 = SensorType(
    name="ld2410",
    summary="HLK-LD2410 24 GHz presence radar (UART): presence, target state, distance",
    options=LD2410Options,
    driver=build,
    default_channel=Channel.IT,
    default_priority=Priority.NORMAL,
    default_interval=5.0,
    emulator=emulate,
    bus="serial",
    self_reporting=True,
    decode=DECODE,
)

TYPES = (LD2410,)
