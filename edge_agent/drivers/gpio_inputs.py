"""Event-driven GPIO inputs: PIR motion (``pir``) and door contacts (``door``).

Also the shared base for GPIO event sensors (the emergency button uses it too): gpiozero
callbacks, which run on gpiozero's threads, put Samples on a bounded queue that ``run``
drains. Each sensor gets its own pin factory (gpiozero's MockFactory when emulated, lgpio on
a Pi); gpiozero's global default factory is never used.
"""

from __future__ import annotations

import abc
import errno
import os
import queue
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..emulators.gpio import PinDriver, PulsePlan, PulseSchedule
from ..errors import HardwareError
from ..model import Channel, Priority
from .base import Backoff, Emit, Sample, Sensor, SensorContext, SensorSpec
from .registry_types import SensorType

QUEUE_SIZE = 256
POLL = 0.05  # seconds run() waits on the queue before checking ``stop``

FactoryMaker = Callable[[], Any]


# Where the board's revision code is read. gpiozero reads /proc/device-tree and
# /proc/cpuinfo, which the unit's ProcSubset=pid hides; sysfs shows the same device tree.
REVISION_FILES = ("/sys/firmware/devicetree/base/system/linux,revision",
                  "/proc/device-tree/system/linux,revision")
CPUINFO = "/proc/cpuinfo"


def board_revision(files: tuple[str, ...] | None = None,
                   cpuinfo: str | None = None) -> int | None:
    """The Raspberry Pi revision code (a 32-bit big-endian cell in the device tree, or the
    ``Revision`` line of /proc/cpuinfo), or None when none can be read."""
    files = REVISION_FILES if files is None else files
    cpuinfo = CPUINFO if cpuinfo is None else cpuinfo
    for path in files:
        try:
            with open(path, "rb") as f:
                cell = f.read(4)
        except OSError:
            continue
        if len(cell) == 4:
            return int.from_bytes(cell, "big")
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith("Revision"):
                    return int(line.split(":", 1)[1].strip()[-6:], 16)
    except (OSError, ValueError):
        pass
    return None


def real_pin_factory() -> Any:
    """A new lgpio pin factory (Raspberry Pi OS; works on the Pi 5 too), told the board's
    revision read where the service's sandbox lets it look."""
    try:
        from gpiozero import GPIOZeroError
        from gpiozero.pins.lgpio import LGPIOFactory
    except ImportError as exc:
        raise HardwareError(errno.ENOENT, f"lgpio is not installed: {exc}") from exc
    except OSError as exc:  # lgpio makes its notification pipe in the working directory
        raise HardwareError(exc.errno or errno.EIO,
                            f"lgpio cannot start (working directory {os.getcwd()}): {exc}"
                            ) from exc
    revision = board_revision()
    if revision is None:
        raise HardwareError(errno.ENODEV, "cannot tell the board's revision (no "
                            f"{REVISION_FILES[0]} and no Revision in /proc/cpuinfo)")
    code: int = revision

    class _Factory(LGPIOFactory):  # type: ignore[misc]  # gpiozero has no type hints
        def _get_revision(self) -> int:
            return code

    try:
        return _Factory()
    except OSError as exc:
        raise HardwareError(exc.errno or errno.EIO, f"cannot open the GPIO chip: {exc}") from exc
    except GPIOZeroError as exc:
        raise HardwareError(errno.ENODEV, f"GPIO: {exc}") from exc
    except Exception as exc:  # lgpio.error ("can not open gpiochip"): not an OSError
        if type(exc).__module__ != "lgpio":
            raise
        raise HardwareError(errno.EACCES, f"cannot open the GPIO chip: {exc}") from exc


def mock_pin_factory() -> Any:
    from gpiozero.pins.mock import MockFactory

    return MockFactory()


class GpioEventSensor(Sensor):
    """Base: opens a gpiozero device, wires its callbacks, drains their Samples."""

    def __init__(self, spec: SensorSpec, ctx: SensorContext, pin: int,
                 make_factory: FactoryMaker, schedule: PulsePlan | None = None,
                 *, active_low: bool) -> None:
        super().__init__(spec, ctx)
        self.pin = pin
        self.active_low = active_low
        self._make_factory = make_factory
        self._plan = schedule
        self._queue: queue.Queue[Sample] = queue.Queue(QUEUE_SIZE)
        self._factory: Any = None
        self._device: Any = None
        self._emulator: PulseSchedule | None = None
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

    def driver(self) -> PinDriver:
        """A PinDriver on this sensor's (mock) pin, for tests and rigs; needs open()."""
        if self._factory is None:
            raise HardwareError(errno.ENODEV, "not open")
        return PinDriver(self._factory.pin(self.pin), active_low=self.active_low)

    def open(self) -> None:
        from gpiozero import GPIOZeroError

        with self._lock:
            factory = self._make_factory()
            try:
                device = self.make_device(factory)
            except (GPIOZeroError, OSError) as exc:
                factory.close()
                raise HardwareError(errno.EIO, f"GPIO{self.pin}: {exc}") from exc
            self._factory, self._device = factory, device
            if self._plan is not None:
                self._emulator = PulseSchedule(
                    PinDriver(factory.pin(self.pin), active_low=self.active_low), self._plan)
                self._emulator.start()
            for s in self.initial(device):
                self.push(s)
        self.opened.set()

    def close(self) -> None:
        """Stop the emulator, release the pin and the factory. Never raises."""
        self.opened.clear()
        with self._lock:
            emulator, self._emulator = self._emulator, None
            device, self._device = self._device, None
            factory, self._factory = self._factory, None
        if emulator is not None:
            emulator.stop()
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
                 bounce_ms: int, make_factory: FactoryMaker, schedule: PulsePlan | None,
                 *, active_low: bool) -> None:
        super().__init__(spec, ctx, pin, make_factory, schedule, active_low=active_low)
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


