"""An emulated MLX90614 IR thermometer: SMBus read word with PEC, faults."""

from __future__ import annotations

import errno
import random
import threading

from edge_agent.core.clock import Clock
from edge_agent.core.errors import DeviceNotFoundError
from edge_agent.devices.mlx90614.options import MLX90614Emulate, MLX90614Options
from edge_agent.hal.emulated import I2CTarget
from edge_agent.protocols import mlx90614 as p


class MLX90614Device:
    """The device side; ``object_temperature``, ``error_flag`` etc. may be set any time."""

    def __init__(self, clock: Clock, address: int = p.ADDRESS_DEFAULT,
                 scenario: MLX90614Emulate | None = None) -> None:
        self.scenario = scenario or MLX90614Emulate()
        self.clock = clock
        self.address = address
        self.object_temperature = self.scenario.object_temperature
        self.ambient_temperature = self.scenario.ambient_temperature
        self.error_flag = False
        self.corrupt_next = 0
        self.reads = 0
        self._start = clock.monotonic()
        self._rng = random.Random(self.scenario.seed)
        self._command: int | None = None
        self._lock = threading.Lock()

    def _word(self, command: int) -> int:
        s = self.scenario
        noise = self._rng.uniform(-s.noise, s.noise) if s.noise else 0.0
        if command == p.RAM_TA:
            word = p.raw_from_celsius(self.ambient_temperature + noise)
        elif command in (p.RAM_TOBJ1, p.RAM_TOBJ2):
            t = self.object_temperature
            if (s.fever_after_seconds is not None
                    and self.clock.monotonic() - self._start >= s.fever_after_seconds):
                t = s.fever_temperature
            word = p.raw_from_celsius(t + noise)
        else:
            return 0  # EEPROM and other RAM cells: not modelled
        return word | p.ERROR_FLAG if self.error_flag else word

    def write(self, data: bytes) -> None:
        with self._lock:
            if data:
                self._command = data[0]

    def read(self, n: int) -> bytes:
        with self._lock:
            if self._command is None:
                raise DeviceNotFoundError(errno.EREMOTEIO, "MLX90614: read without command")
            command, self._command = self._command, None
            self.reads += 1
            answer = bytearray(p.encode_read_word(self.address, command, self._word(command)))
            every = self.scenario.bad_pec_every
            if self.corrupt_next or (every and self.reads % every == 0):
                self.corrupt_next = max(0, self.corrupt_next - 1)
                answer[2] ^= 0xA5
            return bytes(answer[:n])

    def write_read(self, data: bytes, n: int) -> bytes:
        self.write(data)
        return self.read(n)


def emulate(options: MLX90614Options, clock: Clock) -> I2CTarget:
    """The emulated chip of an ``mlx90614`` sensor, at its configured address."""
    return I2CTarget(options.address, MLX90614Device(clock, options.address, options.emulate))
