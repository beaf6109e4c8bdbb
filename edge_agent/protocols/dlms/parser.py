"""The DLMS push stream parser: bytes in, Notifications / CipheredApdus / errors out.

``Parser(framing=...)``: ``"hdlc"`` (default: a live HAN port), ``"apdu"`` (a stream of bare
APDUs, each ``0F``/``DB``, optionally behind the LLC header, delimited by its own encoding) or
``"auto"`` (captures: HDLC if the first byte is the 0x7E flag, else bare APDUs if it starts
one). A live port can start mid-frame, so only captures use ``"auto"``. The parser keeps no
replay state (security.ReplayGuard does, for a live reader).

General block transfer (APDU 0xE0, L+G E450/E570): each HDLC frame carries one block
(block control with the last-block bit 0x80, block number, acknowledged block number, raw
data); blocks numbered from 1 are joined and the whole is decoded as one APDU (plain or
ciphered). A block out of sequence drops the transfer (``frame``).

``model`` names the meter model (``cosem.METER_MODELS``) whose scalers apply to values the
push sends without scaler-unit (Swiss VSE push lists).
"""

from __future__ import annotations

from typing import Literal

from edge_agent.core.errors import ChecksumError, FrameError, ProtocolError
from edge_agent.protocols.dlms.apdu import APDU_STARTS, apdu_length, decode_apdu
from edge_agent.protocols.dlms.axdr import MAX_APDU, Reader, Truncated
from edge_agent.protocols.dlms.cosem import METER_MODELS, Notification
from edge_agent.protocols.dlms.hdlc import (
    FLAG,
    LLC,
    LLC_RESPONSE,
    HdlcFrame,
    crc16_x25,
    hdlc_address,
)
from edge_agent.protocols.dlms.security import CipheredApdu

JUNK_REPORT = 256
GENERAL_BLOCK_TRANSFER = 0xE0
Framing = Literal["hdlc", "apdu", "mbus", "auto"]
MBUS_START, MBUS_STOP = 0x68, 0x16


Frame = Notification | CipheredApdu | HdlcFrame


