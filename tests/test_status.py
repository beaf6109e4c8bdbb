"""`edge-agent status` against a running agent (real mosquitto), and the metrics textfile."""

from __future__ import annotations

import io
import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from pathlib import Path

import msgspec
import pytest

from edge_agent.core.mounts import on_volatile_fs
from edge_agent.daemon.health import (
    ChannelHealth,
    DeliveryHealth,
    IngestHealth,
    LastReading,
    NodeHealth,
    SensorHealth,
    StoreHealth,
    UplinkHealth,
    health_message,
)
from edge_agent.daemon.metrics import render
from edge_agent.daemon.status import (
    format_status,
    read_status,
    run_status,
    status_file,
    write_status,
)
from edge_agent.tools.consumer import Consumer
from edge_agent.tools.mosquitto import Mosquitto
from tests.conftest import start_agent, wait_for, write_site

SENSORS = ("  - {id: gen, type: load, channel: ot, rate: 50}\n"
           "  - {id: climate, type: sht31, channel: it, interval: 1s}\n")


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge_agent", *args], capture_output=True,
                          text=True, timeout=60, check=False)


def test_status_of_a_running_agent(tmp_path: Path, broker: Mosquitto) -> None:
    prom = tmp_path / "textfile" / "edge_agent.prom"
    prom.parent.mkdir()
    cfg = write_site(tmp_path, broker.url, broker.url, sensors=SENSORS)
    cfg.write_text(cfg.read_text() + f"metrics: {{textfile: {prom}, interval: 1s}}\n")
    consumer = Consumer("127.0.0.1", broker.port, "edge/test/n1/ot").start()
    p = start_agent(cfg, tmp_path / "agent.log")
    state = tmp_path / "state"
    try:
        assert wait_for(lambda: consumer.received().count() >= 50)

        def fresh() -> bool:
            doc = read_status(state)[1]
            if doc is None or "climate" not in doc.sensors:
                return False
            return (doc.channels["ot"].uplink.last_publish is not None
                    and doc.sensors["climate"].last is not None)

        assert wait_for(fresh)
        r = cli("status", "-c", str(cfg))
        assert r.returncode == 0, r.stderr
        out = r.stdout
        assert ": running" in out
        assert f"channel ot: connected to {broker.url}" in out
        assert "channel it: connected" in out
        assert "backlog:" in out and "oldest undelivered" in out and "last publish:" in out
        assert re.search(r"gen \[load\] ok: counter=\d+", out)
        # an IT sensor: when, never what (status.json is plaintext at rest)
        assert re.search(r"climate \[sht31\] ok: last reading \d+s ago \(value sealed", out)
        assert not re.search(r"climate \[sht31\] ok: \w+=", out)
        j = cli("status", "--json", "--state-dir", str(state))
        assert j.returncode == 0
        doc = json.loads(j.stdout)
        assert doc["verdict"] == "running" and doc["pid"] == p.pid
        assert doc["channels"]["ot"]["uplink"]["connected"] is True
        assert set(doc["channels"]["ot"]["store"]["backlog"]) == {"alarm", "normal", "bulk"}
        assert doc["channels"]["ot"]["uplink"]["published_readings"] > 0
        assert stat.S_IMODE((state / "status.json").stat().st_mode) == 0o600

        assert wait_for(prom.exists)
        text = prom.read_text()
        assert "# TYPE edge_agent_published_readings_total counter" in text
        assert re.search(r'edge_agent_backlog_readings\{channel="ot",lane="normal"\} \d+', text)
        assert re.search(r'edge_agent_sensor_readings_total\{channel="ot",sensor="gen"\} \d+',
                         text)
        assert stat.S_IMODE(prom.stat().st_mode) == 0o644
        assert not list(prom.parent.glob(".*tmp"))  # atomic: no leftovers
        # a textfile on a card-backed file system is named once in the log
        said = (tmp_path / "agent.log").read_text()
        assert (f"metrics textfile {prom} is not on a tmpfs" in said) \
            is (not on_volatile_fs(prom.parent))

        p.send_signal(signal.SIGTERM)
        assert p.wait(30) == 0
        r = cli("status", "-c", str(cfg))
        assert r.returncode == 3
        assert "NOT RUNNING: the daemon stopped cleanly" in r.stdout
        assert "edge_agent_up 0" in prom.read_text()
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        consumer.stop()


