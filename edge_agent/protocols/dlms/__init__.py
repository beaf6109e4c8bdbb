"""DLMS/COSEM push over HDLC (IEC 62056-46 frame type 3), as smart-meter HAN ports send it.

Frame: ``7E | A<S><len:11> | dst addr | src addr | control | HCS | info | FCS | 7E``; the
length counts the bytes between the flags, so 0x7E may occur inside the payload. HCS/FCS
are CRC-16/X-25. Segments (S bit) are joined. The information field starts with the LLC
header ``E6 E7 00`` and holds an APDU: a DataNotification (0x0F) or a general-glo-ciphering
APDU (0xDB) wrapping one (AES-128-GCM, IV = system title || invocation counter, 12-byte tag,
AAD = security control byte || AK). The notification body (A-XDR) is mapped to OBIS values
for the common push layouts: arrays of ``(OBIS, value[, (scaler, unit)])`` structures
(Aidon) and flat structures where logical names and values alternate (Kamstrup).

Without a key an encrypted APDU is not an error: it comes out as a ``CipheredApdu`` frame
(system title, invocation counter), so a capture can be inspected before the key is known.

The parser keeps no replay state: every authentic push comes out, replayed or not (a capture
shows every frame). A live reader puts decrypted Notifications through a ``ReplayGuard``,
which rejects a push whose invocation counter is not above the last one accepted from the
same system title (``ReplayError``, reason ``replay``).

``Parser(framing=...)``: ``"hdlc"`` (default: a live HAN port), ``"apdu"`` (a stream of bare
APDUs, each ``0F``/``DB``, optionally behind the LLC header, delimited by its own encoding) or
``"auto"`` (captures: HDLC if the first byte is the 0x7E flag, else bare APDUs if it starts
one). A live port can start mid-frame, so only captures use ``"auto"``.

Modules: ``hdlc`` (frame type 3, CRC-16/X-25), ``axdr`` (A-XDR data), ``cosem`` (the
DataNotification and its OBIS values), ``security`` (general-glo-ciphering, replay guard),
``apdu`` (APDU boundaries and decoding) and ``parser`` (the sans-I/O stream parser).
"""

from edge_agent.protocols.dlms.apdu import APDU_STARTS, apdu_length, decode_apdu
from edge_agent.protocols.dlms.axdr import MAX_APDU, Data, Reader, decode_data, jsonable
from edge_agent.protocols.dlms.cosem import (
    DATA_NOTIFICATION,
    METER_MODELS,
    MODELS,
    UNITS,
    LayoutError,
    Model,
    Notification,
    cosem_datetime,
)
from edge_agent.protocols.dlms.hdlc import (
    FLAG,
    LLC,
    LLC_RESPONSE,
    HdlcFrame,
    crc16_x25,
    encode_frame,
)
from edge_agent.protocols.dlms.parser import JUNK_REPORT, Frame, Framing, Parser
from edge_agent.protocols.dlms.security import (
    GLO_CIPHERING,
    TAG_LEN,
    CipheredApdu,
    ReplayError,
    ReplayGuard,
    ciphered_header,
    decrypt_glo,
    encrypt_glo,
)

__all__ = [
    "APDU_STARTS",
    "DATA_NOTIFICATION",
    "FLAG",
    "GLO_CIPHERING",
    "JUNK_REPORT",
    "LLC",
    "LLC_RESPONSE",
    "MAX_APDU",
    "METER_MODELS",
    "MODELS",
    "TAG_LEN",
    "UNITS",
    "CipheredApdu",
    "Data",
    "Frame",
    "Framing",
    "HdlcFrame",
    "LayoutError",
    "Model",
    "Notification",
    "Parser",
    "Reader",
    "ReplayError",
    "ReplayGuard",
    "apdu_length",
    "ciphered_header",
    "cosem_datetime",
    "crc16_x25",
    "decode_apdu",
    "decode_data",
    "decrypt_glo",
    "encode_frame",
    "encrypt_glo",
    "jsonable",
]
