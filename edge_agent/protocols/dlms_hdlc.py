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
"""

from __future__ import annotations

import calendar
import dataclasses
import struct
from dataclasses import dataclass
from typing import Any, Literal

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from edge_agent.core.errors import ChecksumError, DecryptionError, FrameError, ProtocolError
from edge_agent.protocols.obis import Measurement, ObisCode, lookup

FLAG = 0x7E
LLC = bytes([0xE6, 0xE7, 0x00])
LLC_RESPONSE = bytes([0xE6, 0xE6, 0x00])
MAX_APDU = 64 * 1024  # joined segments
JUNK_REPORT = 256
TAG_LEN = 12
DATA_NOTIFICATION = 0x0F
GLO_CIPHERING = 0xDB
APDU_STARTS = frozenset({DATA_NOTIFICATION, GLO_CIPHERING, LLC[0]})
Framing = Literal["hdlc", "apdu", "auto"]

# DLMS unit enumeration (Blue Book) -> SenML unit
UNITS: dict[int, str | None] = {
    9: "Cel", 13: "m3", 14: "m3", 27: "W", 28: "VA", 29: "var", 30: "Wh", 31: "VAh",
    32: "varh", 33: "A", 35: "V", 44: "Hz", 255: None,
}

# Lists without scaler/unit: implied decimal scalers (list id -> {C.D.E: scaler}).
IMPLIED_SCALERS: dict[str, dict[tuple[int, int, int], int]] = {
    "Kamstrup_V0001": {
        (31, 7, 0): -2, (51, 7, 0): -2, (71, 7, 0): -2,  # 0.01 A
        (1, 8, 0): 1, (2, 8, 0): 1, (3, 8, 0): 1, (4, 8, 0): 1,  # 0.01 kWh = 10 Wh
    },
}


def crc16_x25(data: bytes) -> int:
    """CRC-16/X-25 (IBM-SDLC): poly 0x1021 reflected (0x8408), init/xorout 0xFFFF."""
    crc = 0xFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0x8408 if crc & 1 else crc >> 1
    return crc ^ 0xFFFF


# -- A-XDR data ---------------------------------------------------------------------------------

Data = None | bool | int | float | bytes | str | list["Data"]


class _Truncated(FrameError):
    """The APDU ends before its encoding does (a stream parser waits for more bytes)."""


class _Reader:
    def __init__(self, data: bytes, offset: int) -> None:
        self.data = data
        self.pos = 0
        self.offset = offset  # stream offset of the APDU, for errors

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > len(self.data):
            raise _Truncated("APDU ends inside a value", self.offset)
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def byte(self) -> int:
        return self.take(1)[0]

    def length(self) -> int:
        first = self.byte()
        if first < 0x80:
            return first
        n = first & 0x7F
        if not 1 <= n <= 3:
            raise FrameError(f"bad length encoding 0x{first:02X}", self.offset)
        return int.from_bytes(self.take(n), "big")


_FIXED = {3: ("?", 1), 5: (">i", 4), 6: (">I", 4), 15: (">b", 1), 16: (">h", 2),
          17: (">B", 1), 18: (">H", 2), 20: (">q", 8), 21: (">Q", 8), 22: (">B", 1),
          23: (">f", 4), 24: (">d", 8)}


def decode_data(r: _Reader, depth: int = 0) -> Data:
    """One A-XDR ``Data`` value."""
    if depth > 16:
        raise FrameError("data nested too deeply", r.offset)
    tag = r.byte()
    if tag == 0:
        return None
    if tag in (1, 2):  # array, structure
        count = r.length()
        if count > MAX_APDU:
            raise FrameError("impossible element count", r.offset)
        if count > r.remaining:  # every element takes at least one byte
            raise _Truncated("APDU ends inside an array/structure", r.offset)
        return [decode_data(r, depth + 1) for _ in range(count)]
    if tag in _FIXED:
        fmt, size = _FIXED[tag]
        value = struct.unpack(fmt, r.take(size))[0]
        return bool(value) if tag == 3 else value
    if tag == 4:  # bit-string
        bits = r.length()
        return r.take((bits + 7) // 8)
    if tag in (9, 13):  # octet-string, bcd (as raw)
        return r.take(r.length() if tag == 9 else 1)
    if tag in (10, 12):  # visible-string, utf8-string
        raw = r.take(r.length())
        try:
            return raw.decode("utf-8" if tag == 12 else "latin-1")
        except UnicodeDecodeError:
            raise FrameError("utf8-string is not valid UTF-8", r.offset) from None
    if tag == 25:
        return r.take(12)
    if tag == 26:
        return r.take(5)
    if tag == 27:
        return r.take(4)
    raise FrameError(f"unsupported data tag {tag}", r.offset)


def cosem_datetime(raw: bytes) -> tuple[str, float | None] | None:
    """A 12-byte COSEM date-time: (local ISO text, epoch or None if no deviation given)."""
    if len(raw) != 12:
        return None
    year, month, day, _dow, hour, minute, second, _hs, deviation, _status = \
        struct.unpack(">HBBBBBBBhB", raw)
    if year == 0xFFFF or not (1 <= month <= 12 and 1 <= day <= 31 and hour < 24
                              and minute < 60 and second < 60):
        return None
    text = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute:02d}:{second:02d}"
    if deviation == -0x8000 or not -720 <= deviation <= 720:
        return text, None
    # Blue Book: deviation = minutes of local time to UTC (UTC = local + deviation)
    try:
        local = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0))
    except (ValueError, OverflowError):
        return None
    return text, float(local + 60 * deviation)


def jsonable(value: Data) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, list):
        return [jsonable(v) for v in value]
    if isinstance(value, float) and value != value:  # NaN
        return None
    return value


# -- frames ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Notification:
    """A decoded DataNotification (after joining segments and decrypting)."""

    offset: int
    invoke_id: int
    time_text: str | None  # the notification's date-time, meter-local
    timestamp: float | None  # epoch, when the meter states its UTC deviation
    body: Data
    objects: tuple[tuple[str, Data], ...]  # (OBIS, raw value) pairs found in the body
    measurements: tuple[Measurement, ...]
    list_id: str | None = None
    encrypted: bool = False
    system_title: bytes | None = None
    invocation_counter: int | None = None  # of the general-glo-ciphering APDU

    def select(self, obis: frozenset[str] | None) -> list[Measurement]:
        if not obis:
            return list(self.measurements)
        return [m for m in self.measurements if m.obis in obis]

    def to_json(self) -> dict[str, Any]:
        return {
            "type": "dlms-data-notification", "offset": self.offset,
            "invoke_id": self.invoke_id, "time": self.time_text, "timestamp": self.timestamp,
            "list_id": self.list_id, "encrypted": self.encrypted,
            "system_title": None if self.system_title is None else self.system_title.hex(),
            "invocation_counter": self.invocation_counter,
            "objects": [{"obis": o, "value": jsonable(v)} for o, v in self.objects],
            "measurements": [m.to_json() for m in self.measurements],
            "body": jsonable(self.body),
        }


@dataclass(frozen=True)
class HdlcFrame:
    """An HDLC frame whose information field is not a (complete) notification."""

    offset: int
    dst: int
    src: int
    control: int
    info: bytes

    def to_json(self) -> dict[str, Any]:
        return {"type": "hdlc-frame", "offset": self.offset, "dst": self.dst, "src": self.src,
                "control": self.control, "info": self.info.hex()}


@dataclass(frozen=True)
class CipheredApdu:
    """A general-glo-ciphering APDU left encrypted: no key was given to decrypt it."""

    offset: int
    system_title: bytes
    security_control: int
    invocation_counter: int
    payload_len: int

    def to_json(self) -> dict[str, Any]:
        return {"type": "dlms-ciphered-apdu", "offset": self.offset, "encrypted": True,
                "decrypted": False, "reason": "no key given",
                "system_title": self.system_title.hex(),
                "security_control": self.security_control,
                "invocation_counter": self.invocation_counter,
                "payload_len": self.payload_len}


Frame = Notification | CipheredApdu | HdlcFrame


class ReplayError(ProtocolError):
    """An authentic encrypted push whose invocation counter was already used (a replay)."""

    reason = "replay"


class ReplayGuard:
    """The highest invocation counter accepted per system title.

    ``check`` passes an unencrypted Notification through, accepts an encrypted one whose
    counter is above the last accepted for its system title (and remembers it), and
    rejects any other as a ReplayError. Feed it only authentic (decrypted) pushes.
    ``to_json``/``from_json`` carry its state across restarts (the caller does the I/O).
    """

    def __init__(self) -> None:
        self._last: dict[bytes, int] = {}

    def to_json(self) -> dict[str, int]:
        """The state to persist: ``{system_title_hex: counter}``."""
        return {title.hex(): counter for title, counter in sorted(self._last.items())}

    @classmethod
    def from_json(cls, doc: object) -> ReplayGuard:
        """A guard from ``to_json`` output; ValueError if ``doc`` is not that shape."""
        if not isinstance(doc, dict):
            raise ValueError("replay state is not a JSON object")
        guard = cls()
        for key, counter in doc.items():
            try:
                title = bytes.fromhex(key) if isinstance(key, str) else b""
            except ValueError:
                title = b""
            if (not title or isinstance(counter, bool) or not isinstance(counter, int)
                    or not 0 <= counter < 2 ** 32):
                raise ValueError(f"bad replay state entry {key!r}: {counter!r}")
            guard._last[title] = counter
        return guard

    def last(self, system_title: bytes) -> int | None:
        """The highest counter accepted from ``system_title``, None before its first push."""
        return self._last.get(system_title)

    def check(self, note: Notification) -> ReplayError | None:
        """None if ``note`` is fresh (or unencrypted), else the ReplayError to count."""
        title, counter = note.system_title, note.invocation_counter
        if not note.encrypted or title is None or counter is None:
            return None
        last = self._last.get(title)
        if last is not None and counter <= last:
            return ReplayError(
                f"replayed push from system title {title.hex()}: invocation counter "
                f"{counter} not above {last}", note.offset)
        self._last[title] = counter
        return None


def _address(buf: bytes, pos: int, end: int) -> tuple[int, int] | None:
    """An HDLC address (1, 2 or 4 bytes, last byte LSB = 1): (value, next position)."""
    value = 0
    for i in range(4):
        if pos + i >= end:
            return None
        byte = buf[pos + i]
        value = (value << 7) | (byte >> 1)
        if byte & 1:
            return (value, pos + i + 1) if i in (0, 1, 3) else None
    return None


class Parser:
    """Feed HAN-port bytes, get Notifications (and other HDLC frames) and ProtocolErrors.

    ``key`` (16-byte EK) and ``auth_key`` (16-byte AK) decrypt general-glo-ciphering APDUs.
    ``framing`` says what wraps the APDUs (see the module docstring).
    """

    def __init__(self, key: bytes | None = None, auth_key: bytes | None = None, *,
                 framing: Framing = "hdlc") -> None:
        for k in (key, auth_key):
            if k is not None and len(k) != 16:
                raise ValueError("DLMS keys are 16 bytes (AES-128)")
        if framing not in ("hdlc", "apdu", "auto"):
            raise ValueError(f"unknown DLMS framing {framing!r}")
        self.key = key
        self.auth_key = auth_key
        self.framing: Framing = framing
        self._buf = bytearray()
        self._base = 0
        self._segments = bytearray()
        self._seg_offset: int | None = None
        self._junk_start: int | None = None
        self._junk_len = 0
        self._failed_start_end = -1  # stream offset just after the last rejected APDU start

    def feed(self, data: bytes) -> list[Frame | ProtocolError]:
        self._buf += data
        out: list[Frame | ProtocolError] = []
        if self.framing == "auto" and self._buf:
            first = self._buf[0]
            self.framing = "apdu" if first != FLAG and first in APDU_STARTS else "hdlc"
        step = self._apdu_step if self.framing == "apdu" else self._step
        while self._buf and step(out):
            pass
        return out

    def flush(self) -> list[Frame | ProtocolError]:
        out: list[Frame | ProtocolError] = []
        rest = bytes(self._buf).strip(bytes([FLAG]))
        if rest:
            self._end_junk(out)
            what = "APDU" if self.framing == "apdu" else "frame"
            out.append(FrameError(f"truncated {what} ({len(self._buf)} bytes)", self._base))
        self._base += len(self._buf)
        self._buf.clear()
        self._end_junk(out)
        if self._seg_offset is not None:
            out.append(FrameError("segmented APDU without its last segment", self._seg_offset))
            self._segments.clear()
            self._seg_offset = None
        return out

    # -- framing ---------------------------------------------------------------------------

    def _drop(self, n: int) -> None:
        del self._buf[:n]
        self._base += n

    def _end_junk(self, out: list[Frame | ProtocolError]) -> None:
        if self._junk_start is not None:
            where = "APDUs" if self.framing == "apdu" else "HDLC frames"
            out.append(FrameError(f"{self._junk_len} bytes outside {where}",
                                  self._junk_start))
            self._junk_start = None

    def _junk(self, out: list[Frame | ProtocolError]) -> bool:
        if self._junk_start is None:
            self._junk_start = self._base
        self._junk_len = self._base + 1 - self._junk_start
        self._drop(1)
        if self._junk_len >= JUNK_REPORT:
            self._end_junk(out)
        return True

    def _step(self, out: list[Frame | ProtocolError]) -> bool:
        buf = self._buf
        if buf[0] != FLAG:
            return self._junk(out)
        if len(buf) < 3:
            return False
        if buf[1] == FLAG:  # back-to-back flags (closing + opening)
            self._drop(1)
            return True
        if buf[1] & 0xF0 != 0xA0:
            return self._junk(out)
        length = ((buf[1] & 0x07) << 8) | buf[2]
        if length < 7:
            return self._junk(out)
        if len(buf) < length + 2:
            return False
        if buf[length + 1] != FLAG:
            return self._junk(out)
        frame = bytes(buf[1:length + 1])
        offset = self._base
        if crc16_x25(frame[:-2]) != int.from_bytes(frame[-2:], "little"):
            self._end_junk(out)
            out.append(ChecksumError("HDLC FCS mismatch", offset))
            self._drop(length + 1)  # keep the closing flag: it may open the next frame
            return True
        self._end_junk(out)
        self._drop(length + 1)
        item = self._frame(offset, frame)
        if item is not None:
            out.append(item)
        return True

    def _frame(self, offset: int, frame: bytes) -> Frame | ProtocolError | None:
        end = len(frame) - 2
        dst = _address(frame, 2, end)
        src = _address(frame, dst[1], end) if dst else None
        if dst is None or src is None or src[1] >= end:
            return FrameError("bad HDLC address field", offset)
        control = frame[src[1]]
        header_end = src[1] + 1
        info = b""
        if header_end < end:
            if header_end + 2 > end or crc16_x25(frame[:header_end]) != \
                    int.from_bytes(frame[header_end:header_end + 2], "little"):
                return ChecksumError("HDLC HCS mismatch", offset)
            info = frame[header_end + 2:end]
        segmented = bool(frame[0] & 0x08)
        if segmented or self._seg_offset is not None:
            if self._seg_offset is None:
                self._seg_offset = offset
            self._segments += info
            if len(self._segments) > MAX_APDU:
                self._segments.clear()
                self._seg_offset = None
                return FrameError("segmented APDU too long", offset)
            if segmented:
                return None
            info, offset = bytes(self._segments), self._seg_offset
            self._segments.clear()
            self._seg_offset = None
        if info[:3] in (LLC, LLC_RESPONSE) and len(info) > 3:
            return decode_apdu(info[3:], offset, self.key, self.auth_key)
        return HdlcFrame(offset, dst[0], src[0], control, info)

    # -- bare APDUs --------------------------------------------------------------------------

    def _apdu_step(self, out: list[Frame | ProtocolError]) -> bool:
        buf = self._buf
        if buf[0] not in APDU_STARTS:
            return self._junk(out)
        offset = self._base
        error: FrameError | None = None
        length = 1  # on an error, skip the start byte: what follows is junk until an APDU
        try:
            length = apdu_length(bytes(buf[:MAX_APDU + 3]), offset)
        except _Truncated:
            if len(buf) <= MAX_APDU + 3:
                return False  # wait for the rest
            error = FrameError(f"APDU longer than {MAX_APDU} bytes", offset)
        except FrameError as exc:
            if buf[0] == LLC[0] and bytes(buf[:3]) not in (LLC, LLC_RESPONSE):
                return self._junk(out)  # an 0xE6 that opens no LLC header is junk
            error = exc.with_traceback(None)  # its frames hold a copy of the buffer
        if error is not None and (self._junk_start is not None
                                  or self._base == self._failed_start_end):
            # Another start byte that opens no APDU, in a run of junk or right after one:
            # part of the run (a flood of 0xDB is one error and junk runs, not one per byte).
            self._failed_start_end = self._base + 1
            return self._junk(out)
        if error is not None:
            self._failed_start_end = self._base + length
        self._end_junk(out)
        apdu = bytes(buf[:length])
        self._drop(length)
        if error is not None:
            out.append(error)
            return True
        if apdu[:3] in (LLC, LLC_RESPONSE):
            apdu = apdu[3:]
        out.append(decode_apdu(apdu, offset, self.key, self.auth_key))
        return True


# -- APDUs ----------------------------------------------------------------------------------


def apdu_length(data: bytes, offset: int = 0) -> int:
    """The length of the APDU (or LLC header + APDU) at the start of ``data``.

    Raises ``_Truncated`` (a FrameError) when ``data`` ends before the APDU does, FrameError
    when the bytes cannot start a DataNotification or general-glo-ciphering APDU.
    """
    skip = 0
    if data[:1] == LLC[:1]:
        if len(data) < 3:
            raise _Truncated("APDU ends inside the LLC header", offset)
        if data[:3] not in (LLC, LLC_RESPONSE):
            raise FrameError("bad LLC header", offset)
        skip = 3
    r = _Reader(data[skip:], offset)
    tag = r.byte()
    if tag == GLO_CIPHERING:
        r.take(r.length())  # system title
        r.take(r.length())  # security control, invocation counter, payload (+ tag)
    elif tag == DATA_NOTIFICATION:
        _notification_fields(r)
    else:
        raise FrameError(f"not a DataNotification or ciphered APDU (tag 0x{tag:02X})", offset)
    return skip + r.pos


def decode_apdu(apdu: bytes, offset: int = 0, key: bytes | None = None,
                auth_key: bytes | None = None) -> Notification | CipheredApdu | ProtocolError:
    """A DataNotification APDU, plain or general-glo-ciphered. Never raises ProtocolError.

    A ciphered APDU with no ``key`` is a CipheredApdu (not decrypted, not an error).
    """
    try:
        if apdu[:1] == bytes([GLO_CIPHERING]):
            if key is None:
                return ciphered_header(apdu, offset)
            plain, title = decrypt_glo(apdu, offset, key, auth_key)
            note = _notification(plain, offset)
            counter = ciphered_header(apdu, offset).invocation_counter
            return dataclasses.replace(note, encrypted=True, system_title=title,
                                       invocation_counter=counter)
        return _notification(apdu, offset)
    except ProtocolError as exc:
        return exc


def _glo_parts(apdu: bytes, offset: int) -> tuple[bytes, int, bytes, bytes]:
    """general-glo-ciphering -> (system title, security control, counter, payload)."""
    r = _Reader(apdu, offset)
    r.byte()  # 0xDB
    title = r.take(r.length())
    body = r.take(r.length())
    if len(title) != 8 or len(body) < 5:
        raise FrameError("bad general-glo-ciphering header", offset)
    if r.pos != len(apdu):
        raise FrameError(f"{len(apdu) - r.pos} bytes after the ciphered APDU", offset)
    return title, body[0], body[1:5], body[5:]


def ciphered_header(apdu: bytes, offset: int = 0) -> CipheredApdu:
    """What a general-glo-ciphering APDU shows in clear. Raises FrameError."""
    title, sc, counter, payload = _glo_parts(apdu, offset)
    return CipheredApdu(offset, title, sc, int.from_bytes(counter, "big"), len(payload))


def decrypt_glo(apdu: bytes, offset: int, key: bytes | None,
                auth_key: bytes | None) -> tuple[bytes, bytes]:
    """general-glo-ciphering -> (plaintext APDU, system title). Raises DecryptionError."""
    title, sc, counter, payload = _glo_parts(apdu, offset)
    if key is None:
        raise DecryptionError("encrypted APDU and no key configured", offset)
    iv = title + counter
    authenticated, encrypted = bool(sc & 0x10), bool(sc & 0x20)
    if sc & 0x80:
        raise DecryptionError("compressed APDUs are not supported", offset)
    if authenticated and auth_key is None:
        raise DecryptionError("authenticated APDU and no authentication key", offset)
    aad = bytes([sc]) + (auth_key or b"")
    try:
        if authenticated and encrypted:
            return _gcm_open(key, iv, payload[:-TAG_LEN], payload[-TAG_LEN:], aad), title
        if encrypted:  # GCM without a tag is CTR from counter block 2
            ctr = Cipher(algorithms.AES(key), modes.CTR(iv + b"\x00\x00\x00\x02")).decryptor()
            return ctr.update(payload) + ctr.finalize(), title
        if authenticated:
            plain, tag = payload[:-TAG_LEN], payload[-TAG_LEN:]
            _gcm_open(key, iv, b"", tag, aad + plain)
            return plain, title
    except InvalidTag:
        raise DecryptionError("authentication tag mismatch (wrong key?)", offset) from None
    except ValueError as exc:
        raise DecryptionError(f"cannot decrypt: {exc}", offset) from None
    return payload, title  # security control without protection


def _gcm_open(key: bytes, iv: bytes, ciphertext: bytes, tag: bytes, aad: bytes) -> bytes:
    """AES-GCM decryption with DLMS's 12-byte tag. Raises InvalidTag/ValueError."""
    if len(tag) != TAG_LEN:
        raise ValueError("APDU too short for its tag")
    dec = Cipher(algorithms.AES(key), modes.GCM(iv, tag, min_tag_length=TAG_LEN)).decryptor()
    dec.authenticate_additional_data(aad)
    return dec.update(ciphertext) + dec.finalize()


