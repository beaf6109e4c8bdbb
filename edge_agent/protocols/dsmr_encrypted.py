"""Encrypted P1 (Luxembourg Smarty; DLMS security suite 0), sans-I/O.

Each telegram travels inside a general-glo-ciphering APDU (tag 0xDB): system title,
security control 0x30, frame counter, the telegram encrypted with AES-128-GCM and a 12-byte
tag over security control || AK (``protocols.dlms.security``). The decrypted telegram goes
through the plain DSMR parser, which checks its own CRC too: a telegram whose CRC does not
match is rejected (``checksum``) even though the GCM tag authenticated it, because the tag
proves who sent the bytes, not that the meter built the telegram right.

The parser keeps no replay state; ``EncryptedParser.frames`` gives each decrypted telegram's
system title and frame counter so that a live reader can apply a ``dlms.ReplayGuard``.
"""

from __future__ import annotations

from dataclasses import dataclass

from edge_agent.core.errors import FrameError, ProtocolError
from edge_agent.protocols import dsmr
from edge_agent.protocols.dlms.apdu import apdu_length
from edge_agent.protocols.dlms.axdr import Truncated
from edge_agent.protocols.dlms.security import GLO_CIPHERING, ciphered_header, decrypt_glo

MAX_FRAME = dsmr.DEFAULT_MAX_TELEGRAM + 64


@dataclass(frozen=True)
class Sealed:
    """Where a decrypted telegram came from (for the replay guard)."""

    system_title: bytes
    invocation_counter: int


class EncryptedParser:
    """Feed bytes of 0xDB frames, get Telegrams (decrypted and checked) or ProtocolErrors."""

    def __init__(self, key: bytes, auth_key: bytes | None) -> None:
        for k in (key, auth_key):
            if k is not None and len(k) != 16:
                raise ValueError("P1 keys are 16 bytes (AES-128)")
        self.key = key
        self.auth_key = auth_key
        self._buf = bytearray()
        self._base = 0
        self.sealed: dict[int, Sealed] = {}  # telegram offset -> its frame's title/counter

    def feed(self, data: bytes) -> list[dsmr.Telegram | ProtocolError]:
        self._buf += data
        out: list[dsmr.Telegram | ProtocolError] = []
        while self._buf and self._step(out):
            pass
        return out

    def flush(self) -> list[dsmr.Telegram | ProtocolError]:
        out: list[dsmr.Telegram | ProtocolError] = []
        if self._buf:
            out.append(FrameError(f"truncated encrypted frame ({len(self._buf)} bytes)",
                                  self._base))
            self._base += len(self._buf)
            self._buf.clear()
        return out

    def _step(self, out: list[dsmr.Telegram | ProtocolError]) -> bool:
        start = self._buf.find(bytes([GLO_CIPHERING]))
        if start != 0:
            n = len(self._buf) if start < 0 else start
            out.append(FrameError(f"{n} bytes outside encrypted frames", self._base))
            del self._buf[:n]
            self._base += n
            return start >= 0
        offset = self._base
        try:
            length = apdu_length(bytes(self._buf[:MAX_FRAME]), offset)
        except Truncated:
            if len(self._buf) < MAX_FRAME:
                return False
            out.append(FrameError("encrypted frame too long", offset))
            del self._buf[:1]
            self._base += 1
            return True
        except FrameError as exc:
            out.append(exc.with_traceback(None))
            del self._buf[:1]
            self._base += 1
            return True
        frame = bytes(self._buf[:length])
        del self._buf[:length]
        self._base += length
        try:
            plain, title = decrypt_glo(frame, offset, self.key, self.auth_key)
            counter = ciphered_header(frame, offset).invocation_counter
        except ProtocolError as exc:
            out.append(exc)
            return True
        inner = dsmr.Parser(require_crc=True)
        items = inner.feed(plain) + inner.flush()
        telegrams = [i for i in items if isinstance(i, dsmr.Telegram)]
        errors = [i for i in items if isinstance(i, ProtocolError)]
        if errors or len(telegrams) != 1:
            detail = str(errors[0]) if errors else f"{len(telegrams)} telegrams"
            kind = type(errors[0]) if errors else FrameError
            out.append(kind(f"decrypted P1 frame is not one good telegram: {detail}", offset))
            return True
        [t] = telegrams
        out.append(dsmr.Telegram(offset, t.header, t.crc, t.objects, t.timestamp,
                                 t.measurements))
        self.sealed[offset] = Sealed(title, counter)
        if len(self.sealed) > 64:  # a reader takes it right after feed(); keep it bounded
            del self.sealed[next(iter(self.sealed))]
        return True