# -- PIR --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PirEmulate:
    """Emulated motion: a motion episode every ``every_seconds`` (None = never)."""

    every_seconds: float | None = 30.0
    jitter_seconds: float = 10.0
    motion_seconds: float = 5.0
    seed: int | None = None


@dataclass(frozen=True)
class PirOptions:
    pin: int
    pull_up: bool = False  # PIR modules drive their output high on motion
    bounce_ms: int = 50
    count_seconds: float | None = None  # also emit ``motion_count`` per period
    emulate: PirEmulate = field(default_factory=PirEmulate)

    def __post_init__(self) -> None:
        _check_pin(self.pin, self.bounce_ms)
        if self.count_seconds is not None and self.count_seconds <= 0:
            raise ValueError("count_seconds must be > 0")


class PirSensor(StateInput):
    """``motion`` True/False on change; optionally ``motion_count`` (onsets) per period."""

    name = "motion"

    def __init__(self, spec: SensorSpec, ctx: SensorContext, options: PirOptions,
                 make_factory: FactoryMaker, schedule: PulsePlan | None = None) -> None:
        super().__init__(spec, ctx, options.pin, options.pull_up, options.bounce_ms,
                         make_factory, schedule, active_low=options.pull_up)
        self.options = options
        self._count = 0
        self._period_start: float | None = None

    def value_of(self, active: bool) -> bool:
        return active

    def on_change(self, value: bool) -> list[Sample]:
        if value:
            self._count += 1
        return super().on_change(value)

    def tick(self, now: float) -> list[Sample]:
        super().tick(now)
        period = self.options.count_seconds
        if period is None:
            return []
        if self._period_start is None:
            self._period_start = now
        if now - self._period_start < period:
            return []
        self._period_start = now
        count, self._count = self._count, 0
        return [Sample("motion_count", count, "count", None, self.now())]


# -- door contact ----------------------------------------------------------------------------


@dataclass(frozen=True)
class DoorEmulate:
    """Emulated door: opened every ``every_seconds`` (None = never) for ``open_seconds``."""

    every_seconds: float | None = 120.0
    jitter_seconds: float = 30.0
    open_seconds: float = 10.0
    seed: int | None = None


@dataclass(frozen=True)
class DoorOptions:
    pin: int
    pull_up: bool = True  # reed switch to GND: a shut door closes it and pulls the pin low
    bounce_ms: int = 50
    emulate: DoorEmulate = field(default_factory=DoorEmulate)

    def __post_init__(self) -> None:
        _check_pin(self.pin, self.bounce_ms)


class DoorSensor(StateInput):
    """``open`` True/False on change (and the state at start)."""

    name = "open"

    def __init__(self, spec: SensorSpec, ctx: SensorContext, options: DoorOptions,
                 make_factory: FactoryMaker, schedule: PulsePlan | None = None) -> None:
        # For the emulator "active" = door open = contact open = the pull level.
        super().__init__(spec, ctx, options.pin, options.pull_up, options.bounce_ms,
                         make_factory, schedule, active_low=not options.pull_up)
        self.options = options

    def value_of(self, active: bool) -> bool:
        return not active  # gpiozero "active" = contact closed = door shut


def _check_pin(pin: int, bounce_ms: int) -> None:
    if not 0 <= pin <= 27:
        raise ValueError("pin must be a BCM GPIO number 0..27")
    if bounce_ms < 0:
        raise ValueError("bounce_ms must be >= 0")


def _factory(ctx: SensorContext) -> FactoryMaker:
    return mock_pin_factory if ctx.hardware == "emulated" else real_pin_factory


def build_pir(spec: SensorSpec, options: PirOptions, ctx: SensorContext) -> Sensor:
    e = options.emulate
    plan = None
    if ctx.hardware == "emulated" and e.every_seconds is not None:
        plan = PulsePlan(every=e.every_seconds, duration=e.motion_seconds,
                         jitter=e.jitter_seconds, seed=e.seed)
    return PirSensor(spec, ctx, options, _factory(ctx), plan)


def build_door(spec: SensorSpec, options: DoorOptions, ctx: SensorContext) -> Sensor:
    e = options.emulate
    plan = None
    if ctx.hardware == "emulated" and e.every_seconds is not None:
        plan = PulsePlan(every=e.every_seconds, duration=e.open_seconds,
                         jitter=e.jitter_seconds, bounce_edges=2, seed=e.seed)
    return DoorSensor(spec, ctx, options, _factory(ctx), plan)


TYPES = (
    SensorType(
        name="pir",
        summary="PIR motion sensor on a GPIO pin: motion on change, optional counts",
        options=PirOptions,
        build=build_pir,
        default_channel=Channel.IT,
        default_priority=Priority.NORMAL,
    ),
    SensorType(
        name="door",
        summary="Door contact (reed switch) on a GPIO pin: open/closed on change",
        options=DoorOptions,
        build=build_door,
        default_channel=Channel.IT,
        default_priority=Priority.NORMAL,
    ),
)