def encrypt_glo(plain: bytes, key: bytes, auth_key: bytes, system_title: bytes,
                counter: int, sc: int = 0x30) -> bytes:
    """The general-glo-ciphering APDU for ``plain`` (emulators, tests).

    ``sc`` 0x30 = authenticated and encrypted, 0x20 = encrypted only (no tag).
    """
    iv = system_title + counter.to_bytes(4, "big")
    enc = Cipher(algorithms.AES(key), modes.GCM(iv)).encryptor()
    enc.authenticate_additional_data(bytes([sc]) + auth_key)
    payload = enc.update(plain) + enc.finalize()
    if sc & 0x10:  # authenticated: append the 12-byte tag
        payload += enc.tag[:TAG_LEN]
    body = bytes([sc]) + counter.to_bytes(4, "big") + payload
    return bytes([0xDB, 8]) + system_title + _ber_length(len(body)) + body


def _ber_length(n: int) -> bytes:
    if n < 0x80:
        return bytes([n])
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes([0x80 | len(raw)]) + raw


def _notification_fields(r: _Reader) -> tuple[int, bytes, Data]:
    """(invoke id, raw date-time, body) of a DataNotification whose tag was read."""
    invoke_id = int.from_bytes(r.take(4), "big")
    first = r.byte()
    if first == 0x09:  # date-time written as a tagged octet-string
        first = r.byte()
    raw_time = r.take(first)
    return invoke_id, raw_time, decode_data(r)


