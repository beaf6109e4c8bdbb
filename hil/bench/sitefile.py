"""Site files for the end-to-end benchmarks: one ``ot`` channel, the product defaults
unless a measurement names a setting (commit interval, store budget, sensors)."""

from __future__ import annotations

import socket
from pathlib import Path

NODE = "n1"
PREFIX = f"edge/hil/{NODE}/ot"  # the default topic prefix for site "hil", node "n1"


def closed_port() -> int:
    """A loopback port nobody listens on (connection refused): a broker that is down."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
    return port


def load_sensor(rate: float, *, total: int | None = None, chunk: float | None = None,
                ident: str = "gen", alarm: bool = False) -> str:
    opts = f"rate: {int(rate) if rate == int(rate) else rate}"
    if total is not None:
        opts += f", total: {total}"
    if chunk is not None:
        opts += f", chunk: {chunk}"
    prio = ", priority: alarm" if alarm else ""
    return f"  - {{id: {ident}, type: load, channel: ot{prio}, {opts}}}\n"


def write(path: Path, state_dir: Path, broker_port: int, *, sensors: str = "",
          commit_interval: str = "1s", max_bytes: str = "4GiB",
          metrics_textfile: Path | None = None, channel_extra: str = "") -> Path:
    """``channel_extra``: more keys of the ot channel, e.g. ``drain_rate: 8MB``."""
    metrics = (f"metrics: {{textfile: {metrics_textfile}}}\n"
               if metrics_textfile is not None else "")
    path.write_text(f"""site: hil
node: {NODE}
hardware: emulated
state_dir: {state_dir}
channels:
  ot:
    brokers: ["mqtt://127.0.0.1:{broker_port}"]
    allow_insecure: true
{('    ' + channel_extra + chr(10)) if channel_extra else ''}store:
  commit_interval: {commit_interval}
  max_bytes: {max_bytes}
{metrics}sensors:
{sensors or '  []' + chr(10)}""")
    return path
