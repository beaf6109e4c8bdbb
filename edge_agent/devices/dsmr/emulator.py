"""A DSMR P1 smart meter on a pty: a telegram every ``interval`` seconds, with faults.

The meter integrates its import power into its energy registers and has an M-Bus gas meter.
Any data line can be overridden with raw text (``values: {"1-0:32.7.0": "260.0*V"}``).
Faults: ``bad_crc``, ``garbage``, ``truncated``, ``silence``, ``replay`` (encrypted P1: the
last frame again); and ``unplug()``/``replug()``. With a ``key_file`` the meter encrypts each
telegram as Luxembourg Smarty meters do (general-glo-ciphering, AES-128-GCM).
"""

from __future__ import annotations

import calendar
import threading
import time
from pathlib import Path

from edge_agent.core.clock import Clock
from edge_agent.devices.dsmr.options import DsmrEmulation, DsmrOptions, Fault
from edge_agent.hal.emulated.pty import PtyDevice
from edge_agent.protocols.dlms import encrypt_glo
from edge_agent.protocols.dsmr import crc16_arc

SYSTEM_TITLE = b"SAG\x10\x00\x00\x00\x01"  # Smarty meters: "SAG" + serial

GARBAGE = b"\xff\xfe\x00P1?\x80\x81garbage\xff" * 4


def format_timestamp(epoch: float) -> str:
    """Epoch seconds as a DSMR ``YYMMDDhhmmssX`` CET/CEST timestamp."""
    t = int(epoch)
    year = time.gmtime(t).tm_year
    # EU rule: CEST from the last Sunday of March 01:00 UTC to that of October 01:00 UTC
    start = calendar.timegm((year, 3, _last_sunday(year, 3), 1, 0, 0, 0, 0, 0))
    end = calendar.timegm((year, 10, _last_sunday(year, 10), 1, 0, 0, 0, 0, 0))
    summer = start <= t < end
    local = time.gmtime(t + (7200 if summer else 3600))
    return time.strftime("%y%m%d%H%M%S", local) + ("S" if summer else "W")


def _last_sunday(year: int, month: int) -> int:
    last = calendar.monthrange(year, month)[1]
    return last - (calendar.weekday(year, month, last) + 1) % 7


def encode_telegram(header: str, lines: list[str], *, with_crc: bool = True) -> bytes:
    """A telegram from its identification (without ``/``) and data lines."""
    body = ("/" + header + "\r\n\r\n" + "".join(line + "\r\n" for line in lines) + "!")
    raw = body.encode("latin-1")
    if not with_crc:
        return raw + b"\r\n"
    return raw + f"{crc16_arc(raw):04X}\r\n".encode("ascii")


class DsmrMeter:
    """The meter's state and its telegram encoder (no I/O)."""

    def __init__(self, emulation: DsmrEmulation, version: str = "5") -> None:
        self.version = version
        self.power_w = emulation.power_w
        self.export_w = emulation.export_w
        self.voltage_v = emulation.voltage_v
        self.energy_t1 = emulation.energy_import_wh / 2
        self.energy_t2 = emulation.energy_import_wh / 2
        self.export_t1 = 0.0
        self.gas_m3 = emulation.gas_m3
        self.values = dict(emulation.values)

    def advance(self, seconds: float, local_hour: int) -> None:
        wh = self.power_w * seconds / 3600.0
        if 7 <= local_hour < 23:
            self.energy_t2 += wh
        else:
            self.energy_t1 += wh
        self.export_t1 += self.export_w * seconds / 3600.0
        if self.gas_m3 is not None:
            self.gas_m3 += 0.0001 * seconds

    def telegram(self, now: float) -> bytes:
        ts = format_timestamp(now)
        tariff = 2 if 7 <= int(ts[6:8]) < 23 else 1
        per_phase_w = self.power_w / 3
        amps = per_phase_w / self.voltage_v if self.voltage_v else 0.0
        modern = self.version in ("4", "5")
        lines: list[tuple[str, str]] = []
        if modern:
            lines += [("1-3:0.2.8", "50" if self.version == "5" else "42"),
                      ("0-0:1.0.0", ts),
                      ("0-0:96.1.1", b"EMU0000000000001".hex().upper())]
        else:
            lines += [("0-0:96.1.1", b"EMU0000000000001".hex().upper())]
        lines += [
            ("1-0:1.8.1", f"{self.energy_t1 / 1000:010.3f}*kWh"),
            ("1-0:1.8.2", f"{self.energy_t2 / 1000:010.3f}*kWh"),
            ("1-0:2.8.1", f"{self.export_t1 / 1000:010.3f}*kWh"),
            ("1-0:2.8.2", "000000.000*kWh"),
            ("0-0:96.14.0", f"{tariff:04d}"),
            ("1-0:1.7.0", f"{self.power_w / 1000:06.3f}*kW"),
            ("1-0:2.7.0", f"{self.export_w / 1000:06.3f}*kW"),
        ]
        if modern:
            lines += [("0-0:96.7.21", "00004"), ("0-0:96.7.9", "00002")]
            for c in (32, 52, 72):
                lines += [(f"1-0:{c}.32.0", "00000"), (f"1-0:{c}.36.0", "00000")]
            for c in (32, 52, 72):
                lines.append((f"1-0:{c}.7.0", f"{self.voltage_v:05.1f}*V"))
            for c in (31, 51, 71):
                lines.append((f"1-0:{c}.7.0", f"{round(amps):03d}*A"))
            for c in (21, 41, 61):
                lines.append((f"1-0:{c}.7.0", f"{per_phase_w / 1000:06.3f}*kW"))
            for c in (22, 42, 62):
                lines.append((f"1-0:{c}.7.0", f"{self.export_w / 3000:06.3f}*kW"))
        known = {obis for obis, _ in lines}
        text = [f"{obis}({self.values.get(obis, value)})" for obis, value in lines]
        text += [f"{obis}({value})" for obis, value in self.values.items() if obis not in known]
        if self.gas_m3 is not None:
            gas = f"{self.gas_m3:09.3f}"
            if modern:
                text += ["0-1:24.1.0(003)",
                         f"0-1:96.1.0({b'GAS0000000000001'.hex().upper()})",
                         f"0-1:24.2.1({ts})({gas}*m3)"]
            else:
                text += ["0-1:24.1.0(3)", "0-1:96.1.0(3232323241424344)",
                         f"0-1:24.3.0({ts[:-1]})(00)(60)(1)(0-1:24.2.1)(m3)", f"({gas})"]
        header = "EMU5\\2EDGE-P1" if modern else "EMU3\\2EDGE-P1"
        return encode_telegram(header, text, with_crc=modern)