def _notification(apdu: bytes, offset: int) -> Notification:
    r = _Reader(apdu, offset)
    if not apdu or r.byte() != DATA_NOTIFICATION:
        tag = f"0x{apdu[0]:02X}" if apdu else "none"
        raise FrameError(f"not a DataNotification (APDU tag {tag})", offset)
    invoke_id, raw_time, body = _notification_fields(r)
    if r.pos != len(apdu):
        raise FrameError(f"{len(apdu) - r.pos} bytes after the notification body", offset)
    when = cosem_datetime(raw_time) if raw_time else None
    list_id, objects, scalers = _layout(body)
    if when is None:  # Aidon and others send the clock (0-0:1.0.0) as a list element
        clock = next((v for c, v in objects if (c.a, c.b, c.c, c.d, c.e) == (0, 0, 1, 0, 0)
                      and isinstance(v, bytes)), None)
        when = cosem_datetime(clock) if clock else None
    measurements = tuple(_measurements(objects, scalers, list_id))
    return Notification(offset, invoke_id, when[0] if when else None,
                        when[1] if when else None, body,
                        tuple((str(code), value) for code, value in objects),
                        measurements, list_id)


def _obis(value: Data) -> ObisCode | None:
    return ObisCode.from_bytes(value) if isinstance(value, bytes) else None


