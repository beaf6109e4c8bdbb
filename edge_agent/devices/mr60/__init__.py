"""``mr60fda1`` and ``mr60bha1``: Seeed 60 GHz radars on a UART (see README.md).

One family, two models: the same frame protocol, driver and emulator; the model decides which
reports are accepted (fall vs. heart and respiration rates).
"""

from edge_agent.core.model import Channel, Priority
from edge_agent.devices.mr60.driver import build_mr60bha1, build_mr60fda1
from edge_agent.devices.mr60.emulator import emulate_mr60bha1, emulate_mr60fda1
from edge_agent.devices.mr60.options import MR60Options
from edge_agent.devices.sensor_type import DecodeProtocol, SensorType
from edge_agent.protocols import mr60

DECODE = DecodeProtocol("mr60", parser=lambda keys: mr60.Parser())

MR60FDA1 = SensorType(
    name="mr60fda1",
    summary="Seeed MR60FDA1 60 GHz fall radar (UART): presence, motion, fall alarm",
    options=MR60Options,
    driver=build_mr60fda1,
    default_channel=Channel.IT,
    default_priority=Priority.NORMAL,
    default_interval=5.0,
    emulator=emulate_mr60fda1,
    bus="serial",
    self_reporting=True,
    health_data=True,
    decode=DECODE,
)

MR60BHA1 = SensorType(
    name="mr60bha1",
    summary="Seeed MR60BHA1 60 GHz radar (UART): presence, heart and respiration rates",
    options=MR60Options,
    driver=build_mr60bha1,
    default_channel=Channel.IT,
    default_priority=Priority.NORMAL,
    default_interval=5.0,
    emulator=emulate_mr60bha1,
    bus="serial",
    self_reporting=True,
    health_data=True,
    decode=DECODE,
)

TYPES = (MR60FDA1, MR60BHA1)