class Parser:
    """Feed HAN-port bytes, get Notifications (and other HDLC frames) and ProtocolErrors.

    ``key`` (16-byte EK) and ``auth_key`` (16-byte AK) decrypt general-glo-ciphering APDUs.
    ``framing`` says what wraps the APDUs (see the module docstring).
    """

    def __init__(self, key: bytes | None = None, auth_key: bytes | None = None, *,
                 framing: Framing = "hdlc", model: str | None = None) -> None:
        for k in (key, auth_key):
            if k is not None and len(k) != 16:
                raise ValueError("DLMS keys are 16 bytes (AES-128)")
        if framing not in ("hdlc", "apdu", "mbus", "auto"):
            raise ValueError(f"unknown DLMS framing {framing!r}")
        if model is not None and model not in METER_MODELS:
            raise ValueError(f"unknown meter model {model!r}; known: "
                             f"{', '.join(sorted(METER_MODELS))}")
        self.model = model
        self._mbus_next = 0
        self._blocks = bytearray()
        self._block_number = 0
        self._block_offset: int | None = None
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
            self.framing = ("mbus" if first == MBUS_START else
                            "apdu" if first != FLAG and first in APDU_STARTS else "hdlc")
        step = (self._apdu_step if self.framing == "apdu" else
                self._mbus_step if self.framing == "mbus" else self._step)
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
        if self._block_offset is not None:
            out.append(FrameError("block transfer without its last block", self._block_offset))
            self._end_blocks()
        return out

    # -- framing ---------------------------------------------------------------------------

    def _drop(self, n: int) -> None:
        del self._buf[:n]
        self._base += n

    def _end_junk(self, out: list[Frame | ProtocolError]) -> None:
        if self._junk_start is not None:
            where = {"apdu": "APDUs", "mbus": "M-Bus frames"}.get(self.framing, "HDLC frames")
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
        dst = hdlc_address(frame, 2, end)
        src = hdlc_address(frame, dst[1], end) if dst else None
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
        body = info[3:] if info[:3] in (LLC, LLC_RESPONSE) else info
        if body[:1] == bytes([GENERAL_BLOCK_TRANSFER]):
            return self._block(offset, body)
        if info[:3] in (LLC, LLC_RESPONSE) and len(info) > 3:
            return decode_apdu(info[3:], offset, self.key, self.auth_key, self.model)
        return HdlcFrame(offset, dst[0], src[0], control, info)

    # -- M-Bus long frames (Austrian HAN ports: Kaifa MA309, Sagemcom T210) --------------------

    def _mbus_step(self, out: list[Frame | ProtocolError]) -> bool:
        """``68 L L 68 C A CI STSAP DTSAP data CS 16``: CI low nibble = segment number,
        0x10 = last segment; the segments' data joined is one APDU."""
        buf = self._buf
        if buf[0] != MBUS_START:
            return self._junk(out)
        if len(buf) < 4:
            return False
        length = buf[1]
        if buf[2] != length or buf[3] != MBUS_START or length < 5:
            return self._junk(out)
        if len(buf) < length + 6:
            return False
        if buf[length + 5] != MBUS_STOP:
            return self._junk(out)
        offset = self._base
        user = bytes(buf[4:4 + length])
        checksum = buf[4 + length]
        self._end_junk(out)
        self._drop(length + 6)
        if sum(user) & 0xFF != checksum:
            out.append(ChecksumError("M-Bus checksum mismatch", offset))
            self._segments.clear()
            self._seg_offset = None
            return True
        ci, data = user[2], user[5:]
        number, last = ci & 0x0F, bool(ci & 0x10)
        expected = 0 if self._seg_offset is None else self._mbus_next
        if number != expected:
            self._segments.clear()
            self._seg_offset = None
            if number != 0:
                out.append(FrameError(f"M-Bus segment {number} out of sequence "
                                      f"(expected {expected})", offset))
                return True
        if self._seg_offset is None:
            self._seg_offset = offset
        self._segments += data
        self._mbus_next = number + 1
        if len(self._segments) > MAX_APDU:
            self._segments.clear()
            self._seg_offset = None
            out.append(FrameError("segmented APDU too long", offset))
            return True
        if not last:
            return True
        apdu, start = bytes(self._segments), self._seg_offset
        self._segments.clear()
        self._seg_offset = None
        out.append(decode_apdu(apdu, start, self.key, self.auth_key, self.model))
        return True

    # -- general block transfer ---------------------------------------------------------------

    def _end_blocks(self) -> None:
        self._blocks.clear()
        self._block_number = 0
        self._block_offset = None

    def _block(self, offset: int, body: bytes) -> Frame | ProtocolError | None:
        """One general-block-transfer block; the decoded APDU after the last one."""
        r = Reader(body, offset)
        try:
            r.byte()  # 0xE0
            control = r.byte()
            number = int.from_bytes(r.take(2), "big")
            r.take(2)  # block number acknowledged
            data = r.take(r.length())
        except FrameError:
            self._end_blocks()
            return FrameError("malformed general-block-transfer block", offset)
        if r.remaining:
            self._end_blocks()
            return FrameError(f"{r.remaining} bytes after a block's data", offset)
        if number == 1:
            restarted = self._block_offset is not None
            self._end_blocks()
            if restarted:
                self._block_offset = offset
                self._blocks += data
                self._block_number = 1
                return FrameError("block transfer restarted before its last block", offset)
            self._block_offset = offset
        elif self._block_offset is None or number != self._block_number + 1:
            expected = self._block_number + 1 if self._block_offset is not None else 1
            self._end_blocks()
            return FrameError(f"block {number} out of sequence (expected {expected})", offset)
        self._blocks += data
        self._block_number = number
        if len(self._blocks) > MAX_APDU:
            self._end_blocks()
            return FrameError("block transfer longer than an APDU may be", offset)
        if not control & 0x80:
            return None
        apdu, start = bytes(self._blocks), self._block_offset
        self._end_blocks()
        assert start is not None
        return decode_apdu(apdu, start, self.key, self.auth_key, self.model)

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
        except Truncated:
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
        out.append(decode_apdu(apdu, offset, self.key, self.auth_key, self.model))
        return True


