"""The platform's acknowledgement on ``<prefix>/alarm/ack`` over an MQTT 3.1.1 IT channel
(``mqtt_version: 3``: deliveries confirmed by echo, edge_agent/uplink/confirm.py), against a
real mosquitto with the per-identity ACL of docs/SECURITY.md: the node reads and writes its
data and alarm topics (echo) and only reads the ack topic; only the platform writes it."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import paho.mqtt.client as mqtt

from edge_agent.core.model import Channel
from edge_agent.security import events as secevents
from edge_agent.tools.mosquitto import Mosquitto, free_port
from tests.conftest import wait_for
from tests.test_escalation_e2e import PREFIX, Platform, alarms, modem_of, running, site

ACL = f"""user n1
topic readwrite {PREFIX}/data
topic readwrite {PREFIX}/alarm
topic write {PREFIX}/status
topic write {PREFIX}/health
topic read {PREFIX}/alarm/ack
topic readwrite edge/test/n1/ot/#
user platform
topic read edge/+/+/it/#
topic write edge/+/+/it/alarm/ack
user intruder
topic read edge/+/+/it/#
"""


def platform311(port: int, user: str) -> Platform:
    """The platform (or an intruder) on MQTT 3.1.1 with its own identity."""
    return Platform(port, user, protocol=mqtt.MQTTv311, password=True)


def test_ack_over_mqtt_3_1_1_stops_escalation_and_reports_time_to_ack(
        tmp_path: Path, broker_factory: Callable[..., Mosquitto]) -> None:
    pw = tmp_path / "passwd"
    pw.write_text("")
    for name in ("n1", "platform", "intruder"):
        subprocess.run(["mosquitto_passwd", "-b", str(pw), name, f"{name}-pw"], check=True)
    (tmp_path / "acl").write_text(ACL)
    (tmp_path / "n1.pw").write_text("n1-pw\n")
    (tmp_path / "n1.pw").chmod(0o600)
    ot = broker_factory()
    it = Mosquitto(tmp_path / "it-broker", port=free_port(), allow_anonymous=False,
                   extra=f"password_file {pw}\nacl_file {tmp_path / 'acl'}\n")  # down at first
    cfg = site(tmp_path, ot.url, it.url, modem_emulate="{ cms_error: 38 }",
               escalate="  sms_attempts: 10\n", retry_every="2s")
    text = cfg.read_text().replace(
        "    reconnect_min: 100ms\n",
        "    reconnect_min: 100ms\n    mqtt_version: 3\n    echo_timeout: 2s\n"
        f"    username: n1\n    password_file: {tmp_path / 'n1.pw'}\n", 1)
    assert "mqtt_version: 3" in text
    cfg.write_text(text)
    secevents.EVENTS.reset()
    with running(cfg) as agent:
        emu = modem_of(agent)
        assert wait_for(lambda: alarms(agent) and alarms(agent)[0]["escalated_at"], timeout=15)
        assert wait_for(lambda: emu.attempts >= 1, timeout=10)
        it.start()
        platform = platform311(it.port, "platform")
        intruder = platform311(it.port, "intruder")
        try:
            # delivered = echoed back through the broker (3.1.1 has no PUBACK reason codes);
            # the platform may have subscribed just after it went out: its seq is the node's
            assert wait_for(lambda: alarms(agent)[0]["delivered_at"], timeout=20)
            assert agent.uplinks[Channel.IT].delivery()["confirm"] == "echo"
            seq = alarms(agent)[0]["seq"]
            # a forged acknowledgement from an identity without write on the topic: the
            # broker drops it (3.1.1 acknowledges it anyway); the escalation goes on
            intruder.ack(seq, "intruder")
            time.sleep(1.0)
            assert "time_to_ack" not in alarms(agent)[0]
            platform.ack(seq, "care-centre")
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
            intruder.close()
            it.stop()

