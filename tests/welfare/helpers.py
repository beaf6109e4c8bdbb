"""A site with one resident and every kind of welfare sensor, and a rules driver."""

from __future__ import annotations

from pathlib import Path

from edge_agent.config import SiteConfig, parse_config
from edge_agent.devices.registry import SENSOR_TYPES
from edge_agent.welfare.engine import Welfare
from edge_agent.welfare.events import Observation, WelfareEvent
from edge_agent.welfare.replay import run

T0 = 1_750_000_000.0
H = 3600.0
M = 60.0

SITE = """\
site: test-01
node: pi-test
hardware: emulated
state_dir: /tmp/edge-agent-welfare-test
channels:
  ot: { brokers: ["mqtt://127.0.0.1:1883"], allow_insecure: true }
  it: { brokers: ["mqtt://127.0.0.1:1884"], allow_insecure: true, seal: { enabled: false } }
sensors:
  - { id: pir-hall, type: pir, pin: 27 }
  - { id: door-front, type: door, pin: 22 }
  - { id: radar-bed, type: mr60fda1, port: /dev/serial0 }
  - { id: pendant, type: mpu6050, bus: 1, activity_seconds: 25 }
  - { id: meter-main, type: dsmr-p1, port: /dev/ttyUSB0, channel: ot }
  - { id: climate-living, type: sht31, bus: 1 }
  - { id: sos-button, type: button, pin: 17 }
welfare:
  - subject: resident-1
    activity: [pir-hall, door-front, radar-bed, pendant, sos-button]
    meter: { sensor: meter-main, step_watts: 150 }
    inactivity: { caution: 8h, alarm: 12h, danger: 24h }
    fall: { confirm: 60s }
    away: { door: door-front, overdue: 12h }
    climate: { sensor: climate-living, heat: 33, cold: 10, for: 30m }
"""


def site(text: str = SITE) -> SiteConfig:
    return parse_config(text, "site.yaml", Path("/etc/edge-agent"), SENSOR_TYPES, {})


class Home:
    """Feeds readings at simulated times; timers fire at their deadlines in between."""

    def __init__(self, cfg: SiteConfig | None = None, state: bytes | None = None) -> None:
        self.cfg = cfg or site()
        self.types = {s.id: s.type for s in self.cfg.sensors}
        self.w = Welfare(self.cfg.welfare, self.types, state)
        self.events: list[WelfareEvent] = []

    def at(self, t: float, sensor: str, name: str, value: object,
           synced: bool = True) -> list[WelfareEvent]:
        obs = Observation(T0 + t, sensor, name, value, synced)  # type: ignore[arg-type]
        new = list(run(self.w, [obs]))
        self.events += new
        return new

    def until(self, t: float) -> list[WelfareEvent]:
        new = list(run(self.w, [], until=T0 + t))
        self.events += new
        return new

    def walk(self, t: float) -> list[WelfareEvent]:
        """The resident walks about wearing the pendant: activity confirmed up to ``t + 90``
        (the last piece, at ``t + 120``, confirms the one before it)."""
        return self.at(t, "pir-hall", "motion", True) \
            + self.at(t + 30, "pendant", "activity", 1.2) \
            + self.at(t + 90, "pir-hall", "motion", True) \
            + self.at(t + 120, "pendant", "activity", 1.2)

    def restart(self) -> None:
        """A reboot: the rules come back from their JSON state only."""
        self.w = Welfare(self.cfg.welfare, self.types, self.w.state_json())


def brief(events: list[WelfareEvent]) -> list[tuple[str, str, str]]:
    return [(e.kind, e.level, e.state) for e in events]
