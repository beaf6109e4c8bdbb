"""APDU boundaries (from their own encoding) and decoding into frames."""

from __future__ import annotations

import dataclasses

from edge_agent.core.errors import FrameError, ProtocolError
from edge_agent.protocols.dlms.axdr import Reader, Truncated
from edge_agent.protocols.dlms.cosem import (
    DATA_NOTIFICATION,
    Notification,
    notification_fields,
    parse_notification,
)
from edge_agent.protocols.dlms.hdlc import LLC, LLC_RESPONSE
from edge_agent.protocols.dlms.security import (
    GLO_CIPHERING,
    CipheredApdu,
    ciphered_header,
    decrypt_glo,
)

APDU_STARTS = frozenset({DATA_NOTIFICATION, GLO_CIPHERING, LLC[0]})


def apdu_length(data: bytes, offset: int = 0) -> int:
    """The length of the APDU (or LLC header + APDU) at the start of ``data``.

    Raises ``Truncated`` (a FrameError) when ``data`` ends before the APDU does, FrameError
    when the bytes cannot start a DataNotification or general-glo-ciphering APDU.
    """
    skip = 0
    if data[:1] == LLC[:1]:
        if len(data) < 3:
            raise Truncated("APDU ends inside the LLC header", offset)
        if data[:3] not in (LLC, LLC_RESPONSE):
            raise FrameError("bad LLC header", offset)
        skip = 3
    r = Reader(data[skip:], offset)
    tag = r.byte()
    if tag == GLO_CIPHERING:
        r.take(r.length())  # system title
        r.take(r.length())  # security control, invocation counter, payload (+ tag)
    elif tag == DATA_NOTIFICATION:
        notification_fields(r)
    else:
        raise FrameError(f"not a DataNotification or ciphered APDU (tag 0x{tag:02X})", offset)
    return skip + r.pos


def decode_apdu(apdu: bytes, offset: int = 0, key: bytes | None = None,
                auth_key: bytes | None = None,
                model: str | None = None) -> Notification | CipheredApdu | ProtocolError:
    """A DataNotification APDU, plain or general-glo-ciphered. Never raises ProtocolError.

    A ciphered APDU with no ``key`` is a CipheredApdu (not decrypted, not an error).
    """
    try:
        if apdu[:1] == bytes([GLO_CIPHERING]):
            if key is None:
                return ciphered_header(apdu, offset)
            plain, title = decrypt_glo(apdu, offset, key, auth_key)
            note = parse_notification(plain, offset, model)
            counter = ciphered_header(apdu, offset).invocation_counter
            return dataclasses.replace(note, encrypted=True, system_title=title,
                                       invocation_counter=counter)
        return parse_notification(apdu, offset, model)
    except ProtocolError as exc:
        return exc
