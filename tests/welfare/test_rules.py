"""The welfare rules on a simulated clock: readings in, events out."""

from __future__ import annotations

import msgspec
import pytest

from edge_agent.welfare.engine import Welfare
from edge_agent.welfare.events import Observation
from edge_agent.welfare.evidence import PowerSteps
from edge_agent.welfare.rules import WelfareStateError

from .helpers import SITE, T0, H, Home, M, brief, site


def test_inactivity_graded_raised_once_per_level_and_resolved() -> None:
    home = Home()
    home.walk(0)  # corroborated at 90 s
    assert home.until(8 * H + 89) == []
    (ev,) = home.until(8 * H + 90)
    assert (ev.kind, ev.level, ev.state) == ("inactivity", "caution", "raised")
    assert ev.t == T0 + 8 * H + 90 and ev.since == T0 + 90
    assert ev.evidence["pir-hall"] == T0 + 90 and ev.subject == "resident-1"
    assert brief(home.until(30 * H)) == [("inactivity", "alarm", "raised"),
                                         ("inactivity", "danger", "raised")]
    assert [e.t - T0 for e in home.events[1:]] == [12 * H + 90, 24 * H + 90]
    assert home.until(40 * H) == []  # each level once
    back = home.walk(41 * H)  # after a long quiet the third piece confirms (at + 90)
    assert brief(back) == [("inactivity", "danger", "resolved"),
                           ("inactivity", "alarm", "resolved"),
                           ("inactivity", "caution", "resolved")]
    assert all(e.since == T0 + 90 and e.t == T0 + 41 * H + 90 for e in back)


def test_timers_advance_on_tick_without_readings() -> None:
    home = Home()
    home.walk(0)
    assert home.w.tick(T0 + 8 * H) == []
    (ev,) = home.w.tick(T0 + 9 * H)
    assert (ev.level, ev.t) == ("caution", T0 + 9 * H)
    assert home.w.tick(T0 + 9 * H) == []


def test_a_lone_reading_does_not_restart_the_clock_but_two_sensors_do() -> None:
    """Activity counts when corroborated; the clock moves to the piece confirmed."""
    home = Home()
    home.walk(0)
    home.at(4 * H, "pir-hall", "motion", True)  # noise: nothing else within 15 minutes
    assert brief(home.until(8 * H + 90)) == [("inactivity", "caution", "raised")]
    home2 = Home()
    home2.walk(0)
    home2.at(2 * H, "pir-hall", "motion", True)
    home2.at(2 * H + 300, "pendant", "activity", 1.4)  # the pendant agrees: 2 h confirmed
    assert home2.until(10 * H - 1) == []
    assert brief(home2.until(10 * H)) == [("inactivity", "caution", "raised")]


def test_button_press_counts_alone() -> None:
    home = Home()
    home.walk(0)
    home.until(9 * H)
    assert brief(home.at(9 * H + 5, "sos-button", "pressed", True)) == [
        ("inactivity", "caution", "resolved")]


def test_fall_without_recovery_is_an_alarm_at_confirm() -> None:
    home = Home()
    home.walk(0)
    home.at(1000, "radar-bed", "presence", True)
    home.at(1010, "radar-bed", "fall", True)
    home.at(1012, "radar-bed", "motion", "moving")  # the fall itself, not a recovery
    for k in range(1, 6):
        home.at(1010 + 10 * k, "radar-bed", "body_movement", 3)  # lying still, breathing
    (ev,) = home.until(1010 + 60)
    assert (ev.kind, ev.level, ev.state, ev.since, ev.t) == (
        "fall", "alarm", "raised", T0 + 1010, T0 + 1070)
    assert home.until(3000) == []
    assert brief(home.walk(3000)) == [("fall", "alarm", "resolved")]


def test_fall_followed_by_activity_within_confirm_is_normal() -> None:
    home = Home()
    home.walk(0)
    home.at(1000, "radar-bed", "presence", True)
    home.at(1010, "radar-bed", "fall", True)
    home.at(1040, "radar-bed", "body_movement", 60)  # gets up
    assert home.until(2000) == []
    assert home.w.subjects[0].s.falls_recovered == 1


