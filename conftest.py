"""Settings every test tree shares (tests/, the device folders' tests, hil/tests)."""

from __future__ import annotations

from hypothesis import HealthCheck, settings

# Property tests assert what is decoded, never how fast: no per-example deadline (a loaded
# CI machine would fail them on time alone).
settings.register_profile("edge-agent", deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("edge-agent")
