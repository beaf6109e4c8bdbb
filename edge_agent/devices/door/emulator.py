"""The emulated door: shut (reed switch closed) between openings, contacts bounce.

For the emulator "active" is the door open: the contact opens and the pin goes to its pull
level (high with the usual pull-up).
"""

from __future__ import annotations

from edge_agent.core.clock import Clock
from edge_agent.devices.door.options import DoorOptions
from edge_agent.hal.emulated.gpio import InputEmulation, PulsePlan


def emulate(options: DoorOptions, clock: Clock) -> InputEmulation:
    e = options.emulate
    plan = None
    if e.every_seconds is not None:
        plan = PulsePlan(every=e.every_seconds, duration=e.open_seconds,
                         jitter=e.jitter_seconds, bounce_edges=2, seed=e.seed)
    return InputEmulation(options.pin, active_low=not options.pull_up, plan=plan)
