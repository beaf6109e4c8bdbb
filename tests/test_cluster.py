"""A clustered broker tier (hil/faults/cluster.py, fast variant): a 3-node NATS cluster with
MQTT and JetStream (streams on all three nodes), a channel with ``failover: any`` and
``mqtt_version: 3`` on the three MQTT listeners. While a backlog drains, the node the agent
is connected to is SIGKILLed: the agent moves on to a surviving node and an independent
subscriber on the other surviving node receives every accepted reading."""

from __future__ import annotations

from pathlib import Path

import pytest

from hil.faults.cluster import cluster_failover
from hil.faults.natscluster import find_nats

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(find_nats() is None, reason="nats-server is not installed "
                                 "(scripts/setup.sh installs it)")]


def test_killing_the_agents_cluster_node_mid_drain_loses_nothing(tmp_path: Path) -> None:
    r = cluster_failover(tmp_path, backlog=200_000, kill_at=0.25, baseline=False,
                         timeout=40.0)
    assert r.silent_loss == 0, r.saw
    assert r.received == r.accepted == 200_000, r.saw
    assert r.duplicates <= r.dup_bound, r.saw
    assert r.ok, f"{r.saw} {r.notes}"