def test_first_accelerometer_mean_after_a_fall_is_not_a_recovery() -> None:
    home = Home()
    home.walk(0)
    home.at(1010, "pendant", "fall", True)
    home.at(1025, "pendant", "activity", 2.8)  # holds the impact
    home.at(1050, "pendant", "activity", 0.1)  # lying still
    assert brief(home.until(1070)) == [("fall", "alarm", "raised")]
    ok = Home()
    ok.walk(0)
    ok.at(1010, "pendant", "fall", True)
    ok.at(1025, "pendant", "activity", 2.8)
    ok.at(1050, "pendant", "activity", 1.3)  # up and walking
    assert ok.until(2000) == []


def test_door_then_nobody_home_is_away_not_inactive() -> None:
    home = Home()
    home.walk(0)
    home.at(200, "door-front", "open", True)
    home.at(205, "door-front", "open", False)
    assert home.until(12 * H + 199) == []  # no inactivity while out
    (ev,) = home.until(12 * H + 200)
    assert (ev.kind, ev.level, ev.state, ev.since) == (
        "away_overdue", "caution", "raised", T0 + 200)
    home.at(13 * H, "door-front", "open", True)
    home.at(13 * H + 8, "door-front", "open", False)
    home.at(13 * H + 20, "pir-hall", "motion", True)  # a pair (door, PIR) after a long quiet
    back = home.at(13 * H + 60, "pendant", "activity", 1.2)  # ... followed by more
    assert brief(back) == [("away_overdue", "caution", "resolved")]
    # the inactivity clock restarted on return (at the PIR, confirmed by the pendant)
    assert home.until(13 * H + 20 + 8 * H - 1) == []
    assert brief(home.until(13 * H + 20 + 8 * H)) == [("inactivity", "caution", "raised")]


def test_back_within_overdue_raises_nothing() -> None:
    home = Home()
    home.walk(0)
    home.at(200, "door-front", "open", True)
    home.at(205, "door-front", "open", False)
    home.at(10 * H, "door-front", "open", True)
    home.at(10 * H + 15, "pir-hall", "motion", True)
    home.walk(10 * H + 600)
    assert home.until(10 * H + 600 + 8 * H + 89) == []


def test_door_then_activity_inside_is_not_away() -> None:
    home = Home()
    home.walk(0)
    home.at(200, "door-front", "open", True)  # fetches the newspaper
    home.at(210, "door-front", "open", False)
    home.at(600, "pir-hall", "motion", True)
    home.at(700, "pendant", "activity", 1.1)
    assert brief(home.until(700 + 8 * H)) == [("inactivity", "caution", "raised")]
    assert home.w.subjects[0].s.away_since is None


def test_climate_sustained_for_raises_and_resolves() -> None:
    home = Home()
    home.walk(0)
    home.at(1000, "climate-living", "temperature", 32.0)
    for k in range(1, 9):  # 34 from 1300 s on: crossed 33 at 1150 (interpolated)
        home.at(1000 + 300 * k, "climate-living", "temperature", 34.0)
    raised = [e for e in home.events if e.kind == "climate"]
    assert brief(raised) == [("climate", "alarm", "raised")]
    assert raised[0].t == T0 + 1150 + 1800 and raised[0].value == 34.0
    assert brief(home.at(4000, "climate-living", "temperature", 32.4)) == [
        ("climate", "alarm", "resolved")]


def test_climate_short_spike_and_silent_sensor_raise_nothing() -> None:
    home = Home()
    home.walk(0)
    for k in range(5):
        home.at(1000 + 300 * k, "climate-living", "temperature", 34.0)
    home.at(2500, "climate-living", "temperature", 32.9)  # dips before 30 minutes
    home.at(2800, "climate-living", "temperature", 9.0)  # one cold reading, then silence
    assert [e for e in home.until(2 * H) if e.kind == "climate"] == []


def test_fridge_cycling_is_not_activity() -> None:
    home = Home()
    home.walk(0)
    # a freezer compressor stepping 160 W every 12 minutes (on 5 min) for 10 hours
    for k in range(10 * 60):
        t = 200 + 60 * k
        on = (t - 200) % 720 < 300
        home.at(t, "meter-main", "power_import", 80 + (160 if on else 0))
    raised = [e for e in home.events if e.state == "raised"]
    assert brief(raised) == [("inactivity", "caution", "raised")]
    assert raised[0].since < T0 + 4 * 720


