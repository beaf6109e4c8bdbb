"""A DLMS/COSEM HAN-port meter on a pty: pushes a DataNotification every ``interval`` s.

The push list is Aidon style (``(OBIS, value, (scaler, unit))`` structures) or Kamstrup style
(list id, then OBIS and value alternating). With keys it sends general-glo-ciphering APDUs
(AES-128-GCM, security control 0x30). Long APDUs are split into HDLC segments. Faults:
``bad_fcs``, ``garbage``, ``truncated``, ``silence``, ``wrong_key``, ``replay`` (send the last
normal push again, byte for byte, as a recording played back on the port);
``unplug()``/``replug()``.
"""

from __future__ import annotations

import struct
import threading
import time
from pathlib import Path

from edge_agent.core.clock import Clock
from edge_agent.devices.dlms_hdlc.keys import load_keys
from edge_agent.devices.dlms_hdlc.options import DlmsEmulation, DlmsOptions, Fault
from edge_agent.hal.emulated.pty import PtyDevice
from edge_agent.protocols.dlms import LLC, encode_frame, encrypt_glo

SYSTEM_TITLE = b"EMU\x00\x00\x00\x00\x01"


# -- A-XDR encoding helpers -------------------------------------------------------------------


def structure(*items: bytes) -> bytes:
    return bytes([0x02, len(items)]) + b"".join(items)


def array(*items: bytes) -> bytes:
    return bytes([0x01, len(items)]) + b"".join(items)


def octets(raw: bytes) -> bytes:
    return bytes([0x09, len(raw)]) + raw


def visible(text: str) -> bytes:
    raw = text.encode("ascii")
    return bytes([0x0A, len(raw)]) + raw


def u32(v: int) -> bytes:
    return b"\x06" + struct.pack(">I", v)


def u16(v: int) -> bytes:
    return b"\x12" + struct.pack(">H", v)


def i16(v: int) -> bytes:
    return b"\x10" + struct.pack(">h", v)


def scaler_unit(scaler: int, unit: int) -> bytes:
    return structure(b"\x0f" + struct.pack(">b", scaler), b"\x16" + bytes([unit]))


def obis(a: int, b: int, c: int, d: int, e: int, f: int = 255) -> bytes:
    return octets(bytes([a, b, c, d, e, f]))


def cosem_time(epoch: float, deviation: int = -0x8000) -> bytes:
    """A COSEM date-time (UTC wall time given as local, unless ``deviation`` says otherwise)."""
    t = time.gmtime(epoch - 60 * deviation if deviation != -0x8000 else epoch)
    return struct.pack(">HBBBBBBBhB", t.tm_year, t.tm_mon, t.tm_mday, t.tm_wday + 1,
                       t.tm_hour, t.tm_min, t.tm_sec, 0xFF, deviation, 0)


def notification(body: bytes, invoke_id: int = 0x40000000, when: bytes = b"") -> bytes:
    return b"\x0f" + invoke_id.to_bytes(4, "big") + bytes([len(when)]) + when + body


def hdlc_frames(info: bytes, max_info: int) -> list[bytes]:
    """``info`` in one HDLC frame, or in segments of at most ``max_info`` bytes."""
    parts = [info[i:i + max_info] for i in range(0, len(info), max_info)] or [b""]
    return [encode_frame(p, segmented=i < len(parts) - 1) for i, p in enumerate(parts)]


