"""An IEC 62056-21 mode C meter behind an optical probe, on a pty.

It answers a sign-on (its address, or none) with its identification at 300 baud, takes the
option select, "switches" to the agreed baud rate and sends the data readout after
``switch_delay``. A pty has no physical baud rate, but the host's termios speed is visible:
when the host is not at the rate the dialogue agreed, the meter's bytes arrive garbled, as
on a real line. Faults: ``silence``, ``bad_bcc``, ``garbage``; ``ignore_sign_ons`` drops the
first N sign-ons and ``corrupt_readouts`` spoils the BCC of the first N readouts (to exercise
retries); ``nak_options`` answers every option select with NAK; ``readout_chunk`` sends the
readout N bytes per tick, like a slow line; ``unplug()``/``replug()``.
"""

from __future__ import annotations

import threading
from pathlib import Path

from edge_agent.core.clock import Clock
from edge_agent.devices.iec62056_21.options import Fault, IecEmulation, IecOptions
from edge_agent.hal.emulated.pty import PtyDevice
from edge_agent.protocols.iec62056_21 import (
    BAUD_CHAR,
    NAK,
    OptionSelect,
    Parser,
    SignOn,
    encode_data_block,
)


class IecMeter(PtyDevice):
    """The meter. ``baudrate`` is the rate the meter currently talks at."""

    def __init__(self, emulation: IecEmulation | None = None, *, clock: Clock | None = None,
                 link_dir: Path | None = None) -> None:
        super().__init__("iec62056-21", link_dir=link_dir, clock=clock)
        self.emulation = emulation or IecEmulation()
        self.fault: Fault = self.emulation.fault
        self.values = dict(self.emulation.values)
        self.baudrate = 300
        self.sign_ons = 0  # sign-ons seen (including ignored ones)
        self.readouts = 0  # data blocks sent
        self._ignore = self.emulation.ignore_sign_ons
        self._corrupt = self.emulation.corrupt_readouts
        self._parser = Parser()
        self._due: float | None = None
        self._trickle = b""  # the rest of a readout sent in chunks
        self._lock = threading.Lock()

    def set_fault(self, fault: Fault) -> None:
        with self._lock:
            self.fault = fault

    def set_value(self, address: str, raw: str) -> None:
        with self._lock:
            self.values[address] = raw

    def on_replug(self) -> None:
        self._parser = Parser()
        self.baudrate, self._due, self._trickle = 300, None, b""

    def on_data(self, data: bytes) -> None:
        for msg in self._parser.feed(data):
            if isinstance(msg, SignOn):
                self._sign_on(msg)
            elif isinstance(msg, OptionSelect):
                self._option(msg)

    def on_tick(self, now: float) -> None:
        if self._due is not None and now >= self._due:
            self._due = None
            self._trickle = self._readout()
            self.readouts += 1
        if self._trickle:
            n = self.emulation.readout_chunk or len(self._trickle)
            self._send(self._trickle[:n])
            self._trickle = self._trickle[n:]
            if not self._trickle:
                self.baudrate = 300  # the session ends; the next one starts at 300 baud

    def _sign_on(self, msg: SignOn) -> None:
        self.sign_ons += 1
        emu = self.emulation
        if msg.address and msg.address != emu.address:
            return
        if self._ignore > 0:
            self._ignore -= 1
            return
        with self._lock:
            fault = self.fault
        if fault == "silence":
            return
        self.baudrate, self._due, self._trickle = 300, None, b""
        z = BAUD_CHAR[emu.max_baudrate]
        self._send(f"/{emu.manufacturer}{z}{emu.ident}\r\n".encode("ascii"))

    def _option(self, msg: OptionSelect) -> None:
        rate = msg.baudrate
        if msg.mode != "0" or rate is None or rate > self.emulation.max_baudrate \
                or self.emulation.nak_options:
            self._send(bytes([NAK]))
            return
        self.baudrate = rate
        self._due = self.clock.monotonic() + self.emulation.switch_delay

    def _send(self, data: bytes) -> None:
        host = self.line_speed()
        if host is not None and host != self.baudrate:
            data = bytes(b ^ 0x5A for b in data)  # what a receiver at another rate sees
        self.write(data)

    def _readout(self) -> bytes:
        emu = self.emulation
        amps = emu.power_w / 3 / emu.voltage_v if emu.voltage_v else 0.0
        lines = {
            "F.F": "00000000",
            "0.0.0": "12345678",
            "1.8.0": f"{emu.energy_import_wh / 1000:011.3f}*kWh",
            "2.8.0": "0000000.000*kWh",
            "16.7.0": f"{emu.power_w / 1000:07.3f}*kW",
            "32.7.0": f"{emu.voltage_v:05.1f}*V",
            "52.7.0": f"{emu.voltage_v:05.1f}*V",
            "72.7.0": f"{emu.voltage_v:05.1f}*V",
            "31.7.0": f"{amps:06.2f}*A",
            "51.7.0": f"{amps:06.2f}*A",
            "71.7.0": f"{amps:06.2f}*A",
            "14.7.0": "50.00*Hz",
        }
        with self._lock:
            lines.update(self.values)
            fault = self.fault
        block = encode_data_block([f"{k}({v})" for k, v in lines.items()])
        if self._corrupt > 0:
            self._corrupt -= 1
            fault = "bad_bcc"
        if fault == "bad_bcc":
            return block[:-1] + bytes([block[-1] ^ 0xFF])
        if fault == "garbage":
            return b"\xff\xfe" + block[5:40]
        return block


def emulate(options: IecOptions, clock: Clock) -> IecMeter:
    """The emulated meter behind the optical probe of an ``iec62056-21`` sensor, on a pty."""
    return IecMeter(options.emulate)