def test_appliance_switched_on_counts_as_activity() -> None:
    home = Home()
    home.walk(0)
    home.at(2 * H, "meter-main", "power_import", 90)
    home.at(2 * H + 60, "meter-main", "power_import", 1900)  # kettle
    home.at(2 * H + 240, "meter-main", "power_import", 90)
    home.at(2 * H + 300, "pir-hall", "motion", True)
    assert home.until(10 * H + 59) == []  # the kettle was confirmed: the clock is at it
    assert home.until(10 * H + 60)[0].since == T0 + 2 * H + 60
    assert home.w.subjects[0].s.seen["meter-main"] == T0 + 2 * H + 60


def test_power_steps_tell_cycles_from_people() -> None:
    p = PowerSteps()
    human = []
    # a defrost heater (250 W) every 8 h with jitter, an electric mat (200 W) every 30 min
    # at night, and a kettle at irregular times
    events: list[tuple[float, float, float, str]] = []
    for k in range(8):
        events.append((k * 8 * H + (k % 3) * 600, 250.0, 1200, "defrost"))
    for k in range(16):
        events.append((22 * H + k * 1800 + (k % 4) * 60, 200.0, 600, "mat"))
    for t in (7.2 * H, 12.6 * H, 19.1 * H, 31.9 * H, 36.0 * H, 42.1 * H):
        events.append((t, 1800.0, 180, "kettle"))
    base = 80.0
    timeline: list[tuple[float, float]] = []
    for t, w, dur, _ in events:
        timeline += [(t, w), (t + dur, -w)]
    timeline.sort()
    load = 0.0
    labels = {t: name for t, _, _, name in events}
    for t, dw in timeline:
        p.feed(t - 1, base + load, 150)
        load += dw
        if p.feed(t, base + load, 150):
            human.append(labels[t])
    assert human.count("kettle") == 6
    assert human.count("defrost") <= 3 and human.count("mat") <= 3
    assert p.automatic == 8 + 16 - human.count("defrost") - human.count("mat")


def test_unsynced_readings_never_drive_a_rule() -> None:
    home = Home()
    home.walk(0)
    for k in range(20):  # a reboot without a clock: readings stamped 1970 and marked
        home.at(5 * H + k * 30, "pir-hall", "motion", True, synced=False)
        home.at(5 * H + k * 30 + 1, "radar-bed", "fall", True, synced=False)
    home.w.feed(Observation(120.0, "pir-hall", "motion", True))  # 1970, unmarked
    assert brief(home.until(8 * H + 90)) == [("inactivity", "caution", "raised")]
    assert home.w.subjects[0].s.unsynced == 41
    assert home.w.subjects[0].s.fall_at is None


def test_unsynced_far_future_reading_does_not_move_the_clock() -> None:
    home = Home()
    home.walk(0)
    assert home.at(100 * H, "pir-hall", "motion", True, synced=False) == []
    assert home.w.next_deadline() == T0 + 90 + 8 * H


def test_state_round_trip_mid_inactivity_keeps_raised_and_clock() -> None:
    home = Home()
    home.walk(0)
    home.until(7 * H)
    home.restart()  # the clock is not restarted by a reboot
    assert brief(home.until(8 * H + 90)) == [("inactivity", "caution", "raised")]
    home.restart()  # a raised level is not forgotten (nor raised twice)
    assert brief(home.until(12 * H + 90)) == [("inactivity", "alarm", "raised")]
    home.restart()
    assert brief(home.walk(13 * H)) == [("inactivity", "alarm", "resolved"),
                                        ("inactivity", "caution", "resolved")]


def test_state_round_trip_mid_fall_and_away() -> None:
    home = Home()
    home.walk(0)
    home.at(1000, "radar-bed", "presence", True)
    home.at(1010, "radar-bed", "fall", True)
    home.restart()
    assert brief(home.until(1070)) == [("fall", "alarm", "raised")]
    home.walk(2000)
    home.at(3000, "door-front", "open", True)
    home.at(3005, "door-front", "open", False)
    home.until(5000)
    home.restart()
    assert home.w.subjects[0].s.away_since == T0 + 3000
    assert brief(home.until(3000 + 12 * H)) == [("away_overdue", "caution", "raised")]


def test_state_json_is_plain_json() -> None:
    home = Home()
    home.walk(0)
    home.until(9 * H)
    doc = msgspec.json.decode(home.w.state_json())
    assert doc["subjects"]["resident-1"]["raised"] == {"inactivity/caution": T0 + 90}


