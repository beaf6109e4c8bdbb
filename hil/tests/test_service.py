"""The agent as a service: ready, logs, status/doctor, reload, watchdog, sandbox."""

from __future__ import annotations

import time

import pytest

from edge_agent.tools.consumer import Consumer

from .readings import wait_values
from .rig import Rig, sensor_lines

LOAD = "{id: load-probe, type: load, channel: ot, rate: 5, chunk: 0.2}"
PROBE = "{id: reload-probe, type: load, channel: ot, rate: 5, chunk: 0.2}"


def test_ready_status_doctor(agent: Rig, ot: Consumer) -> None:
    agent.install_site(sensor_lines(LOAD))
    agent.start()  # returns after READY=1 (sim: on $NOTIFY_SOCKET; systemd: unit active)
    assert wait_values(ot, "load-probe", "counter", 3), "no readings at the host subscriber"
    status = agent.edge_agent(f"status -c {agent.site_path}").check("edge-agent status")
    assert "running" in status.lower(), status
    doctor = agent.edge_agent(f"doctor -c {agent.site_path} --timeout 10", timeout=120)
    assert doctor.rc == 0, f"doctor failed on a healthy node:\n{doctor.out}"
    assert "running: site hil node rig" in agent.logs()


@pytest.mark.lg_feature("systemd")
def test_unit_is_notify_and_logs_to_journal(agent: Rig) -> None:
    agent.install_site(sensor_lines(LOAD))
    agent.start()
    props = agent.sh("systemctl show edge-agent -p Type -p ActiveState -p SubState"
                     " -p StatusText -p WatchdogUSec").check("systemctl show")
    assert "Type=notify" in props and "ActiveState=active" in props, props
    assert "StatusText=" in props and "StatusText=\n" not in props, props
    journal = agent.sh("journalctl -u edge-agent -o cat --no-pager -n 200").check("journal")
    assert "running: site hil node rig" in journal, journal[-2000:]


def test_sighup_reloads_and_bad_file_keeps_running_config(agent: Rig, ot: Consumer) -> None:
    agent.install_site(sensor_lines(LOAD))
    agent.start()
    pid = agent.main_pid()
    assert wait_values(ot, "load-probe", "counter", 2)
    agent.install_site(sensor_lines(LOAD, PROBE))
    agent.reload()
    assert wait_values(ot, "reload-probe", "counter", 3), \
        f"the reloaded sensor sends nothing\n{agent.logs()[-3000:]}"
    assert agent.main_pid() == pid, "a reload must not restart the process"
    good = agent.logs()
    assert "configuration reloaded" in good, good[-3000:]

    agent.put_file(agent.site_path, b"site: hil\nnode: rig\nsensors: [{type: nope}]\n")
    agent.reload()
    deadline = time.monotonic() + 30
    while "reload rejected" not in agent.logs() and time.monotonic() < deadline:
        time.sleep(0.5)
    assert "reload rejected" in agent.logs(), agent.logs()[-3000:]
    before = len(wait_values(ot, "reload-probe", "counter"))
    assert len(wait_values(ot, "reload-probe", "counter", before + 3)) >= before + 3, \
        "the running configuration stopped after a bad reload"
    assert agent.main_pid() == pid


@pytest.mark.lg_feature(["systemd", "watchdog"])
def test_stopped_process_is_killed_by_watchdog_and_restarted(agent: Rig, ot: Consumer) -> None:
    agent.install_site(sensor_lines(LOAD))
    agent.start()
    pid = agent.main_pid()
    restarts = int(agent.sh("systemctl show edge-agent -p NRestarts --value").out.strip())
    agent.sh(f"kill -STOP {pid}").check("SIGSTOP")
    deadline = time.monotonic() + 120
    new = pid
    while time.monotonic() < deadline:
        out = agent.sh("systemctl show edge-agent -p MainPID -p ActiveState -p NRestarts")
        fields = dict(line.split("=", 1) for line in out.out.split() if "=" in line)
        new = int(fields.get("MainPID", "0"))
        if new not in (0, pid) and fields.get("ActiveState") == "active":
            assert int(fields["NRestarts"]) == restarts + 1, out.out
            break
        time.sleep(2)
    assert new not in (0, pid), "the stopped agent was not restarted by the watchdog"
    journal = agent.sh("journalctl -u edge-agent -o cat --no-pager -n 300").out
    assert "Watchdog timeout" in journal, journal[-2000:]
    before = len(wait_values(ot, "load-probe", "counter"))
    assert len(wait_values(ot, "load-probe", "counter", before + 3)) >= before + 3


@pytest.mark.lg_feature("sandbox")
def test_sandbox_hides_home_and_keeps_etc_read_only(agent: Rig) -> None:
    agent.install_site(sensor_lines(LOAD))
    agent.sh("mkdir -p /home/resident && echo secret > /home/resident/notes").check("home")
    agent.start()
    pid = agent.main_pid()
    inside = (f"nsenter -t {pid} -m -- setpriv --reuid edge-agent --regid edge-agent "
              "--init-groups sh -c")
    home = agent.sh(f"{inside} 'cat /home/resident/notes'")
    assert home.rc != 0 and "secret" not in home.out, home.out
    etc = agent.sh(f"{inside} 'touch /etc/edge-agent/x || touch /etc/x'")
    assert etc.rc != 0 and "Read-only file system" in etc.out, etc.out
    state = agent.sh(f"{inside} 'touch {agent.state_dir}/probe && rm {agent.state_dir}/probe'")
    assert state.rc == 0, state.out
