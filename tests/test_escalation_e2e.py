"""Local escalation end to end: the agent (in this process, emulated hardware) against a
real mosquitto and the modem emulator on a pty.

IT broker unreachable -> after ``after`` the buzzer pin goes active and the modem emulator
receives exactly one SMS; ``+CMS ERROR`` is retried a bounded number of times, then
reported; a reachable broker -> no escalation; an acknowledgement on
``<prefix>/alarm/ack`` -> the "help is coming" pattern, no more SMS, time to acknowledge in
the health message; a restart mid-incident keeps the raised level and the escalation.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.config import load_config
from edge_agent.core.model import Channel
from edge_agent.daemon.runtime import Agent
from edge_agent.devices.registry import SENSOR_TYPES
from edge_agent.security import events as secevents
from edge_agent.tools.mosquitto import Mosquitto, free_port
from tests.conftest import wait_for, write_site
from tests.device_helpers import device_hw

NUMBER = "+821011112222"
PREFIX = "edge/test/n1/it"


def site(tmp_path: Path, ot: str, it: str, *, modem_emulate: str = "{}",
         escalate: str = "", button_first: str = "0.5", welfare: str = "",
         retry_every: str = "1s") -> Path:
    numbers = tmp_path / "numbers"
    numbers.write_text(f"# care centre\n{NUMBER}\n")
    numbers.chmod(0o600)
    sensors = (
        "  - { id: sos, type: button, pin: 17, subject: resident-1, emulate: "
        f"{{ first_after_seconds: {button_first}, press_every_seconds: 3600, "
        "jitter_seconds: 0, hold_probability: 0 } }\n"
        f"  - {{ id: modem, type: gsm-modem, port: /dev/ttyUSB2, answer_timeout: 5, "
        f"emulate: {modem_emulate} }}\n")
    cfg = write_site(tmp_path, ot, it, sensors=sensors,
                     extra_it="    reconnect_min: 100ms\n    reconnect_max: 500ms\n")
    text = cfg.read_text() + (
        f"escalate:\n  after: 5s\n  output: {{ pin: 18 }}\n  modem: modem\n"
        f"  numbers_file: {numbers}\n  retry_every: {retry_every}\n{escalate}") + welfare
    cfg.write_text(text)
    return cfg


@contextmanager
def running(cfg: Path) -> Iterator[Agent]:
    agent = Agent(load_config(cfg, SENSOR_TYPES), SENSOR_TYPES)
    agent.start()
    try:
        yield agent
    finally:
        agent.stop_event.set()
        agent.shutdown()


def modem_of(agent: Agent) -> Any:
    (runner,) = [r for r in agent.sensors if r.sensor.id == "modem"]
    return device_hw(runner.sensor).emulator


def buzzer(agent: Agent) -> Any:
    assert agent.welfare is not None and agent.welfare.indicator is not None
    return agent.welfare.indicator._factory.pin(18)


def alarms(agent: Agent) -> list[dict[str, Any]]:
    assert agent.welfare is not None
    h = agent.welfare.health()
    assert h is not None
    return list(h["alarms"])


def unreachable() -> str:
    return f"mqtt://127.0.0.1:{free_port()}"


def test_unreachable_it_broker_sounds_the_buzzer_and_sends_one_sms(
        tmp_path: Path, broker: Mosquitto) -> None:
    with running(site(tmp_path, broker.url, unreachable())) as agent:
        emu = modem_of(agent)
        assert wait_for(lambda: len(alarms(agent)) == 1, timeout=10)
        assert buzzer(agent).state is False and emu.sent() == []  # not before `after`
        assert wait_for(lambda: buzzer(agent).state is True
                        or agent.welfare.indicator.active, timeout=15)  # type: ignore[union-attr]
        assert wait_for(lambda: emu.sent(), timeout=15)
        time.sleep(2.5)  # more than two retry periods: nothing more goes out
        assert emu.sent() == [(NUMBER, "ALARM test node n1: emergency button. Platform "
                                       "unreachable; "
                                       "please check on the resident.")]
        (a,) = alarms(agent)
        assert a["escalated_at"] - a["raised_at"] >= 5.0
        assert a["sms"]["**********222"]["sent"] is True
        assert agent.health(Channel.IT)["escalation"]["signal"] == "alarm"


def test_cms_error_is_retried_a_bounded_number_of_times_then_reported(
        tmp_path: Path, broker: Mosquitto) -> None:
    secevents.EVENTS.reset()
    cfg = site(tmp_path, broker.url, unreachable(), modem_emulate="{ cms_error: 38 }",
               escalate="  sms_attempts: 3\n")
    with running(cfg) as agent:
        emu = modem_of(agent)
        assert wait_for(lambda: alarms(agent) and alarms(agent)[0].get("sms", {}).get(
            "**********222", {}).get("failed"), timeout=30)
        time.sleep(2.5)
        assert emu.attempts == 3 and emu.sent() == []
        st = alarms(agent)[0]["sms"]["**********222"]
        assert st == {"attempts": 3, "sent": False, "failed": True,
                      "last_error": "cms 38 at text"}
        counts = secevents.EVENTS.counts("it")
        assert counts["escalation.sms_retry"] == 2 and counts["escalation.sms_failed"] == 1
        assert counts["escalation.escalated"] == 1


def test_reachable_broker_means_no_escalation(tmp_path: Path,
                                               broker_factory: Callable[..., Mosquitto]) -> None:
    ot, it = broker_factory(), broker_factory()
    with running(site(tmp_path, ot.url, it.url)) as agent:
        emu = modem_of(agent)
        assert wait_for(lambda: alarms(agent) and alarms(agent)[0]["delivered_at"], timeout=15)
        time.sleep(6.5)  # past `after`
        (a,) = alarms(agent)
        assert a["escalated_at"] is None and "sms" not in a
        assert buzzer(agent).state is False and emu.sent() == [] and emu.commands == []


class Platform:
    """A subscriber on the IT prefix that can acknowledge alarms (MQTT 5 by default; on
    MQTT 3.1.1 with a username, as the platform or an intruder with its own identity)."""

    def __init__(self, port: int, user: str = "platform",
                 protocol: int = mqtt.MQTTv5, password: bool = False) -> None:
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self.c = mqtt.Client(CallbackAPIVersion.VERSION2, client_id=user, protocol=protocol)
        if password:
            self.c.username_pw_set(user, f"{user}-pw")
        self.c.on_message = self._msg
        self.c.connect("127.0.0.1", port)
        self.c.subscribe(f"{PREFIX}/#", qos=1)
        self.c.loop_start()

    def _msg(self, c: Any, u: Any, m: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append((m.topic, json.loads(m.payload)))

    def on(self, suffix: str) -> list[dict[str, Any]]:
        with self._lock:
            return [p for t, p in self.messages if t == f"{PREFIX}/{suffix}"]

    def acked_alarm(self) -> dict[str, Any] | None:
        """The newest alarm the health messages report as acknowledged (None yet)."""
        acked = [a for h in self.on("health") for a in h.get("escalation", {}).get("alarms", [])
                 if "time_to_ack" in a]
        return acked[-1] if acked else None

    def ack(self, seq: int, by: str = "care-centre") -> None:
        self.c.publish(f"{PREFIX}/alarm/ack", json.dumps({"seq": seq, "by": by}),
                       qos=1).wait_for_publish(5)

    def close(self) -> None:
        self.c.disconnect()
        self.c.loop_stop()
        self.c.on_message = None  # no cycle: paho closes its socket pair when freed


def test_ack_plays_help_is_coming_stops_escalation_and_reports_time_to_ack(
        tmp_path: Path, broker_factory: Callable[..., Mosquitto]) -> None:
    ot = broker_factory()
    it = Mosquitto(tmp_path / "it-broker", port=free_port())  # down at first
    cfg = site(tmp_path, ot.url, it.url, modem_emulate="{ cms_error: 38 }",
               escalate="  sms_attempts: 10\n", retry_every="2s")
    with running(cfg) as agent:
        emu = modem_of(agent)
        assert wait_for(lambda: alarms(agent) and alarms(agent)[0]["escalated_at"], timeout=15)
        assert wait_for(lambda: emu.attempts >= 1, timeout=10)
        it.start()
        platform = Platform(it.port)
        try:
            # the alarm goes out once the broker is back (the platform may have subscribed
            # just after it: its seq is the node's alarm seq)
            assert wait_for(lambda: alarms(agent)[0]["delivered_at"], timeout=20)
            seq = alarms(agent)[0]["seq"]
            platform.ack(seq)
            assert wait_for(lambda: "time_to_ack" in alarms(agent)[0], timeout=10)
            assert agent.welfare is not None and agent.welfare.health()["signal"] == "ack"
            tried = emu.attempts
            time.sleep(4.5)  # two retry periods: no more attempts after the ack
            assert emu.attempts == tried
            assert wait_for(lambda: platform.acked_alarm() is not None, timeout=10)
            h_alarm = platform.acked_alarm()
            assert h_alarm is not None
            assert h_alarm["seq"] == seq and h_alarm["acked_by"] == "care-centre"
            assert h_alarm["time_to_ack"] >= 5.0
        finally:
            platform.close()
            it.stop()


def test_restart_mid_incident_keeps_the_raised_level(tmp_path: Path,
                                                      broker: Mosquitto) -> None:
    welfare = ("welfare:\n  - subject: resident-1\n    activity: [sos]\n"
               "    inactivity: { caution: 1s, alarm: 2s, danger: 1h }\n")
    cfg = site(tmp_path, broker.url, unreachable(), button_first="null", welfare=welfare)
    with running(cfg) as agent:
        emu = modem_of(agent)
        assert wait_for(lambda: emu.sent(), timeout=20)  # welfare alarm -> escalated -> SMS
        assert agent.welfare is not None
        before = agent.welfare.status()
        (a,) = alarms(agent)
        assert a["kind"] == "inactivity"
    (raised,) = before["raised"].values()
    assert "inactivity/alarm" in raised
    with running(cfg) as agent2:
        emu2 = modem_of(agent2)
        time.sleep(3)
        assert agent2.welfare is not None
        after = agent2.welfare.status()
        assert list(after["raised"].values()) == [raised]  # not forgotten, not raised again
        assert agent2.welfare.events_published == 0
        (a2,) = alarms(agent2)
        assert a2["escalated_at"] == a["escalated_at"]  # the clock was not restarted
        assert emu2.sent() == [] and emu2.commands == []  # escalated once, not twice
