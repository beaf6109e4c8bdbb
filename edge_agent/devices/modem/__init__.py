"""``gsm-modem``: a GSM/LTE modem that sends text messages (local escalation; README.md)."""

from edge_agent.core.model import Channel, Priority
from edge_agent.devices.modem.driver import build
from edge_agent.devices.modem.emulator import emulate
from edge_agent.devices.modem.options import ModemOptions
from edge_agent.devices.sensor_type import SensorType

GSM_MODEM = SensorType(
    name="gsm-modem",
    summary="GSM/LTE modem on a serial AT port: sends an SMS when an alarm cannot reach "
            "the platform (reads nothing)",
    options=ModemOptions,
    driver=build,
    default_channel=Channel.OT,
    default_priority=Priority.NORMAL,
    default_interval=60.0,
    emulator=emulate,
    bus="serial",
)

TYPES = (GSM_MODEM,)