class DlmsMeter(PtyDevice):
    """The pushing meter. ``pushed`` counts notifications produced, ``replayed`` the replays."""

    def __init__(self, emulation: DlmsEmulation | None = None, *,
                 key: bytes | None = None, auth_key: bytes | None = None,
                 clock: Clock | None = None, link_dir: Path | None = None) -> None:
        super().__init__("dlms-hdlc", link_dir=link_dir, clock=clock)
        self.emulation = emulation or DlmsEmulation()
        self.key, self.auth_key = key, auth_key
        self.fault: Fault = self.emulation.fault
        self.power_w = self.emulation.power_w
        self.voltage_v = self.emulation.voltage_v
        self.pushed = 0
        self.replayed = 0
        self.counter = 1
        self.last_push: bytes | None = None  # the last push sent without a fault
        self._lock = threading.Lock()
        self._next: float | None = None

    def set_fault(self, fault: Fault) -> None:
        with self._lock:
            self.fault = fault

    def set_power(self, watts: float) -> None:
        with self._lock:
            self.power_w = watts

    def set_voltage(self, volts: float) -> None:
        with self._lock:
            self.voltage_v = volts

    def body(self) -> bytes:
        emu = self.emulation
        with self._lock:
            power, volts = self.power_w, self.voltage_v
        if emu.layout == "kamstrup":
            return structure(
                visible("Kamstrup_V0001"),
                obis(1, 1, 0, 0, 5), visible("5706567326590407"),
                obis(1, 1, 1, 7, 0), u32(round(power)),
                obis(1, 1, 2, 7, 0), u32(0),
                obis(1, 1, 31, 7, 0), u32(round(emu.current_a * 100)),
                obis(1, 1, 32, 7, 0), u16(round(volts)),
                obis(1, 1, 1, 8, 0), u32(round(emu.energy_import_wh / 10)),
            )
        return array(
            structure(obis(0, 0, 1, 0, 0), octets(cosem_time(self.clock.time()))),
            structure(obis(1, 0, 1, 7, 0), u32(round(power)), scaler_unit(0, 27)),
            structure(obis(1, 0, 2, 7, 0), u32(0), scaler_unit(0, 27)),
            structure(obis(1, 0, 31, 7, 0), i16(round(emu.current_a * 10)),
                      scaler_unit(-1, 33)),
            structure(obis(1, 0, 32, 7, 0), u16(round(volts * 10)), scaler_unit(-1, 35)),
            structure(obis(1, 0, 52, 7, 0), u16(round(volts * 10)), scaler_unit(-1, 35)),
            structure(obis(1, 0, 1, 8, 0), u32(round(emu.energy_import_wh)),
                      scaler_unit(0, 30)),
        )

    def push(self) -> bytes:
        """The bytes of the next push (with the current fault applied)."""
        with self._lock:
            fault = self.fault
        if fault == "replay" and self.last_push is not None:
            self.replayed += 1
            return self.last_push
        apdu = notification(self.body())
        if self.key is not None:
            key = self.key if fault != "wrong_key" else bytes(16)
            sc = 0x30 if self.auth_key is not None else 0x20
            apdu = encrypt_glo(apdu, key, self.auth_key or b"", SYSTEM_TITLE, self.counter, sc)
            self.counter += 1
        data = b"".join(hdlc_frames(LLC + apdu, self.emulation.max_info))
        self.pushed += 1
        if fault == "bad_fcs":
            return data[:-3] + bytes([data[-3] ^ 0xFF]) + data[-2:]
        if fault == "garbage":
            return b"\x00\xff\x13garbage\x7e\x7e\xa0" * 3
        if fault == "truncated":
            return data[: len(data) // 2]
        if fault == "silence":
            return b""
        self.last_push = data
        return data

    def on_tick(self, now: float) -> None:
        if self._next is None:
            self._next = now
        if now < self._next:
            return
        self._next = now + self.emulation.interval
        data = self.push()
        if data:
            self.write(data)


def emulate(options: DlmsOptions, clock: Clock) -> DlmsMeter:
    """The emulated meter of a ``dlms-hdlc`` sensor, on a pty; with a ``key_file`` it
    encrypts its pushes with those keys (as the real meter shares them)."""
    keys = load_keys(options.key_file) if options.key_file is not None else None
    return DlmsMeter(options.emulate, key=keys[0] if keys else None,
                     auth_key=keys[1] if keys else None)
