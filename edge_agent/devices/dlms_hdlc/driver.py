"""``dlms-hdlc``: a DLMS/COSEM meter pushing over its HAN/P1 port (HDLC, often 2400 8N1).

Optional decryption of general-glo-ciphering pushes with keys from ``key_file``, a text file
readable by its owner only (mode 0600 or stricter)::

    # meter 7359992890941742 (from the grid operator)
    EK=000102030405060708090A0B0C0D0E0F
    AK=D0D1D2D3D4D5D6D7D8D9DADBDCDDDEDF

``EK`` (encryption key) is required, ``AK`` (authentication key) only for authenticated
pushes; 32 hex digits each. Blank lines and ``#`` comments are ignored. A key file that is
missing, malformed or open to group/others stops this sensor at start (KeyFileError).

Rejections are counted per reason in the sensor's stats: ``checksum`` (HCS/FCS),
``frame`` (garbage, truncated or malformed frames and APDUs), ``decryption`` (wrong key,
missing AK, or an encrypted push while no ``key_file`` is configured), ``replay`` (an
authentic encrypted push whose invocation counter is not above the last one accepted from
its system title: a recorded push sent again; nothing is published) and ``range``
(implausible values); a port that vanishes or stays silent for ``silence_timeout`` seconds
is reopened with backoff. With a ``key_file``, the last accepted counters survive port
reopens and agent restarts: they are saved after each accepted encrypted push to
``<state_dir>/sensors/<sensor id>.dlms-counters`` (JSON ``{system_title_hex: counter}``,
written to a temporary file and renamed over it). A counters file that cannot be read or
parsed is counted as ``replay-state``, logged, and protection starts empty; a failed save is
counted the same way and does not stop the sensor.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from pathlib import Path

from edge_agent.core.errors import DecryptionError, ProtocolError
from edge_agent.devices.base import Emit, Sample, Sensor, SensorContext, SensorSpec, StreamSensor
from edge_agent.devices.dlms_hdlc.keys import load_keys
from edge_agent.devices.dlms_hdlc.options import DlmsOptions
from edge_agent.devices.meter_checks import PushSampler, guard_for
from edge_agent.devices.replay_state import load_guard, save_guard
from edge_agent.devices.serial_sensor import SilenceWatchdog
from edge_agent.hal.interfaces import ByteStream
from edge_agent.protocols import dlms
from edge_agent.protocols.obis import selection as obis_selection


class DlmsSensor(StreamSensor):
    def __init__(self, spec: SensorSpec, ctx: SensorContext, options: DlmsOptions,
                 keys: tuple[bytes, bytes | None] | None = None) -> None:
        super().__init__(spec, ctx)
        self.options = options
        self._keys = keys
        self._selection = obis_selection(options.obis)
        self._parser = self._new_parser()
        self._replay = dlms.ReplayGuard()  # survives reopening the port
        self._replay_loaded = False
        self._replay_warned = False
        self._push = PushSampler(self, guard_for(options), ctx.clock, spec.interval, texts=False)

    @property
    def replay_state_path(self) -> Path | None:
        """Where the replay counters are kept; None without a state_dir or a key_file."""
        if self.ctx.state_dir is None or self._keys is None:
            return None
        name = re.sub(r"[^A-Za-z0-9_.-]", "_", self.spec.id).lstrip(".") or "_"
        return self.ctx.state_dir / f"{name}.dlms-counters"

    def _replay_state_error(self, message: str) -> None:
        self.stats.errors["replay-state"] += 1
        self.stats.last_error = f"replay-state: {message}"
        if not self._replay_warned:
            self.log.warning("replay-state: %s", message)
            self._replay_warned = True

    def load_replay_state(self) -> None:
        """Restore the accepted counters saved by an earlier run (once per sensor)."""
        if self._replay_loaded:
            return
        self._replay_loaded = True
        path = self.replay_state_path
        if path is None:
            return
        try:
            guard = load_guard(path)
        except (OSError, ValueError) as exc:  # JSONDecodeError and bad entries included
            self._replay_state_error(f"cannot load {path} ({exc}); starting with no "
                                     "replay counters")
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
            self._replay_state_error(f"cannot save {path}: {exc}")

    def _new_parser(self) -> dlms.Parser:
        wrapping = self.options.wrapping
        if self._keys is None:
            return dlms.Parser(framing=wrapping, model=self.options.model)
        return dlms.Parser(self._keys[0], self._keys[1], framing=wrapping,
                           model=self.options.model)

    def run(self, emit: Emit, stop: threading.Event) -> None:
        self.load_replay_state()
        super().run(emit, stop)

    def open_stream(self) -> ByteStream:
        stream = self.ctx.hw.serial(self.options.port, self.options.baudrate,
                                    framing=self.options.framing)
        return SilenceWatchdog(stream, self.ctx.clock, self.options.silence_timeout)

    def on_open(self, stream: ByteStream) -> None:
        self._parser = self._new_parser()

    def feed(self, data: bytes) -> Iterable[Sample]:
        out: list[Sample] = []
        for item in self._parser.feed(data):
            if isinstance(item, ProtocolError):
                self.record_error(item.reason, item)
            elif isinstance(item, dlms.CipheredApdu):
                error = DecryptionError(
                    f"encrypted push from system title {item.system_title.hex()} and no "
                    "key_file configured", item.offset)
                self.record_error(error.reason, error)
            elif isinstance(item, dlms.Notification):
                replay = self._replay.check(item)
                if replay is not None:
                    self.record_error(replay.reason, replay)
                    continue
                if item.encrypted and item.invocation_counter is not None:
                    self._save_replay_state()
                out += self.samples(item)
        return out

    def samples(self, note: dlms.Notification) -> list[Sample]:
        """Validated samples of one push (at most one push per ``interval`` seconds)."""
        if not self._push.due():
            return []
        return self._push.samples((m, note.timestamp) for m in note.select(self._selection))


def build(spec: SensorSpec, options: DlmsOptions, ctx: SensorContext) -> Sensor:
    keys = load_keys(options.key_file) if options.key_file is not None else None
    return DlmsSensor(spec, ctx, options, keys)