def test_corrupt_state_is_a_clear_error() -> None:
    home = Home()
    with pytest.raises(WelfareStateError, match="unreadable"):
        Welfare(home.cfg.welfare, home.types, b"{not json")
    with pytest.raises(WelfareStateError, match="unreadable"):
        Welfare(home.cfg.welfare, home.types,
                b'{"subjects": {"resident-1": {"raised": "x"}}}')
    with pytest.raises(WelfareStateError, match="version"):
        Welfare(home.cfg.welfare, home.types,
                b'{"subjects": {"resident-1": {"version": 99}}}')


def test_readings_from_other_sensors_are_ignored() -> None:
    home = Home()
    home.walk(0)
    home.at(4 * H, "unknown", "motion", True)
    home.at(4 * H + 60, "unknown", "motion", True)
    assert brief(home.until(8 * H + 90)) == [("inactivity", "caution", "raised")]
    assert M == 60.0


def test_observation_from_a_reading_marks_an_unset_clock() -> None:
    from edge_agent.core.model import Channel, Priority, Reading

    r = Reading("pir-hall", Channel.IT, Priority.NORMAL, "motion", True, 120.0)
    assert Observation.from_reading(r) == Observation(120.0, "pir-hall", "motion", True, False)
    r2 = Reading("pir-hall", Channel.IT, Priority.NORMAL, "motion", True, T0)
    assert Observation.from_reading(r2).synced


def test_radar_movement_counts_only_while_it_sees_someone() -> None:
    home = Home()
    home.walk(0)
    home.at(2 * H, "radar-bed", "presence", False)
    home.at(2 * H + 10, "radar-bed", "body_movement", 35)  # clutter in an empty room
    home.at(2 * H + 200, "radar-bed", "motion", "moving")
    assert brief(home.until(8 * H + 90)) == [("inactivity", "caution", "raised")]
    home.at(9 * H, "radar-bed", "presence", True)
    home.at(9 * H + 30, "radar-bed", "body_movement", 35)
    # raised: the two pendant readings alone are one sensor; with the radar they resolve
    assert home.at(9 * H + 200, "pendant", "activity", 0.9) == []  # long quiet: a third
    assert brief(home.at(9 * H + 260, "pendant", "activity", 0.9)) == [
        ("inactivity", "caution", "resolved")]


def test_a_raised_level_is_not_resolved_by_one_sensors_pair_alone() -> None:
    home = Home()
    home.walk(0)
    home.at(1000, "radar-bed", "presence", True)
    home.until(9 * H)  # caution raised; the resident lies in the bedroom
    home.at(9 * H, "radar-bed", "body_movement", 33)  # two clutter blips from the radar
    assert home.at(9 * H + 400, "radar-bed", "body_movement", 30) == []
    # a pair followed by another piece is a sleeper turning over, even from one sensor
    # (at night only the bed radar sees the resident: a false caution must not become
    # an alarm for want of a second sensor)
    assert brief(home.at(9 * H + 1400, "radar-bed", "body_movement", 40)) == [
        ("inactivity", "caution", "resolved")]
    assert home.w.subjects[0].s.last_activity == T0 + 9 * H + 400


def test_radar_movement_right_after_a_presence_dropout_still_counts() -> None:
    home = Home()
    home.walk(0)
    home.until(9 * H)
    home.at(9 * H, "radar-bed", "presence", True)
    home.at(9 * H + 5, "radar-bed", "presence", False)  # the radar loses a still target
    home.at(9 * H + 100, "radar-bed", "body_movement", 45)  # ... who then turns over
    home.at(9 * H + 200, "pendant", "activity", 0.9)
    assert brief(home.at(9 * H + 260, "pendant", "activity", 0.9)) == [
        ("inactivity", "caution", "resolved")]


def collapsed_in_bedroom(home: Home) -> None:
    """Last seen walking at 0, lies still in the bedroom: the radar sees someone there
    (its presence holds until it reports nobody)."""
    home.walk(0)
    home.at(600, "radar-bed", "presence", True)


