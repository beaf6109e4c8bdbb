"""The welfare service: escalation actions carried out on emulated hardware (buzzer pin,
modem emulator on a pty), acknowledgements, saved state across a restart."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge_agent.config.escalate import EscalateConfig, OutputConfig
from edge_agent.config.types import Duration, Token
from edge_agent.core.clock import ManualClock, SystemClock
from edge_agent.core.model import Channel, Priority, Reading
from edge_agent.daemon.welfare_service import WelfareService, WelfareSetup
from edge_agent.devices.modem.options import ModemEmulation, ModemOptions
from edge_agent.hal.emulated import EmulatedHardware
from edge_agent.security import events as secevents
from tests.device_helpers import build, device_hw, emulated

NUMBER = "+821011112222"


def escalate(**kw: Any) -> EscalateConfig:
    base: dict[str, Any] = dict(after=Duration(60), output=OutputConfig(pin=18),
                                modem=Token("modem"), numbers_file=Path("/x"),
                                sms_attempts=2, retry_every=Duration(10))
    base.update(kw)
    return EscalateConfig(**base)


@pytest.fixture
def modem() -> Iterator[Any]:
    """A gsm-modem sensor on its emulator, running (factory: emulation -> sensor)."""
    made: list[tuple[Any, threading.Event, threading.Thread, Any]] = []

    def make(emulation: ModemEmulation) -> Any:
        cm = emulated(SystemClock())
        ctx = cm.__enter__()
        sensor = build(ctx, "gsm-modem", ModemOptions(answer_timeout=5, emulate=emulation),
                       sensor_id="modem")
        stop = threading.Event()
        t = threading.Thread(target=sensor.run, args=(lambda b: None, stop), daemon=True)
        t.start()
        made.append((cm, stop, t, sensor))
        return sensor

    yield make
    for cm, stop, t, _ in made:
        stop.set()
        t.join(5)
        cm.__exit__(None, None, None)


def service(tmp_path: Path, clock: ManualClock, modem: Any, hw: Any,
            cfg: EscalateConfig | None = None) -> WelfareService:
    setup = WelfareSetup("namwon-01", "pi-0042", [], {}, cfg or escalate(), (NUMBER,))
    return WelfareService(setup, clock=clock, state_dir=tmp_path, pseudonym_key=b"k" * 32,
                          publish=lambda rs: True, hw=hw, modem=modem)


def button(t: float) -> Reading:
    return Reading("p-1/sos", Channel.IT, Priority.ALARM, "pressed", True, t)


def run_until(svc: WelfareService, cond: Any, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        svc.step()
        if cond():
            return
        time.sleep(0.02)
    raise AssertionError("condition not reached")


def test_undelivered_alarm_sounds_the_buzzer_and_texts_once(tmp_path: Path, modem: Any) -> None:
    clock = ManualClock(wall=1_800_000_000.0)
    hw = EmulatedHardware(clock)
    m = modem(ModemEmulation())
    svc = service(tmp_path, clock, m, hw)
    svc.start()
    try:
        pin = svc.indicator._factory.pin(18)  # type: ignore[union-attr]
        svc.alarms_accepted([(7, 7)], [button(clock.time())])
        clock.advance(59)
        svc.step()
        assert pin.state is False and device_hw(m).emulator.sent() == []
        clock.advance(1)
        svc.step()
        assert pin.state is True
        emu = device_hw(m).emulator
        run_until(svc, lambda: emu.sent())
        assert emu.sent() == [(NUMBER, "ALARM namwon-01 node pi-0042: emergency button. Platform "
                                       "unreachable; please check on the resident.")]
        run_until(svc, lambda: svc.health()["alarms"][0]["sms"]["**********222"]["sent"])
        clock.advance(30)
        svc.step()
        time.sleep(0.3)
        svc.step()
        assert len(emu.sent()) == 1  # once
        saved = json.loads((tmp_path / "escalation.json").read_bytes())
        assert saved["alarms"][0]["escalated_at"] == 1_800_000_060.0
    finally:
        svc.stop()
        hw.close()


def test_cms_error_is_retried_a_bounded_number_of_times(tmp_path: Path, modem: Any) -> None:
    secevents.EVENTS.reset()
    clock = ManualClock(wall=1_800_000_000.0)
    m = modem(ModemEmulation(cms_error=38))
    svc = service(tmp_path, clock, m, None)
    svc.alarms_accepted([(7, 7)], [button(clock.time())])
    clock.advance(60)
    emu = device_hw(m).emulator
    run_until(svc, lambda: emu.attempts == 1)
    run_until(svc, lambda: svc.health()["alarms"][0]["sms"]["**********222"]["last_error"])
    clock.advance(10)
    run_until(svc, lambda: emu.attempts == 2)
    run_until(svc, lambda: svc.health()["alarms"][0]["sms"]["**********222"]["failed"])
    clock.advance(100)
    svc.step()
    time.sleep(0.2)
    assert emu.attempts == 2 and emu.sent() == []
    counts = secevents.EVENTS.counts("it")
    assert counts["escalation.escalated"] == 1 and counts["escalation.sms_retry"] == 1
    assert counts["escalation.sms_failed"] == 1
    st = svc.health()["alarms"][0]["sms"]["**********222"]
    assert st == {"attempts": 2, "sent": False, "failed": True,
                  "last_error": "cms 38 at text"}


def test_delivered_alarm_does_not_escalate_and_ack_plays_help_is_coming(
        tmp_path: Path, modem: Any) -> None:
    clock = ManualClock(wall=1_800_000_000.0)
    hw = EmulatedHardware(clock)
    m = modem(ModemEmulation())
    svc = service(tmp_path, clock, m, hw)
    svc.start()
    try:
        svc.delivered(7, 7)  # the PUBACK may come before the writer reports the commit
        svc.alarms_accepted([(7, 7)], [button(clock.time())])
        svc.alarms_accepted([(9, 9)], [button(clock.time())])
        svc.step()
        clock.advance(61)
        svc.step()
        st = {a["seq"]: a for a in svc.health()["alarms"]}
        assert st[7]["escalated_at"] is None and st[9]["escalated_at"] is not None
        svc.ack_payload(b'{"seq": 9, "by": "care-centre"}')
        svc.ack_payload(b'{"seq": "x"}')
        svc.step()
        assert svc.health()["signal"] == "ack"
        assert {a["seq"]: a.get("time_to_ack") for a in svc.health()["alarms"]} == \
            {7: None, 9: 61.0}
        assert svc.acks_rejected == 1
    finally:
        svc.stop()
        hw.close()


def test_restart_mid_incident_keeps_the_clock(tmp_path: Path, modem: Any) -> None:
    clock = ManualClock(wall=1_800_000_000.0)
    svc = service(tmp_path, clock, None, None, escalate(output=OutputConfig(pin=18),
                                                        modem=None, numbers_file=None))
    svc.alarms_accepted([(7, 7)], [button(clock.time())])
    clock.advance(30)
    svc.step()
    svc.stop()
    svc2 = service(tmp_path, clock, None, None, escalate(modem=None, numbers_file=None))
    clock.advance(29)
    svc2.step()
    assert svc2.health()["alarms"][0]["escalated_at"] is None
    clock.advance(1)
    svc2.step()
    assert svc2.health()["alarms"][0]["escalated_at"] == 1_800_000_060.0