def _layout(body: Data) -> tuple[str | None, list[tuple[ObisCode, Data]],
                                 dict[ObisCode, tuple[int, int]]]:
    """(list id, [(OBIS, value)], {OBIS: (scaler, unit)}) for the known push layouts."""
    objects: list[tuple[ObisCode, Data]] = []
    scalers: dict[ObisCode, tuple[int, int]] = {}
    list_id: str | None = None
    if not isinstance(body, list):
        return None, objects, scalers
    # Aidon style: [(OBIS, value[, (scaler, unit)]), ...]
    if body and all(isinstance(e, list) and len(e) in (2, 3) and _obis(e[0]) for e in body):
        for element in body:
            assert isinstance(element, list)
            code = _obis(element[0])
            assert code is not None
            objects.append((code, element[1]))
            su = element[2] if len(element) == 3 else None
            if isinstance(su, list) and len(su) == 2 and all(isinstance(x, int) for x in su):
                scaler, unit = su
                assert isinstance(scaler, int) and isinstance(unit, int)
                scalers[code] = (scaler, unit)
        return list_id, objects, scalers
    # Kamstrup style: [list id,] OBIS, value, OBIS, value, ...
    items = list(body)
    if items and isinstance(items[0], str):
        list_id = items[0]
        items = items[1:]
    i = 0
    while i + 1 < len(items):
        code = _obis(items[i])
        if code is None:
            i += 1
            continue
        objects.append((code, items[i + 1]))
        i += 2
    return list_id, objects, scalers


