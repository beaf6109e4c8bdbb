"""``dsmr-p1``: a DSMR / ESMR / Fluvius smart meter's P1 port (push telegrams).

DSMR 4/5 (and ESMR 5, Fluvius): 115200 8N1 with CRC; DSMR 2.2/3: 9600 7E1, no CRC. Every
known OBIS quantity becomes a reading (``obis`` selects a subset), scaled to SenML units
(Wh, W, V, A, m3, J), timed by the meter's own timestamps. Text values (equipment id,
version) are published when they change. At most one telegram per ``interval`` seconds is
published (0 = every telegram). A port silent for ``silence_timeout`` seconds is reopened.

Encrypted P1 (Luxembourg Smarty): with ``key_file`` (``EK=``, optionally ``AK=``; mode 0600)
and optionally ``auth_key_file`` (``AK=``), the port carries general-glo-ciphering frames;
a frame that fails to authenticate is counted as ``decryption``, a decrypted telegram whose
own CRC does not match as ``checksum`` (nothing of it is published), and an authentic frame
whose frame counter is not above the last accepted from its system title as ``replay``.
The counters survive restarts in ``<state_dir>/<sensor id>.p1-counters`` (as for
``dlms-hdlc``; an unreadable file is counted as ``replay-state`` and protection starts empty).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from pathlib import Path

from edge_agent.core.errors import ProtocolError
from edge_agent.devices.base import Emit, Sample, Sensor, SensorContext, SensorSpec, StreamSensor
from edge_agent.devices.dlms_hdlc.keys import load_auth_key, load_keys
from edge_agent.devices.dsmr.options import DsmrOptions, DsmrVersion
from edge_agent.devices.meter_checks import PushSampler, guard_for
from edge_agent.devices.replay_state import load_guard, save_guard
from edge_agent.devices.serial_sensor import SilenceWatchdog
from edge_agent.hal.interfaces import ByteStream
from edge_agent.protocols import dlms, dsmr
from edge_agent.protocols.dsmr_encrypted import EncryptedParser
from edge_agent.protocols.obis import selection as obis_selection

Keys = tuple[bytes, bytes | None]


def load_p1_keys(options: DsmrOptions) -> Keys | None:
    """(EK, AK or None) of an encrypted P1 port, None for a plain one (KeyFileError)."""
    if options.key_file is None:
        return None
    ek, ak = load_keys(options.key_file)
    if options.auth_key_file is not None:
        ak = load_auth_key(options.auth_key_file)
    return ek, ak


class DsmrSensor(StreamSensor):
    def __init__(self, spec: SensorSpec, ctx: SensorContext, options: DsmrOptions,
                 keys: Keys | None = None) -> None:
        super().__init__(spec, ctx)
        self.options = options
        self._keys = keys
        self._selection = obis_selection(options.obis)
        self._require_crc = DsmrVersion(options.version).modern
        self._parser = self._new_parser()
        self._replay = dlms.ReplayGuard()  # survives reopening the port
        self._replay_loaded = False
        self._push = PushSampler(self, guard_for(options), ctx.clock, spec.interval, texts=True)


    def open_stream(self) -> ByteStream:
        baudrate, framing = self.options.line
        stream = self.ctx.hw.serial(self.options.port, baudrate, framing=framing)
        return SilenceWatchdog(stream, self.ctx.clock, self.options.silence_timeout)

    def _new_parser(self) -> dsmr.Parser | EncryptedParser:
        if self._keys is None:
            return dsmr.Parser(require_crc=self._require_crc)
        return EncryptedParser(self._keys[0], self._keys[1])

    @property
    def replay_state_path(self) -> Path | None:
        """Where the frame counters are kept; None without a state_dir or a key_file."""
        if self.ctx.state_dir is None or self._keys is None:
            return None
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", self.spec.id).lstrip(".") or "_"
        return self.ctx.state_dir / f"{name}.p1-counters"

    def run(self, emit: Emit, stop: threading.Event) -> None:
        self.load_replay_state()
        super().run(emit, stop)

    def load_replay_state(self) -> None:
        if self._replay_loaded:
            return
        self._replay_loaded = True
        path = self.replay_state_path
        if path is None:
            return
        try:
            guard = load_guard(path)
        except (OSError, ValueError) as exc:
            self.record_error("replay-state", exc)
            return
        if guard is not None:
            self._replay = guard

    def _save_replay_state(self) -> None:
        path = self.replay_state_path
        if path is None:
            return
        try:
            save_guard(path, self._replay)
        except OSError as exc:
            self.record_error("replay-state", exc)

    def on_open(self, stream: ByteStream) -> None:
        self._parser = self._new_parser()
        self._push.reset_texts()

    def feed(self, data: bytes) -> Iterable[Sample]:
        out: list[Sample] = []
        for item in self._parser.feed(data):
            if isinstance(item, ProtocolError):
                self.record_error(item.reason, item)
                continue
            if isinstance(self._parser, EncryptedParser):
                sealed = self._parser.sealed.pop(item.offset, None)
                if sealed is None:
                    continue
                replay = self._replay.check_counter(sealed.system_title,
                                                    sealed.invocation_counter, item.offset)
                if replay is not None:
                    self.record_error(replay.reason, replay)
                    continue
                self._save_replay_state()
            out += self.samples(item)
        return out

    def samples(self, telegram: dsmr.Telegram) -> list[Sample]:
        """The validated samples of one telegram (rate-limited to one per ``interval``)."""
        if not self._push.due():
            return []
        return self._push.samples((m, m.time) for m in telegram.select(self._selection))


def build(spec: SensorSpec, options: DsmrOptions, ctx: SensorContext) -> Sensor:
    return DsmrSensor(spec, ctx, options, load_p1_keys(options))
