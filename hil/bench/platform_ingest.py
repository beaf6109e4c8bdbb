"""The reference ingest's throughput: ``python -m hil.bench.platform_ingest [READINGS]``.

A backlog is written offline (prefill.py) and the real agent drains it into a real
mosquitto while K ingest processes (``python -m edge_agent.tools.ingest run``, each its own
OS process) share one subscription group. Per setting: readings/s the group ingested
(first to last reading), each process's share, and CPU-seconds per million readings per
process (its headroom: 1e6 / that = what one process could take if the agent and the
broker were not the limit). K = 1 and 2, at 500 and at 50 readings per message.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from edge_agent.tools.mosquitto import Mosquitto
from hil.bench.prefill import fill
from hil.common import PY, REPO, markdown_table, wait_for
from hil.faults.rig import AgentProcess, quiet_site


def _reports(d: Path) -> list[dict[str, Any]]:
    out = []
    for f in sorted(d.glob("*.json")):
        try:
            out.append(json.loads(f.read_text()))
        except ValueError:
            continue  # being replaced (written atomically, but a reader may race the glob)
    return out


def _total(d: Path) -> int:
    return sum(int(r["counters"]["readings"]) for r in _reports(d))


def run(work: Path, readings: int, per_message: int, procs: int) -> dict[str, Any]:
    work.mkdir(parents=True)
    fill(work / "state", readings, per_message, 4 * 1024**2)
    reports = work / "reports"
    with Mosquitto(work / "broker", extra="max_queued_messages 0\n") as b:
        ing = [subprocess.Popen(
            [PY, "-m", "edge_agent.tools.ingest", "run", "--broker", b.url, "--group", "bench",
             "--client-id", f"ingest-{i}", "--report-dir", str(reports),
             "--report-interval", "0.2"], cwd=REPO, stdout=subprocess.DEVNULL)
            for i in range(procs)]
        time.sleep(1.5)  # subscribed (the process prints nothing until its first report)
        agent = AgentProcess(quiet_site(work, [b.url], extra_ot=f"    batch_max: "
                                        f"{per_message}\n"), work / "agent.log")
        agent.start()
        ok = wait_for(lambda: _total(reports) > 0, 60, interval=0.01)
        t0 = time.monotonic()
        ok = ok and wait_for(lambda: _total(reports) >= readings, 300, interval=0.01)
        t1 = time.monotonic()
        agent.stop()
        for p in ing:
            p.terminate()
            p.wait(10)
    reps = _reports(reports)
    shares = [int(r["counters"]["readings"]) for r in reps]
    cpu = [float(r["cpu_s"]) for r in reps]
    rate = readings / max(t1 - t0, 1e-9)
    return {"readings": readings, "per_message": per_message, "processes": procs,
            "complete": ok and sum(shares) >= readings, "rate": rate, "shares": shares,
            "cpu_s_per_M": [c / max(s, 1) * 1e6 for c, s in zip(cpu, shares, strict=True)]}


def main(argv: list[str]) -> None:
    readings = int(argv[0]) if argv else 500_000
    root = Path(tempfile.mkdtemp(prefix="bench-ingest-"))
    rows = []
    for per in (500, 50):
        for k in (1, 2):
            r = run(root / f"{per}-{k}", readings if per == 500 else readings // 5, per, k)
            print(json.dumps(r), flush=True)
            rows.append([f"{r['readings']:,} x {per}/msg", str(k), f"{r['rate']:,.0f}",
                         " / ".join(f"{s:,}" for s in r["shares"]),
                         " / ".join(f"{c:.2f}" for c in r["cpu_s_per_M"]),
                         "yes" if r["complete"] else "NO"])
    print(markdown_table(["backlog", "ingest processes", "readings/s (group)",
                          "share per process", "ingest CPU-s per M readings", "complete"], rows))


if __name__ == "__main__":
    main(sys.argv[1:])