def _measurements(objects: list[tuple[ObisCode, Data]],
                  scalers: dict[ObisCode, tuple[int, int]],
                  list_id: str | None) -> list[Measurement]:
    out: list[Measurement] = []
    implied = IMPLIED_SCALERS.get(list_id or "", {})
    for code, value in objects:
        q = lookup(code)
        if q is None:
            continue
        if q.kind in ("text", "hextext"):
            if isinstance(value, bytes):
                try:
                    text = value.decode("ascii")
                except UnicodeDecodeError:
                    continue
                if text.isprintable() and text:
                    out.append(Measurement(str(code), q.name, text, None))
            elif isinstance(value, str) and value:
                out.append(Measurement(str(code), q.name, value, None))
            continue
        if isinstance(value, bool) or not isinstance(value, int | float):
            continue
        if code in scalers:
            scaler, unit_code = scalers[code]
            unit = UNITS.get(unit_code, f"unit{unit_code}")
            if unit != q.unit and not (q.unit == "/" and unit is None) \
                    and not (q.kind == "count" and unit is None):
                continue  # the meter states another unit than the code implies
        else:
            scaler = implied.get((code.c, code.d, code.e), 0)
        if q.kind == "count":
            out.append(Measurement(str(code), q.name, int(value), q.unit))
            continue
        scaled = float(value) * 10.0 ** scaler if scaler else float(value)
        out.append(Measurement(str(code), q.name, round(scaled, 6), q.unit))
    return out


def encode_frame(info: bytes, *, dst: int = 0x10, src: int = 0x41, control: int = 0x13,
                 segmented: bool = False) -> bytes:
    """An HDLC type-3 frame around ``info`` (1-byte addresses; emulators, tests)."""
    header_len = 2 + 1 + 1 + 1  # format, dst, src, control
    length = header_len + 2 + len(info) + 2 if info else header_len + 2
    if length > 0x7FF:
        raise ValueError("HDLC frame too long: segment the APDU")
    fmt = 0xA000 | (0x0800 if segmented else 0) | length
    header = fmt.to_bytes(2, "big") + bytes([(dst << 1) | 1, (src << 1) | 1, control])
    body = header + crc16_x25(header).to_bytes(2, "little") + info if info else header
    return bytes([FLAG]) + body + crc16_x25(body).to_bytes(2, "little") + bytes([FLAG])
