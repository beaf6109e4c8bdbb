"""What the event-driven GPIO inputs share (``button``, ``pir``, ``door``).

gpiozero callbacks, which run on gpiozero's threads, put Samples on a bounded queue that
``run`` drains. Each open gets a new pin factory from ``ctx.hw.pin_factory()`` (lgpio on a
Pi; on emulated hardware a MockFactory whose pin the device's emulator drives); gpiozero's
global default factory is never used.
"""

from __future__ import annotations

import abc
import errno
import queue
import threading
from collections.abc import Callable
from typing import Any

from edge_agent.core.errors import HardwareError
from edge_agent.devices.base import Backoff, Emit, Sample, Sensor, SensorContext, SensorSpec

QUEUE_SIZE = 256
POLL = 0.05  # seconds run() waits on the queue before checking ``stop``


class GpioEventSensor(Sensor):
    """Base: opens a gpiozero device, wires its callbacks, drains their Samples."""

    def __init__(self, spec: SensorSpec, ctx: SensorContext, pin: int) -> None:
        super().__init__(spec, ctx)
        self.pin = pin
        self._queue: queue.Queue[Sample] = queue.Queue(QUEUE_SIZE)
        self._factory: Any = None
        self._device: Any = None
        self._lock = threading.Lock()
        self.dropped = 0
        self.opened = threading.Event()  # set while the device is open (tests, rigs)

    # -- subclass hooks --------------------------------------------------------------------

    @abc.abstractmethod
    def make_device(self, factory: Any) -> Any:
        """Create the gpiozero device on ``factory`` and wire its callbacks to push()."""

    def initial(self, device: Any) -> list[Sample]:
        """Samples to emit right after opening (the current state)."""
        return []

    def tick(self, now: float) -> list[Sample]:
        """Periodic samples (called about every POLL seconds with monotonic time)."""
        return []

    # -- plumbing ----------------------------------------------------------------------------

    def push(self, sample: Sample) -> None:
        """Queue a sample from any thread; drop (and count) when the queue is full."""
        try:
            self._queue.put_nowait(sample)
        except queue.Full:
            self.dropped += 1

    def now(self) -> float:
        return self.ctx.clock.time()

    @property
    def pin_factory(self) -> Any:
        """The pin factory while the device is open (None when closed)."""
        return self._factory

    def open(self) -> None:
        from gpiozero import GPIOZeroError

        with self._lock:
            factory = self.ctx.hw.pin_factory()
            try:
                device = self.make_device(factory)
            except (GPIOZeroError, OSError) as exc:
                factory.close()
                raise HardwareError(errno.EIO, f"GPIO{self.pin}: {exc}") from exc
            self._factory, self._device = factory, device
            for s in self.initial(device):
                self.push(s)
        self.opened.set()

    def close(self) -> None:
        """Release the pin and the factory. Never raises."""
        self.opened.clear()
        with self._lock:
            device, self._device = self._device, None
            factory, self._factory = self._factory, None
        for obj in (device, factory):
            if obj is not None:
                try:
                    obj.close()
                except Exception as exc:
                    self.log.debug("close: %s", exc)

    def run(self, emit: Emit, stop: threading.Event) -> None:
        backoff = Backoff()
        try:
            while not stop.is_set():
                if self._device is None:
                    try:
                        self.open()
                    except HardwareError as exc:
                        self.record_error(type(exc).__name__, exc)
                        stop.wait(backoff.next_delay())
                        continue
                    backoff.reset()
                    self.record_success()
                batch = self._drain(stop)
                batch.extend(self.tick(self.ctx.clock.monotonic()))
                if batch:
                    emit(self.readings(batch))
        finally:
            self.close()

    def _drain(self, stop: threading.Event) -> list[Sample]:
        try:
            first = self._queue.get(timeout=POLL)
        except queue.Empty:
            return []
        out = [first]
        while len(out) < QUEUE_SIZE:
            try:
                out.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return out


class Debouncer:
    """Contact debounce on the agent's clock: an edge counts only if the input was quiet
    for ``bounce`` seconds before it (gpiozero's MockFactory ignores ``bounce_time``, and
    pin drivers differ in how they apply it)."""

    def __init__(self, bounce: float, clock: Callable[[], float]) -> None:
        self.bounce = bounce
        self._clock = clock
        self._last_edge: float | None = None

    def edge(self) -> bool:
        """Record an edge; True if it is accepted (the input was quiet before it)."""
        now = self._clock()
        ok = self.quiet(now)
        self._last_edge = now
        return ok

    def quiet(self, now: float | None = None) -> bool:
        now = self._clock() if now is None else now
        return self._last_edge is None or now - self._last_edge >= self.bounce


class StateInput(GpioEventSensor):
    """A two-state input reported on change (debounced, re-checked once it settles)."""

    name = "state"

    def __init__(self, spec: SensorSpec, ctx: SensorContext, pin: int, pull_up: bool,
                 bounce_ms: int) -> None:
        super().__init__(spec, ctx, pin)
        self.pull_up = pull_up
        self.bounce_ms = bounce_ms
        self.debounce = Debouncer(bounce_ms / 1000, ctx.clock.monotonic)
        self._reported: bool | None = None
        self._lock_state = threading.Lock()

    @abc.abstractmethod
    def value_of(self, active: bool) -> bool:
        """The reported value for gpiozero's ``is_active``."""

    def on_change(self, value: bool) -> list[Sample]:
        """Samples for an accepted change to ``value``."""
        return [Sample(self.name, value, None, None, self.now())]

    def make_device(self, factory: Any) -> Any:
        from gpiozero import DigitalInputDevice

        dev = DigitalInputDevice(self.pin, pull_up=self.pull_up,
                                 bounce_time=self.bounce_ms / 1000 or None,
                                 pin_factory=factory)
        with self._lock_state:
            self._reported = None
        dev.when_activated = lambda: self._edge(True)
        dev.when_deactivated = lambda: self._edge(False)
        return dev

    def initial(self, device: Any) -> list[Sample]:
        with self._lock_state:
            if self._reported is not None:  # an edge already reported the state
                return []
            self._reported = self.value_of(bool(device.is_active))
            return [Sample(self.name, self._reported, None, None, self.now())]

    def _edge(self, active: bool) -> None:
        if self.debounce.edge():
            self._report(self.value_of(active))

    def _report(self, value: bool) -> None:
        with self._lock_state:
            if value == self._reported:
                return
            self._reported = value
        for s in self.on_change(value):
            self.push(s)

    def tick(self, now: float) -> list[Sample]:
        device = self._device
        if device is not None and self.debounce.quiet(now):
            try:
                active = bool(device.is_active)
            except Exception:
                return []
            self._report(self.value_of(active))
        return []


def check_pin(pin: int, bounce_ms: int) -> None:
    """ValueError unless ``pin`` is a BCM GPIO number and ``bounce_ms`` >= 0."""
    if not 0 <= pin <= 27:
        raise ValueError("pin must be a BCM GPIO number 0..27")
    if bounce_ms < 0:
        raise ValueError("bounce_ms must be >= 0")
