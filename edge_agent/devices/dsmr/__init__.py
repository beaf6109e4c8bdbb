"""``dsmr-p1``: a DSMR / ESMR / Fluvius smart meter's P1 port (see README.md)."""

from typing import Any

from edge_agent.core.model import Channel, Priority
from edge_agent.devices.dlms_hdlc.keys import load_keys
from edge_agent.devices.dsmr.driver import build
from edge_agent.devices.dsmr.emulator import emulate
from edge_agent.devices.dsmr.options import DsmrOptions
from edge_agent.devices.sensor_type import DecodeProtocol, Keys, SensorType
from edge_agent.protocols import dsmr
from edge_agent.protocols.dsmr_encrypted import EncryptedParser


def _parser(keys: Keys | None) -> Any:
    """Plain telegrams; with ``--key`` (EK= and AK= lines, as for dlms-hdlc) encrypted P1."""
    return dsmr.Parser() if keys is None else EncryptedParser(keys[0], keys[1])


DECODE = DecodeProtocol("dsmr-p1", parser=_parser, load_keys=load_keys)

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