def test_killed_daemon_and_stale_file(tmp_path: Path, broker: Mosquitto) -> None:
    cfg = write_site(tmp_path, broker.url, sensors=SENSORS.splitlines()[0] + "\n")
    p = start_agent(cfg, tmp_path / "agent.log")
    state = tmp_path / "state"
    try:
        def connected() -> bool:
            v, d = read_status(state)
            return v == "running" and d is not None and d.channels["ot"].uplink.connected

        assert wait_for(connected)
        p.send_signal(signal.SIGKILL)
        p.wait(10)
        verdict, _ = read_status(state)
        assert verdict == "not-running"
        r = cli("status", "--state-dir", str(state))
        assert r.returncode == 3 and "the daemon that wrote this status is gone" in r.stdout
        # the file still says connected; a dead daemon is connected to nothing
        assert "channel ot: connected" not in r.stdout
        assert "channel ot: NOT CONNECTED (daemon not running; connected to" in r.stdout
        j = json.loads(cli("status", "--state-dir", str(state), "--json").stdout)
        assert j["channels"]["ot"]["uplink"]["connected"] is False
        assert j["channels"]["ot"]["uplink"]["connected_when_written"] is True
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    # a live pid (this process) that stopped writing: hung
    doc = read_status(state)[1]
    assert doc is not None
    write_status(state, msgspec.structs.replace(doc, pid=os.getpid(), time=time.time() - 60,
                                                interval=2.0))
    verdict, doc2 = read_status(state)
    assert verdict == "stale"
    buf = io.StringIO()
    assert doc2 is not None
    format_status(verdict, doc2, buf)
    assert "NOT RESPONDING" in buf.getvalue()


def test_no_status_file(tmp_path: Path) -> None:
    out, err = io.StringIO(), io.StringIO()
    assert run_status(tmp_path, False, out, err) == 3
    assert "not running" in err.getvalue()
    assert run_status(tmp_path, True, out, err) == 3
    assert json.loads(out.getvalue())["verdict"] == "missing"


def sample_node(now: float = 1_700_000_000.0) -> NodeHealth:
    """A node with both channels and a sensor on each, every figure distinct."""
    def channel(ch: str, base: int) -> ChannelHealth:
        return ChannelHealth(
            channel=ch,
            store=StoreHealth(next_seq=base + 1, backlog={"alarm": 0, "normal": 3, "bulk": 1},
                              backlog_total=4, bytes=base * 10, oldest_undelivered=now - 90,
                              evicted={"size": 7, "retention": 0},
                              evicted_ranges=[(1, 7, "size")], quarantined=1, dead_letters=2,
                              dead_dropped=1, dead_dropped_ranges=[(8, 9)],
                              quarantine_dropped=0, aside_bytes=512, accepted=base,
                              not_accepted=5),
            ingest=IngestHealth(dropped_alarms=1, displaced_readings=2),
            uplink=UplinkHealth(connected=ch == "ot", broker=f"mqtt://{ch}:1883",
                                brokers=[f"mqtt://{ch}:1883"], last_error="refused",
                                last_publish=now - 3, published_readings=base - 4,
                                published_messages=11, rejected_messages=2, connects=1,
                                connect_failures=3, inflight=4),
            delivery=DeliveryHealth(mqtt="5", confirm="puback", unconfirmed=0, holds=0,
                                    state="verified"),
            cert_expiry=30.5, security={"auth.failure": 2})

    return NodeHealth(
        time=now, site="s1", node="n1", hardware="emulated", state_dir="/var/lib/edge-agent",
        channels={"ot": channel("ot", 100), "it": channel("it", 200)},
        sensors={
            'we"ird': SensorHealth(type="load", channel="ot", alive=True, restarts=1,
                                   readings=4, errors={"timeout": 1}, last_error="timeout: x",
                                   last_error_kind="timeout", last_value_time=now - 1,
                                   dropped={}, last=LastReading(time=now - 1, name="counter",
                                                                value=41, unit=None)),
            "pulse": SensorHealth(type="max30102", channel="it", alive=False, restarts=0,
                                  readings=9, errors={}, last_error=None, last_error_kind=None,
                                  last_value_time=now - 2, dropped={"ir": 3},
                                  last=LastReading(time=now - 2, withheld=True))})