def test_after_a_long_quiet_a_pair_of_noise_readings_does_not_restart_the_clock() -> None:
    """Two radar clutter blips 7 minutes apart 5 h into a collapse: a pair, but nothing
    follows it, so the caution comes on time."""
    home = Home()
    collapsed_in_bedroom(home)
    home.at(5 * H + 10, "radar-bed", "body_movement", 32)
    home.at(5 * H + 430, "radar-bed", "body_movement", 39)
    assert brief(home.until(8 * H + 90)) == [("inactivity", "caution", "raised")]
    assert home.events[-1].since == T0 + 90


def test_after_a_long_quiet_a_pair_followed_within_follow_counts() -> None:
    """A sleeper who turns over twice and again half an hour later is alive: the clock
    moves to the second turn (the newest piece before the one that confirmed it)."""
    home = Home()
    collapsed_in_bedroom(home)
    home.at(5 * H + 10, "radar-bed", "body_movement", 32)
    home.at(5 * H + 430, "radar-bed", "body_movement", 39)
    home.at(5 * H + 430 + 1800, "radar-bed", "body_movement", 45)
    assert home.until(5 * H + 430 + 8 * H - 1) == []
    (ev,) = home.until(5 * H + 430 + 8 * H)
    assert (ev.level, ev.since) == ("caution", T0 + 5 * H + 430)
    late = Home()  # the third piece more than `follow` after the pair: still nothing
    collapsed_in_bedroom(late)
    late.at(5 * H + 10, "radar-bed", "body_movement", 32)
    late.at(5 * H + 430, "radar-bed", "body_movement", 39)
    late.at(5 * H + 430 + 90 * M + 60, "radar-bed", "body_movement", 45)
    assert brief(late.until(8 * H + 90)) == [("inactivity", "caution", "raised")]


def test_within_quiet_a_pair_still_counts() -> None:
    home = Home()
    collapsed_in_bedroom(home)
    home.at(2 * H, "radar-bed", "body_movement", 32)
    home.at(2 * H + 420, "radar-bed", "body_movement", 39)  # 2 h after the walk: enough
    assert home.until(10 * H - 1) == []
    assert home.until(10 * H)[0].since == T0 + 2 * H


def test_quiet_and_follow_come_from_the_site() -> None:
    text = SITE.replace("for: 30m }\n", "for: 30m }\n    corroborate: { quiet: 6h }\n")
    home = Home(site(text))
    collapsed_in_bedroom(home)
    home.at(5 * H + 10, "radar-bed", "body_movement", 32)
    home.at(5 * H + 430, "radar-bed", "body_movement", 39)  # within 6 h: a pair counts
    assert home.until(13 * H) == []


def test_restart_mid_collapse_keeps_the_clock_and_the_pending_pair() -> None:
    """The pieces seen so far are part of the saved state: a reboot between a pair and
    its third piece neither loses the pair nor restarts the inactivity clock."""
    home = Home()
    collapsed_in_bedroom(home)
    home.at(5 * H + 10, "radar-bed", "body_movement", 32)
    home.at(5 * H + 430, "radar-bed", "body_movement", 39)
    home.restart()
    assert home.w.next_deadline() == T0 + 90 + 8 * H  # the clock of the last walk
    assert brief(home.until(8 * H + 90)) == [("inactivity", "caution", "raised")]
    home.restart()
    home.at(8 * H + 600, "radar-bed", "body_movement", 35)
    home.restart()
    home.at(8 * H + 900, "pendant", "activity", 1.1)  # the pair: radar and pendant
    assert home.events[-1].state == "raised"  # a pair, but after a long quiet
    home.restart()
    assert brief(home.at(8 * H + 1500, "pendant", "activity", 1.3)) == [
        ("inactivity", "caution", "resolved")]
    assert home.w.subjects[0].s.last_activity == T0 + 8 * H + 900


def test_a_return_home_after_a_long_outing_is_a_pair_and_more() -> None:
    home = Home()
    home.walk(0)
    home.at(200, "door-front", "open", True)
    home.at(205, "door-front", "open", False)
    home.until(6 * H)
    home.at(6 * H, "door-front", "open", True)
    home.at(6 * H + 8, "door-front", "open", False)
    home.at(6 * H + 20, "pir-hall", "motion", True)
    home.at(6 * H + 300, "pir-hall", "motion", True)  # walks on: the return counts
    assert home.w.subjects[0].s.away_since is None
    assert home.w.subjects[0].s.last_activity == T0 + 6 * H + 20
