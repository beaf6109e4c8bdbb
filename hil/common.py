"""Shared rig helpers: site files, waiting, process figures, markdown tables."""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from edge_agent.core.model import Channel, Priority, Reading

PY = sys.executable
REPO = Path(__file__).resolve().parent.parent


def wait_for(pred: Callable[[], bool], timeout: float = 20.0, interval: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(interval)
    return pred()


def write_site(workdir: Path, brokers: Sequence[str], sensors: str = "", store: str = "",
               extra_ot: str = "", name: str = "site.yaml") -> Path:
    """A one-channel (ot) site file in ``workdir``; state in ``workdir/state``."""
    cfg = workdir / name
    blist = ", ".join(f'"{b}"' for b in brokers)
    cfg.write_text(f"""site: hil
node: n1
hardware: emulated
state_dir: {workdir / 'state'}
channels:
  ot:
    brokers: [{blist}]
    allow_insecure: true
    health_interval: 1s
    reconnect_min: 100ms
    reconnect_max: 500ms
{extra_ot}
store:
  commit_interval: 100ms
{store}
sensors:
{sensors}
""")
    return cfg


PREFIX = "edge/hil/n1/ot"


def readings(n: int, start: int = 0, t0: float | None = None, sensor: str = "meter-main",
             priority: Priority = Priority.NORMAL) -> list[Reading]:
    """Meter readings: a noisy power value (0.1 W resolution), about 10 ms apart with
    millisecond jitter. Deterministic per ``start`` (same readings in every run)."""
    t0 = time.time() if t0 is None else t0
    rng = random.Random(start)
    return [Reading(sensor, Channel.OT, priority, "power",
                    round(1200.0 + rng.gauss(0.0, 80.0), 1),
                    round(t0 + (start + i) * 0.01 + rng.random() * 0.002, 3), "W")
            for i in range(n)]


def proc_status(field: str) -> int:
    """A VmRSS/VmHWM-style field of /proc/self/status, in bytes."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    return 0


def write_bytes() -> int:
    with open("/proc/self/io") as f:
        for line in f:
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    return 0


def run_child(module: str, *args: str, timeout: float = 900.0) -> dict[str, object]:
    """Run ``python -m module args`` in a fresh process; its last stdout line is JSON."""
    out = subprocess.run([PY, "-m", module, *args], capture_output=True, text=True,
                         timeout=timeout, cwd=REPO, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"{module} {' '.join(args)} failed ({out.returncode}):\n"
                           f"{out.stderr[-4000:]}")
    lines = [ln for ln in out.stdout.splitlines() if ln.strip()]
    result: dict[str, object] = json.loads(lines[-1])
    return result


def emit_json(obj: Mapping[str, object]) -> None:
    sys.stdout.write(json.dumps(obj) + "\n")
    sys.stdout.flush()


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(c) for c in r] for r in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) if cells else len(h)
              for i, h in enumerate(headers)]
    def line(vals: Sequence[str]) -> str:
        return "| " + " | ".join(v.ljust(w) for v, w in zip(vals, widths, strict=True)) + " |"
    out = [line(list(headers)), "|" + "|".join("-" * (w + 2) for w in widths) + "|"]
    out += [line(r) for r in cells]
    return "\n".join(out)


def env_info() -> str:
    import platform

    return (f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"{platform.system()} {platform.release()}")
