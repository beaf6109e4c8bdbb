"""SIGHUP reload of `edge-agent run`: a valid file applies without losing buffered data;
an invalid one is rejected with FILE:LINE errors and the running pipeline goes on."""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Callable
from pathlib import Path

import msgspec

from edge_agent.daemon.status import read_status
from edge_agent.tools.consumer import Consumer
from edge_agent.tools.mosquitto import Mosquitto, free_port
from tests.conftest import start_agent, wait_for, write_site

LOAD = "  - {id: gen, type: load, channel: ot, rate: 100}\n"


def status(cfg: Path) -> dict[str, object]:
    """The status file as the status reader reads it (empty while there is none)."""
    doc = read_status(cfg.parent / "state")[1]
    return {} if doc is None else msgspec.to_builtins(doc)  # type: ignore[no-any-return]


def ot(doc: dict[str, object]) -> dict[str, object]:
    """The OT channel's store and uplink figures."""
    channels = doc.get("channels") or {}
    assert isinstance(channels, dict)
    c = channels.get("ot") or {}
    return {**c.get("store", {}), **c.get("uplink", {})}


def stop(p: subprocess.Popen[bytes]) -> int:
    p.send_signal(signal.SIGTERM)
    try:
        return p.wait(30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()


def test_valid_reload_applies_and_keeps_buffered_data(
        tmp_path: Path, broker_factory: Callable[..., Mosquitto]) -> None:
    dead = f"mqtt://127.0.0.1:{free_port()}"  # nothing listens: readings pile up on disk
    cfg = write_site(tmp_path, dead, sensors=LOAD)
    log = tmp_path / "agent.log"
    p = start_agent(cfg, log)
    consumer = None
    try:
        assert wait_for(lambda: int(ot(status(cfg)).get("backlog_total", 0)) >= 200)  # type: ignore[call-overload]
        assert not ot(status(cfg))["connected"]
        b = broker_factory()
        consumer = Consumer("127.0.0.1", b.port, "edge/test/n1/ot").start()
        write_site(tmp_path, b.url, sensors=LOAD.replace("rate: 100", "rate: 150"))
        p.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "configuration reloaded" in log.read_text())
        # the backlog buffered before the reload arrives, from seq 1, and numbering goes on
        assert wait_for(lambda: consumer is not None and consumer.received().count() >= 600)
        got = consumer.received()
        assert got.gaps(1, got.max()) == []
        doc = status(cfg)
        assert wait_for(lambda: bool(ot(status(cfg)).get("connected")))
        doc = status(cfg)
        assert doc["reload"]["ok"] is True  # type: ignore[index]
        assert ot(doc)["broker"] == b.url
        assert stop(p) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        if consumer is not None:
            consumer.stop()
    assert "Traceback" not in log.read_text()


def test_invalid_reload_is_rejected_and_old_config_keeps_running(
        tmp_path: Path, broker: Mosquitto) -> None:
    consumer = Consumer("127.0.0.1", broker.port, "edge/test/n1/ot").start()
    cfg = write_site(tmp_path, broker.url, sensors=LOAD)
    good = cfg.read_text()
    log = tmp_path / "agent.log"
    p = start_agent(cfg, log)
    try:
        assert wait_for(lambda: consumer.received().count() >= 100)
        bad = good.replace("  commit_interval: 100ms\n", "  commit_interval: 100ms\n  bogus: 1\n")
        cfg.write_text(bad)
        line = bad.splitlines().index("  bogus: 1") + 1
        p.send_signal(signal.SIGHUP)
        assert wait_for(lambda: "reload rejected" in log.read_text())
        text = log.read_text()
        assert f"{cfg}:{line}: store.bogus" in text
        before = consumer.received().count()
        assert wait_for(lambda: consumer.received().count() >= before + 100)  # still running
        assert p.poll() is None
        doc = status(cfg)
        assert wait_for(lambda: bool(status(cfg).get("reload")))
        doc = status(cfg)
        assert doc["reload"]["ok"] is False  # type: ignore[index]
        got = consumer.received()
        assert got.gaps(1, got.max()) == []
        assert stop(p) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        consumer.stop()


def test_reload_with_hostile_yaml_keeps_the_daemon_and_its_config(
        tmp_path: Path, broker: Mosquitto) -> None:
    """An alias loop, an alias bomb and 20,000 levels of nesting: each reload is rejected
    with a located error and the daemon goes on publishing with the configuration it has."""
    consumer = Consumer("127.0.0.1", broker.port, "edge/test/n1/ot").start()
    cfg = write_site(tmp_path, broker.url, sensors=LOAD)
    good = cfg.read_text()
    log = tmp_path / "agent.log"
    p = start_agent(cfg, log)
    bomb = "".join(f"b{i}: &b{i} [" + ",".join([f"*b{i - 1}"] * 9) + "]\n" for i in range(1, 9))
    hostile = {
        "an alias refers to a mapping or list that contains it": good + "loop: &l [*l]\n",
        "more than 50000 values": good + "b0: &b0 [x,x,x,x,x,x,x,x,x]\n" + bomb,
        "nested more than 32 levels deep": good + "deep: " + "[" * 20000 + "]" * 20000 + "\n",
    }
    try:
        assert wait_for(lambda: consumer.received().count() >= 100)
        for n, (msg, text) in enumerate(hostile.items(), 1):
            cfg.write_text(text)
            p.send_signal(signal.SIGHUP)
            assert wait_for(lambda n=n: log.read_text().count("reload rejected") >= n), msg  # type: ignore[misc]
            assert msg in log.read_text() and f"{cfg}:" in log.read_text()
            before = consumer.received().count()
            assert wait_for(lambda b=before: consumer.received().count() >= b + 100)  # type: ignore[misc]
            assert p.poll() is None
        doc = status(cfg)
        assert doc["reload"]["ok"] is False and doc["reload"]["count"] == 3  # type: ignore[index]
        got = consumer.received()
        assert got.gaps(1, got.max()) == []
        assert stop(p) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
        consumer.stop()
    assert "Traceback" not in log.read_text()
