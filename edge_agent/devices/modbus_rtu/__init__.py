"""``modbus-rtu``: a Modbus RTU meter on RS-485 (see README.md)."""

from edge_agent.core.model import Channel, Priority
from edge_agent.devices.modbus_rtu.driver import build
from edge_agent.devices.modbus_rtu.emulator import emulate
from edge_agent.devices.modbus_rtu.options import ModbusOptions
from edge_agent.devices.sensor_type import DecodeProtocol, SensorType
from edge_agent.protocols import modbus_rtu

DECODE = DecodeProtocol("modbus-rtu", parser=lambda keys: modbus_rtu.Parser())

MODBUS_RTU = SensorType(
    name="modbus-rtu",
    summary="Modbus RTU meter on RS-485 (Eastron SDM120/SDM630 or a custom register "
            "map): voltage, current, power, frequency, energy",
    options=ModbusOptions,
    driver=build,
    default_channel=Channel.OT,
    default_priority=Priority.NORMAL,
    default_interval=10.0,
    emulator=emulate,
    bus="serial",
    decode=DECODE,
)

TYPES = (MODBUS_RTU,)
