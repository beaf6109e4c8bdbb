"""The end-to-end benchmark harness (hil/bench): its site files are valid, it sees the real
agent's READY=1 on its own notify socket, and it reads a process's CPU and memory."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from edge_agent.tools.mosquitto import Mosquitto
from hil.bench import alarmstages, e2e, sitefile
from hil.bench.proc import AgentUnderTest, proc_cpu_seconds, proc_vm
from hil.bench.subscriber import SubscriberProcess
from hil.common import wait_for

REPO = Path(__file__).resolve().parent.parent


def check_config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "edge_agent", "check-config", str(path)],
                          capture_output=True, text=True, cwd=REPO, check=False)


def test_site_files_pass_check_config(tmp_path: Path) -> None:
    # a rate of 1,000,000 was once written as "1e+06", which the loader rejects as a string
    sensors = (sitefile.load_sensor(1_000_000, total=5_000_000)
               + sitefile.load_sensor(25, ident="sos", chunk=0.01, alarm=True)
               + sitefile.load_sensor(0.5, ident="slow"))
    site = sitefile.write(tmp_path / "site.yaml", tmp_path / "state", 1883, sensors=sensors,
                          metrics_textfile=tmp_path / "m" / "edge_agent.prom")
    out = check_config(site)
    assert out.returncode == 0, out.stdout + out.stderr
    paced = sitefile.write(tmp_path / "paced.yaml", tmp_path / "state", 1883,
                           channel_extra="drain_rate: 8MB")
    out = check_config(paced)
    assert out.returncode == 0, out.stdout + out.stderr
    quiet = sitefile.write(tmp_path / "quiet.yaml", tmp_path / "state", 1883)
    out = check_config(quiet)
    assert out.returncode == 0, out.stdout + out.stderr


def test_proc_figures_of_this_process() -> None:
    sum(i * i for i in range(200_000))  # some CPU of our own
    assert proc_cpu_seconds(os.getpid()) > 0
    assert proc_vm(os.getpid(), "VmRSS") > 1024 * 1024
    assert proc_vm(os.getpid(), "VmHWM") >= proc_vm(os.getpid(), "VmRSS") // 2
    assert proc_vm(os.getpid(), "NoSuchField") == 0


def test_agent_ready_seen_on_own_notify_socket(tmp_path: Path) -> None:
    site = sitefile.write(tmp_path / "site.yaml", tmp_path / "state", sitefile.closed_port())
    agent = AgentUnderTest(site, tmp_path / "agent.log")
    try:
        agent.start()
        ready = agent.wait_ready(120)
        assert ready > 0 and agent.ready_after == ready
        assert agent.alive and agent.cpu_seconds() > 0 and agent.vm("VmRSS") > 0
    finally:
        code = agent.stop()
    assert code == 0, agent.log_tail()


def test_alarm_trace_stamps_every_stage_of_the_real_agent(tmp_path: Path) -> None:
    """hil/bench/alarmtrace.py: the agent runs as usual, and each alarm it sends has its
    stages stamped in order, joined with the independent subscriber's receipt."""
    with Mosquitto(tmp_path / "broker") as broker:
        sub = SubscriberProcess(broker.port, f"{sitefile.PREFIX}/alarm", 0)
        site = sitefile.write(tmp_path / "site.yaml", tmp_path / "state", broker.port,
                              sensors=sitefile.load_sensor(20, ident="sos", chunk=0.01,
                                                           alarm=True))
        agent = AgentUnderTest(site, tmp_path / "agent.log", trace=tmp_path / "trace.json")
        try:
            agent.start()
            agent.wait_ready(120)
            assert wait_for(lambda: sub.readings >= 10, 60), agent.log_tail()
        finally:
            code = agent.stop()
            final = sub.close()
    assert code == 0, agent.log_tail()
    recs = alarmstages.join(tmp_path / "trace.json", [], final["alarms"], (0.0, 1e12))
    received = [r for r in recs if "rx_only" in r]
    assert len(received) >= 10
    order = ("t", "put", "commit0", "locked0", "locked1", "commit1", "lease1", "pub0",
             "rx_only")
    for r in received:
        stamps = [r[k] for k in order]
        assert stamps == sorted(stamps), r
        assert "puback" in r and "sock" in r
    rows = {row["stage"]: row for row in alarmstages.summary(received)}
    assert rows["emit -> alarm-only subscriber"]["n"] == len(received)


def test_ingest_point_sees_the_agent_accept_every_reading(tmp_path: Path) -> None:
    """The ingest point reads the agent's own status file (the store's ``accepted``): a
    layout it cannot read would wait out its deadline and report nothing."""
    b = e2e.Bench(tmp_path, lambda m: None, None)
    out = e2e.ingest(b, 3000)
    assert out["accepted"] >= 3000, out
    assert out["seconds_upper"] < 60 and out["exit"] == 0
    assert out["agent_cpu"] > 0 and out["cpu_per_m"] > 0