def corrupt(telegram: bytes, fault: Fault) -> bytes:
    """The bytes a faulty meter sends instead of ``telegram``."""
    if fault == "bad_crc":
        if telegram.endswith(b"!\r\n"):  # no CRC to break: break a data line instead
            return telegram.replace(b"1-0:1.8.1(", b"1-0:1.8.1((", 1)
        bang = telegram.rindex(b"!")
        crc = int(telegram[bang + 1:bang + 5], 16) ^ 0x0101
        return telegram[:bang + 1] + f"{crc:04X}\r\n".encode("ascii")
    if fault == "garbage":
        return GARBAGE
    if fault == "truncated":
        return telegram[: len(telegram) // 2]
    if fault == "silence":
        return b""
    return telegram


class DsmrEmulator(PtyDevice):
    """The meter behind a pty. Thread-safe setters for scenario control."""

    def __init__(self, emulation: DsmrEmulation | None = None, *, version: str = "5",
                 clock: Clock | None = None, link_dir: Path | None = None,
                 keys: tuple[bytes, bytes | None] | None = None) -> None:
        super().__init__("dsmr-p1", link_dir=link_dir, clock=clock)
        self.keys = keys
        self.frame_counter = 0
        self._last_frame = b""
        self.emulation = emulation or DsmrEmulation()
        self.meter = DsmrMeter(self.emulation, version)
        self.interval = self.emulation.interval
        self.fault: Fault = self.emulation.fault
        self.fault_every = self.emulation.fault_every
        self.sent = 0  # telegrams produced (including faulty ones)
        self._lock = threading.Lock()
        self._next: float | None = None
        if self.emulation.unplug_after > 0:
            self.script_outage(self.emulation.unplug_after, self.emulation.unplug_for)

    def set_fault(self, fault: Fault, every: int = 1) -> None:
        with self._lock:
            self.fault, self.fault_every = fault, max(1, every)

    def set_value(self, obis: str, raw: str) -> None:
        """Override one data line's value text, e.g. ``("1-0:1.7.0", "99.999*kW")``."""
        with self._lock:
            self.meter.values[obis] = raw

    def set_power(self, watts: float) -> None:
        with self._lock:
            self.meter.power_w = watts

    def on_tick(self, now: float) -> None:
        if self._next is None:
            self._next = now
        if now < self._next:
            return
        self._next = now + self.interval
        wall = self.clock.time()
        with self._lock:
            self.meter.advance(self.interval, int(format_timestamp(wall)[6:8]))
            telegram = self.meter.telegram(wall)
            self.sent += 1
            faulty = self.fault != "none" and self.sent % self.fault_every == 0
            data = corrupt(telegram, self.fault) if faulty else telegram
            if self.keys is not None and data:
                data = self._seal(data, replay=faulty and self.fault == "replay")
        if data:
            self.write(data)


    def _seal(self, telegram: bytes, *, replay: bool) -> bytes:
        if replay and self._last_frame:
            return self._last_frame
        assert self.keys is not None
        ek, ak = self.keys
        self.frame_counter += 1
        sc = 0x30 if ak is not None else 0x20
        self._last_frame = encrypt_glo(telegram, ek, ak or b"", SYSTEM_TITLE,
                                       self.frame_counter, sc)
        return self._last_frame


def emulate(options: DsmrOptions, clock: Clock) -> DsmrEmulator:
    """The emulated meter of a ``dsmr-p1`` sensor, of its DSMR version, on a pty; with a
    ``key_file`` it encrypts its telegrams with those keys (as the real meter shares them)."""
    from edge_agent.devices.dsmr.driver import load_p1_keys
    return DsmrEmulator(options.emulate, version=str(options.version),
                        keys=load_p1_keys(options))
