"""The emulated emergency button: presses with contact bounce, some held past ``hold_seconds``.

The pin rests released; the presses come from hal.emulated.gpio's PulseSchedule on the pin
of the EmulatedPinFactory the driver gets from ``ctx.hw.pin_factory()``.
"""

from __future__ import annotations

from edge_agent.core.clock import Clock
from edge_agent.devices.button.options import ButtonOptions
from edge_agent.hal.emulated.gpio import InputEmulation, PulsePlan


def emulate(options: ButtonOptions, clock: Clock) -> InputEmulation:
    """A button to GND with the pull-up (active low), or to 3V3 with a pull-down."""
    e = options.emulate
    plan = None
    if e.press_every_seconds is not None:
        plan = PulsePlan(every=e.press_every_seconds, duration=e.press_seconds,
                         jitter=e.jitter_seconds, first_after=e.first_after_seconds,
                         long_probability=e.hold_probability,
                         long_duration=options.hold_seconds + 0.5,
                         bounce_edges=e.bounce_edges, seed=e.seed)
    return InputEmulation(options.pin, active_low=options.pull_up, plan=plan)
