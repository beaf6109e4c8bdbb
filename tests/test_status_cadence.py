"""What the daemon's reporting writes to the SD card: status.json on the service's tmpfs
(linked from the state dir), the metrics textfile only when a figure changes."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec

from edge_agent.daemon.health import NodeHealth
from edge_agent.daemon.metrics import Textfile
from edge_agent.daemon.status import read_status, runtime_dir, status_file, write_status
from tests.test_status import sample_node


def test_status_goes_to_the_runtime_dir_and_reads_through_the_state_dir(tmp_path: Path
                                                                        ) -> None:
    state, run = tmp_path / "state", tmp_path / "run"
    state.mkdir()
    run.mkdir()
    node = sample_node()
    doc = status_file(node, state="running", config=None, started_at=node.time - 5,
                      interval=2.0)
    assert write_status(state, doc, run) == run / "status.json"
    link = state / "status.json"
    assert link.is_symlink() and os.readlink(link) == str(run / "status.json")
    assert read_status(state, now=node.time)[1] == doc
    ino = link.lstat().st_ino
    write_status(state, doc, run)
    assert link.lstat().st_ino == ino  # the link is made once, not per write
    # run again without a runtime dir: a plain file replaces the link
    write_status(state, doc)
    assert not link.is_symlink() and read_status(state, now=node.time)[1] == doc


def test_runtime_dir_is_systemds_first_entry() -> None:
    assert runtime_dir({"RUNTIME_DIRECTORY": "/run/edge-agent:/run/x"}) == Path(
        "/run/edge-agent")
    assert runtime_dir({}) is None


def _quiet(now: float) -> NodeHealth:
    """The sample node with nothing waiting (a quiet, connected site)."""
    node = sample_node(now=1_700_000_000.0)
    chans = {k: msgspec.structs.replace(c, store=msgspec.structs.replace(
        c.store, oldest_undelivered=None)) for k, c in node.channels.items()}
    return msgspec.structs.replace(node, time=now, channels=chans)


def test_metrics_textfile_is_rewritten_only_when_a_figure_changes(tmp_path: Path) -> None:
    path = tmp_path / "edge.prom"
    tf = Textfile(path, heartbeat=900.0)
    assert tf.write(_quiet(1_700_000_000.0), True, now=0.0)
    first = path.read_text()
    assert not tf.write(_quiet(1_700_000_015.0), True, now=15.0)  # only its own time moved
    assert path.read_text() == first
    assert tf.write(_quiet(1_700_000_030.0), False, now=30.0)  # edge_agent_up changed
    assert not tf.write(_quiet(1_700_000_045.0), False, now=45.0)
    assert tf.write(_quiet(1_700_000_945.0), False, now=31.0 + 900.0)  # heartbeat
    assert tf.writes == 3
    # a backlog's age is a figure: it changes with the time
    assert tf.write(sample_node(1_700_001_000.0), False, now=940.0)
    assert tf.write(sample_node(1_700_001_015.0), False, now=955.0)
