"""A GSM/LTE modem's AT port on a pty, byte for byte: text-mode SMS, with faults.

Answers ``AT``, ``ATE0``/``ATE1``, ``AT+CREG?``, ``AT+CMGF=<0|1>``, ``AT+CSQ`` and
``AT+CMGS="<number>"`` (the ``> `` prompt, then the text up to Ctrl-Z, ESC cancels);
anything else is ``ERROR``. Every text sent is kept in ``messages`` (number, text). Faults
(``ModemEmulation``): ``network: none`` (``+CREG: 0,0``, texts fail with ``+CMS ERROR:
331``), ``cms_error`` for the first ``cms_failures`` texts.
"""

from __future__ import annotations

import re
import threading

from edge_agent.core.clock import Clock
from edge_agent.devices.modem.options import ModemEmulation, ModemOptions
from edge_agent.hal.emulated.pty import PtyDevice

_CMGS = re.compile(rb'AT\+CMGS="(\+?[0-9]{1,20})"', re.IGNORECASE)
NO_NETWORK_CMS = 331  # 3GPP TS 27.005: no network service


class ModemEmulator(PtyDevice):
    def __init__(self, emulation: ModemEmulation) -> None:
        super().__init__("ttyUSB2")
        self.emulation = emulation
        self.network = emulation.network
        self._lock = threading.Lock()
        self.messages: list[tuple[str, str]] = []
        self.attempts = 0  # AT+CMGS texts received (sent or failed)
        self.commands: list[bytes] = []  # every command line, for tests
        self._echo = emulation.echo
        self._text_mode = False
        self._buf = bytearray()
        self._number: str | None = None  # set while the host types a text

    def sent(self) -> list[tuple[str, str]]:
        with self._lock:
            return list(self.messages)

    def on_replug(self) -> None:
        self._buf.clear()
        self._number = None
        self._echo = self.emulation.echo

    def on_data(self, data: bytes) -> None:
        self._buf += data
        while True:
            if self._number is not None:
                if not self._text():
                    return
                continue
            i = self._buf.find(b"\r")
            if i < 0:
                if len(self._buf) > 4096:
                    self._buf.clear()
                return
            line = bytes(self._buf[:i]).strip(b"\n ")
            del self._buf[:i + 1]
            if self._echo:
                self.write(line + b"\r")
            if line:
                self._at_command(line)

    def _text(self) -> bool:
        for i, b in enumerate(self._buf):
            if b == 0x1B:  # ESC: cancel
                del self._buf[:i + 1]
                self._number = None
                self.write(b"\r\nOK\r\n")
                return True
            if b == 0x1A:
                text = bytes(self._buf[:i]).decode("ascii", "replace")
                del self._buf[:i + 1]
                number, self._number = self._number, None
                assert number is not None
                self._finish(number, text)
                return True
        return False

    def _finish(self, number: str, text: str) -> None:
        e = self.emulation
        with self._lock:
            self.attempts += 1
            failing = e.cms_error is not None and (e.cms_failures < 0
                                                   or self.attempts <= e.cms_failures)
            if self.network == "none":
                self.write(f"\r\n+CMS ERROR: {NO_NETWORK_CMS}\r\n".encode())
                return
            if failing:
                self.write(f"\r\n+CMS ERROR: {e.cms_error}\r\n".encode())
                return
            self.messages.append((number, text))
            mr = len(self.messages) % 256
        self.write(f"\r\n+CMGS: {mr}\r\n\r\nOK\r\n".encode())

    def _at_command(self, line: bytes) -> None:
        with self._lock:
            self.commands.append(line)
        up = line.upper()
        ok = b"\r\nOK\r\n"
        if up in (b"AT", b"ATZ"):
            self.write(ok)
        elif up in (b"ATE0", b"ATE1"):
            self._echo = up == b"ATE1"
            self.write(ok)
        elif up == b"AT+CREG?":
            stat = {"registered": 1, "roaming": 5, "none": 0}[self.network]
            self.write(f"\r\n+CREG: 0,{stat}\r\n\r\nOK\r\n".encode())
        elif up == b"AT+CSQ":
            self.write(b"\r\n+CSQ: " + (b"99,99" if self.network == "none" else b"21,0")
                       + b"\r\n\r\nOK\r\n")
        elif up in (b"AT+CMGF=1", b"AT+CMGF=0"):
            self._text_mode = up.endswith(b"1")
            self.write(ok)
        elif (m := _CMGS.fullmatch(line)) and self._text_mode:
            self._number = m.group(1).decode("ascii")
            self.write(b"\r\n> ")
        else:
            self.write(b"\r\nERROR\r\n")


def emulate(options: ModemOptions, clock: Clock) -> ModemEmulator:
    return ModemEmulator(options.emulate)