def test_one_model_three_renderings(tmp_path: Path) -> None:
    """Status file, metrics and health message render the same model; the status reader
    reads back exactly what was written."""
    node = sample_node(now=time.time())
    written = status_file(node, state="running", config=tmp_path / "site.yaml",
                          started_at=node.time - 60, interval=2.0)
    write_status(tmp_path, written)
    verdict, read = read_status(tmp_path, now=node.time)
    assert verdict == "running" and read == written
    assert msgspec.json.decode((tmp_path / "status.json").read_bytes())["channels"]["ot"][
        "store"]["bytes"] == 1000

    text = render(node)
    assert 'edge_agent_store_bytes{channel="ot"} 1000' in text
    assert 'edge_agent_backlog_readings{channel="it",lane="normal"} 3' in text
    assert 'edge_agent_oldest_undelivered_age_seconds{channel="ot"} 90' in text
    assert 'edge_agent_channel_connected{channel="it"} 0' in text
    assert 'edge_agent_sensor_dropped_total{channel="it",reading="ir",sensor="pulse"} 3' in text

    message = health_message(node, "it")
    as_status = msgspec.to_builtins(read.channels["it"])
    assert {k: v for k, v in message.items() if k != "sensors"} == as_status
    assert set(message["sensors"]) == {"pulse"}  # this channel's sensors only
    assert "last" not in message["sensors"]["pulse"]  # no reading in the clear, not even when
    assert message["store"]["bytes"] == 2000 and message["cert_expiry"] == 30.5

    out = io.StringIO()
    format_status(verdict, read, out, now=node.time)
    shown = out.getvalue()
    assert "channel ot: connected to mqtt://ot:1883" in shown
    assert "backlog: 4 readings (alarm 0, normal 3, bulk 1); oldest undelivered: 90s old" in shown
    assert 'we"ird [load] ok: counter=41 (1s ago); 4 readings, 1 restarts' in shown
    assert "pulse [max30102] DOWN: last reading 2s ago (value sealed: health data)" in shown


def test_a_status_file_of_another_format_is_reported_not_misread(tmp_path: Path) -> None:
    (tmp_path / "status.json").write_text(json.dumps({"format": 1, "pid": os.getpid()}))
    out, err = io.StringIO(), io.StringIO()
    assert run_status(tmp_path, False, out, err) == 4
    assert "written by another version" in err.getvalue()


def test_metrics_render_format() -> None:
    text = render(sample_node())
    line = re.compile(r'^[a-z_]+(\{([a-z_]+="([^"\\]|\\.)*",?)+\})? -?[0-9.e+]+$')
    helped: set[str] = set()
    for ln in text.splitlines():
        if ln.startswith("# HELP "):
            helped.add(ln.split()[2])
        elif ln.startswith("# TYPE "):
            assert ln.split()[2] in helped and ln.split()[3] in ("gauge", "counter")
        else:
            assert line.match(ln), ln
            assert ln.split("{")[0].split(" ")[0] in helped
    assert 'edge_agent_evicted_readings_total{channel="ot",reason="size"} 7' in text
    assert 'sensor="we\\"ird"' in text
    never = msgspec.structs.replace(sample_node().channels["ot"].uplink, last_publish=None)
    node = sample_node()
    node = msgspec.structs.replace(node, channels={
        "ot": msgspec.structs.replace(node.channels["ot"], uplink=never)})
    assert 'edge_agent_last_publish_timestamp_seconds{channel="ot"}' not in render(node)


def test_status_with_a_broken_config_falls_back_to_the_service_state_dir(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        capsys: pytest.CaptureFixture[str]) -> None:
    from edge_agent.cli import common
    from edge_agent.cli import main as cli

    bad = tmp_path / "site.yaml"
    bad.write_text("site: s1\nnode: [\n")
    monkeypatch.setattr(common, "DEFAULT_STATE_DIR", tmp_path / "absent")
    assert cli.main(["status", "-c", str(bad)]) == 2  # nowhere to look: say so
    assert "give --state-dir DIR" in capsys.readouterr().err
    monkeypatch.setattr(common, "DEFAULT_STATE_DIR", tmp_path)
    assert cli.main(["status", "-c", str(bad), "--json"]) == 3  # read it: no agent there
    out, err = capsys.readouterr()
    assert f"reading {tmp_path}" in err and "site.yaml:" in err
    assert json.loads(out)["verdict"] == "missing"


def test_it_error_texts_keep_the_fault_kind_and_lose_every_value() -> None:
    from edge_agent.core.model import Channel
    from edge_agent.security.redact import error_text, scrub

    assert scrub("heart_rate 231/min outside 30..220") == "heart_rate #/min outside #..#"
    assert scrub("object temperature -71.25 outside -70.0..380.0; PEC 0x3A != 0xFF, "
                 "state 'apnea', flag True, 1e3") == (
        "object temperature # outside #..#; PEC # != #, state #, flag #, #")
    assert scrub("no device at 0x57 on /dev/i2c-1") == "no device at # on /dev/i2c-#"
    text = "range: spo2 = 97.2 % is not plausible"
    assert error_text(Channel.IT, text) == "range: spo2 = # % is not plausible"
    assert error_text(Channel.OT, text) == text  # meter values are not health data
    assert error_text(Channel.IT, None) is None
