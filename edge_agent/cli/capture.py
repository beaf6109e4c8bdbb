"""Capture files for ``edge-agent decode``: raw bytes or hex text, read in chunks.

Rule: leading lines starting with ``#`` are a header and are dropped. What is left is hex
text if, with ``#`` comments (to the end of a line), whitespace, ``:``/``-``/``,``
separators and ``0x`` prefixes removed, it is a non-empty, even-length run of hex digits;
then those digits are the capture. Otherwise it is raw bytes, kept exactly. (A raw capture
that happens to consist only of hex digits is therefore read as hex.)

The file is read twice, in chunks, with memory bounded by the chunk size: once to tell hex
text from raw bytes (stopping at the first byte that cannot be hex text, which for a raw
capture is nearly always within the first bytes), once to yield the capture. Input that
cannot be read twice (a pipe) is classified by its first ``PEEK`` bytes; if hex text
turns out not to be hex text further on, ``CaptureError`` says where.
"""

from __future__ import annotations

import io
import itertools
import re
from collections.abc import Iterable, Iterator
from typing import BinaryIO

from edge_agent.core.errors import EdgeAgentError

CHUNK = 64 * 1024
PEEK = 1024 * 1024

_PIECE = re.compile(rb"(#)|([\s:,\-]+)|([^\s:,\-#]+)")
_HEX = re.compile(rb"[0-9A-Fa-f]*")
_EOL = re.compile(rb"[\r\n]")


class CaptureError(EdgeAgentError, ValueError):
    """A capture read as hex text holds something that is not (only for unseekable input)."""


class HexText:
    """Incremental hex-text decoder: ``feed`` returns the bytes of the digits seen so far,
    ``ValueError`` at the first piece that is not hex text; ``finish`` checks the end."""

    def __init__(self) -> None:
        self._carry = b""  # a token of fewer than 2 bytes at a chunk's end (maybe "0x")
        self._in_comment = False
        self._cont = False  # the previous chunk ended inside a token (its 0x is done)
        self._nibble = b""
        self.digits = 0

    def feed(self, chunk: bytes) -> bytes:
        data = self._carry + chunk
        self._carry = b""
        parts: list[bytes] = []
        i, n = 0, len(data)
        while i < n:
            if self._in_comment:
                m = _EOL.search(data, i)
                if m is None:
                    break
                self._in_comment = False
                i = m.end()
                continue
            piece = _PIECE.match(data, i)
            assert piece is not None  # the three alternatives cover every byte
            i = piece.end()
            if piece.group(1):
                self._in_comment = True
                self._cont = False
            elif piece.group(2):
                self._cont = False
            else:
                token = piece.group(3)
                if i == n and len(token) < 2 and not self._cont:
                    self._carry = token  # "0" may be the start of "0x"
                    break
                if not self._cont and token[:2] in (b"0x", b"0X"):
                    token = token[2:]
                if not _HEX.fullmatch(token):
                    raise ValueError("not hex text")
                parts.append(token)
                self._cont = i == n
        new = b"".join(parts)
        self.digits += len(new)
        digits = self._nibble + new
        even = len(digits) & ~1
        self._nibble = digits[even:]
        return bytes.fromhex(digits[:even].decode("ascii"))

    def finish(self) -> bytes:
        """The end of the text: what was carried, and the checks on the whole."""
        tail = b""
        if self._carry:
            carry, self._carry, self._cont = self._carry, b"", False
            tail = self.feed(carry + b" ")
        if self._nibble or not self.digits:
            raise ValueError("odd number of hex digits" if self._nibble else "no hex digits")
        return tail


def _chunks(f: BinaryIO, size: int = CHUNK) -> Iterator[bytes]:
    while chunk := f.read(size):
        yield chunk


def _is_hex(chunks: Iterable[bytes]) -> bool:
    text = HexText()
    try:
        for chunk in chunks:
            text.feed(chunk)
        text.finish()
    except ValueError:
        return False
    return True


def _without_header(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """Drop the leading lines that start with ``#``; the rest is passed on exactly."""
    it = iter(chunks)
    at_line_start, in_header_line = True, False
    for chunk in it:
        i, n = 0, len(chunk)
        while i < n:
            if in_header_line:
                j = chunk.find(b"\n", i)
                if j < 0:
                    i = n
                    break
                i, in_header_line, at_line_start = j + 1, False, True
            elif at_line_start and chunk[i] == ord("#"):
                in_header_line = True
            else:
                break
        if i < n:
            yield chunk[i:]
            yield from it
            return


def _hex_bytes(chunks: Iterable[bytes], checked: bool) -> Iterator[bytes]:
    text = HexText()
    read = 0
    for chunk in chunks:
        try:
            data = text.feed(chunk)
        except ValueError:
            if checked:
                raise
            raise CaptureError(f"read as hex text from its start, but the bytes from offset "
                               f"{read} on are not hex text") from None
        read += len(chunk)
        if data:
            yield data
    try:
        tail = text.finish()
    except ValueError as exc:
        if checked:
            raise
        raise CaptureError(f"read as hex text, but it ends badly: {exc}") from None
    if tail:
        yield tail


def iter_capture(f: BinaryIO, chunk: int = CHUNK) -> Iterator[bytes]:
    """The bytes of the capture in ``f`` (raw or hex text), in chunks of bounded size."""
    if f.seekable():
        start = f.tell()
        is_hex = _is_hex(_chunks(f, chunk))
        f.seek(start)
        source: Iterable[bytes] = _chunks(f, chunk)
    else:
        head = f.read(PEEK)
        more = f.read(chunk)
        if more:  # longer than the peek: decided on the first PEEK bytes
            text = HexText()
            try:
                text.feed(head)
                is_hex = True
            except ValueError:
                is_hex = False
        else:
            is_hex = _is_hex([head])
        source = itertools.chain([head, more], _chunks(f, chunk))
    if is_hex:
        yield from _hex_bytes(source, checked=f.seekable())
    else:
        yield from _without_header(source)


def load_capture(data: bytes) -> bytes:
    """The bytes of a capture held in memory (see the module's rule)."""
    return b"".join(iter_capture(io.BytesIO(data)))
