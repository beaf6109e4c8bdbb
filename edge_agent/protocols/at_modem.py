"""Sending one SMS through a GSM/LTE modem's AT command set (3GPP TS 27.005/27.007), sans-I/O.

Text mode only. The conversation for one message:

    ATE0          -> OK                  (no command echo; an echo before it is skipped)
    AT+CREG?      -> +CREG: <n>,<stat>   then OK  (stat 1 home, 5 roaming: registered)
    AT+CMGF=1     -> OK                  (text mode)
    AT+CMGS="<number>"  -> "> "          (the modem's prompt for the text)
    <text> Ctrl-Z -> +CMGS: <mr>         then OK  (mr: the message reference)

``SmsSession(number, text)`` holds that conversation: ``data_to_send()`` gives the bytes to
write, ``receive_data(bytes)`` takes what the modem answered, ``next_event()`` returns
``SmsSent``, ``SmsFailed`` or ``NEED_DATA``. ``timeout()`` tells it the modem did not
answer in time (the driver owns the clock). It never opens a port or reads a clock.

Failures are events with a reason: ``error`` (a bare ``ERROR``), ``cms`` (``+CMS ERROR:
<n>``, n kept), ``cme`` (``+CME ERROR: <n>``), ``no_network`` (not registered),
``timeout``. Unsolicited result codes (``RING``, ``+CMTI: ...``) between answers are
ignored. Input without a line end is bounded by ``MAX_LINE``.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Final

from edge_agent.core.errors import FrameError

CTRL_Z: Final = b"\x1a"
MAX_LINE: Final = 512
MAX_TEXT: Final = 160  # one GSM 7-bit message
_NUMBER = re.compile(r"\+?[0-9]{3,20}")
_CREG = re.compile(rb"\+CREG: *(\d+) *, *(\d+)")
_CMGS = re.compile(rb"\+CMGS: *(\d+)")
_CMS = re.compile(rb"\+(CMS|CME) ERROR: *(.+)")
# GSM 03.38 basic characters that are also ASCII (no Ctrl-Z, no ESC, no control codes)
_SAFE_TEXT = re.compile(r"[A-Za-z0-9 @$_!\"#%&'()*+,\-./:;<=>?\n\r]*")


class _Need(enum.Enum):
    NEED_DATA = "NEED_DATA"


NEED_DATA: Final = _Need.NEED_DATA


class SmsTextError(ValueError):
    """A number or a text cannot be sent as one text-mode SMS."""


@dataclass(frozen=True)
class SmsSent:
    reference: int  # the modem's message reference (+CMGS: <mr>)


@dataclass(frozen=True)
class SmsFailed:
    reason: str  # error | cms | cme | no_network | timeout | frame
    code: str | None = None  # the n of +CMS/+CME ERROR: n
    step: str = ""  # the command that failed

    @property
    def detail(self) -> str:
        code = f" {self.code}" if self.code is not None else ""
        return f"{self.reason}{code} at {self.step or 'start'}"


Event = SmsSent | SmsFailed | _Need


def check_number(number: str) -> str:
    if not _NUMBER.fullmatch(number):
        raise SmsTextError("a phone number is an optional '+' and 3 to 20 digits")
    return number


def check_text(text: str) -> str:
    if len(text) > MAX_TEXT:
        raise SmsTextError(f"an SMS text has at most {MAX_TEXT} characters, got {len(text)}")
    if not _SAFE_TEXT.fullmatch(text):
        raise SmsTextError("an SMS text may only use letters, digits, spaces and basic "
                           "punctuation (GSM 7-bit, no control characters)")
    return text


class _Step(enum.Enum):
    ECHO_OFF = "ATE0"
    REGISTERED = "AT+CREG?"
    TEXT_MODE = "AT+CMGF=1"
    SEND = "AT+CMGS"
    BODY = "text"
    DONE = "done"


class SmsSession:
    """One SMS, from ``ATE0`` to ``+CMGS: <mr>`` or a failure."""

    def __init__(self, number: str, text: str) -> None:
        self.number = check_number(number)
        self.text = check_text(text)
        self._step = _Step.ECHO_OFF
        self._buf = bytearray()
        self._out = bytearray(b"ATE0\r")
        self._offset = 0  # of the buffer's start in the whole input (for errors)
        self._registered: bool | None = None
        self._reference: int | None = None
        self._event: SmsSent | SmsFailed | None = None
        self._delivered = False

    @property
    def step(self) -> str:
        return self._step.value

    @property
    def done(self) -> bool:
        return self._step is _Step.DONE

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    def receive_data(self, data: bytes) -> None:
        if self.done:
            return
        self._buf += data
        self._process()

    def timeout(self) -> None:
        """The modem did not answer the current step in time."""
        if not self.done:
            self._fail("timeout")

    def next_event(self) -> Event:
        if self._event is not None and not self._delivered:
            self._delivered = True
            return self._event
        return NEED_DATA

    # -- internals --------------------------------------------------------------------------

    def _fail(self, reason: str, code: str | None = None) -> None:
        self._event = SmsFailed(reason, code, self._step.value)
        self._step = _Step.DONE

    def _send(self, step: _Step, data: bytes) -> None:
        self._step = step
        self._out += data

    def _process(self) -> None:
        while not self.done:
            if self._step is _Step.SEND:
                i = self._buf.find(b">")
                line_end = self._buf.find(b"\n")
                if i >= 0 and (line_end < 0 or i < line_end):
                    # the prompt "> " (after an optional CR LF) asks for the text
                    del self._buf[:i + 1]
                    self._offset += i + 1
                    self._send(_Step.BODY, self.text.encode("ascii") + CTRL_Z)
                    continue
            nl = self._buf.find(b"\n")
            if nl < 0:
                if len(self._buf) > MAX_LINE:
                    self._event = SmsFailed("frame", None, self._step.value)
                    self._step = _Step.DONE
                    raise FrameError(f"modem line longer than {MAX_LINE} bytes",
                                     self._offset)
                return
            line = bytes(self._buf[:nl]).strip()
            del self._buf[:nl + 1]
            self._offset += nl + 1
            if line:
                self._line(line)

    def _line(self, line: bytes) -> None:
        if line.startswith(b"AT"):
            return  # the echo of our own command (before ATE0 took effect)
        if line == b"ERROR":
            self._fail("error")
            return
        m = _CMS.fullmatch(line)
        if m:
            self._fail(m.group(1).decode("ascii").lower(),
                       m.group(2).decode("ascii", "replace").strip())
            return
        step = self._step
        if step is _Step.REGISTERED and (m := _CREG.fullmatch(line)):
            self._registered = int(m.group(2)) in (1, 5)
            return
        if step is _Step.BODY and (m := _CMGS.fullmatch(line)):
            self._reference = int(m.group(1))
            return
        if line != b"OK":
            return  # an unsolicited result code (RING, +CMTI, ...) or the text's echo
        if step is _Step.ECHO_OFF:
            self._send(_Step.REGISTERED, b"AT+CREG?\r")
        elif step is _Step.REGISTERED:
            if not self._registered:
                self._fail("no_network")
            else:
                self._send(_Step.TEXT_MODE, b"AT+CMGF=1\r")
        elif step is _Step.TEXT_MODE:
            self._send(_Step.SEND, f'AT+CMGS="{self.number}"\r'.encode("ascii"))
        elif step is _Step.BODY:
            if self._reference is None:
                self._fail("error")
            else:
                self._event = SmsSent(self._reference)
                self._step = _Step.DONE
