"""The emulated PIR: a motion episode every so often (the module's output goes high)."""

from __future__ import annotations

from edge_agent.core.clock import Clock
from edge_agent.devices.pir.options import PirOptions
from edge_agent.hal.emulated.gpio import InputEmulation, PulsePlan


def emulate(options: PirOptions, clock: Clock) -> InputEmulation:
    """Motion = the active level (high, unless the entry says ``pull_up: true``)."""
    e = options.emulate
    plan = None
    if e.every_seconds is not None:
        plan = PulsePlan(every=e.every_seconds, duration=e.motion_seconds,
                         jitter=e.jitter_seconds, seed=e.seed)
    return InputEmulation(options.pin, active_low=options.pull_up, plan=plan)
