"""``dlms-hdlc``: a DLMS/COSEM meter pushing over HDLC on its HAN port (see README.md)."""

from typing import Any

from edge_agent.core.model import Channel, Priority
from edge_agent.devices.dlms_hdlc.driver import build
from edge_agent.devices.dlms_hdlc.emulator import emulate
from edge_agent.devices.dlms_hdlc.keys import load_keys
from edge_agent.devices.dlms_hdlc.options import DlmsOptions
from edge_agent.devices.sensor_type import DecodeProtocol, Keys, SensorType
from edge_agent.protocols import dlms


def _parser(keys: Keys | None) -> Any:
    """A capture may hold HDLC frames or bare APDUs (``framing="auto"``)."""
    key, auth_key = keys if keys is not None else (None, None)
    return dlms.Parser(key=key, auth_key=auth_key, framing="auto")


DECODE = DecodeProtocol("dlms-hdlc", parser=_parser, load_keys=load_keys)

DLMS_HDLC = SensorType(
    name="dlms-hdlc",
    summary="DLMS/COSEM meter push over HDLC (HAN port; Aidon, Kamstrup), optionally "
            "AES-GCM encrypted: power, voltage, current, energy",
    options=DlmsOptions,
    driver=build,
    default_channel=Channel.OT,
    default_priority=Priority.NORMAL,
    default_interval=10.0,
    emulator=emulate,
    bus="serial",
    self_reporting=True,
    decode=DECODE,
)

TYPES = (DLMS_HDLC,)
