"""``edge-agent demo``: throwaway brokers, the agent on emulated hardware, a live view."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from edge_agent.security import nodekey, seal
from edge_agent.tools.consumer import Consumer
from edge_agent.tools.mosquitto import Mosquitto, MosquittoMissing, find_mosquitto

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=None,
                        help="stop after this many seconds (default: until Ctrl-C)")
    parser.add_argument("--config", type=Path, default=None,
                        help="demo YAML (default: bundled)")


def run(args: argparse.Namespace) -> int:
    from edge_agent.daemon import logsetup

    logsetup.setup_interactive()  # warnings in plain words; audit events to the journal
    return run_demo(duration=args.duration, config=args.config)


def _fmt_value(rec: dict[str, Any]) -> str:
    for k in ("v", "vs", "vb"):
        if k in rec:
            v = rec[k]
            return f"{v:g}" if isinstance(v, float) else str(v)
    return "?"


def _printer(label: str, lock: threading.Lock) -> Any:
    def show(kind: str, msg: dict[str, Any]) -> None:
        with lock:
            if kind in ("data", "alarm"):
                a, b = msg["seq"]
                recs = msg.get("senml", [])
                head = f"[{label}] {'ALARM ' if kind == 'alarm' else ''}seq {a}-{b}"
                if "suite" in msg:
                    head += f" (sealed {msg['suite']}, signer verified, opened)"
                shown = ", ".join(f"{r['n']}={_fmt_value(r)}{(' ' + r['u']) if 'u' in r else ''}"
                                  for r in recs[:4])
                more = f" (+{len(recs) - 4} more)" if len(recs) > 4 else ""
                print(f"{head}: {shown}{more}", flush=True)
            elif kind == "status":
                print(f"[{label}] status: {msg.get('state')}", flush=True)
            elif kind == "health":
                st = msg.get("store", {})
                print(f"[{label}] health: backlog {st.get('backlog')} accepted "
                      f"{st.get('accepted')} evicted {st.get('evicted')}", flush=True)
    return show


def run_demo(duration: float | None = None, config: Path | None = None) -> int:
    try:
        find_mosquitto()
    except MosquittoMissing as exc:
        print(f"edge-agent demo: {exc}", file=sys.stderr)
        return 2
    config = config or DEFAULT_CONFIG
    if not config.is_file():
        print(f"edge-agent demo: {config} not found (pass --config)", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="edge-agent-demo-") as tmp:
        work = Path(tmp)
        ot, it = Mosquitto(work / "ot-broker"), Mosquitto(work / "it-broker")
        ot.start()
        it.start()
        # the demo plays the welfare platform: it holds the private key, the agent the public
        platform = seal.generate_files("x25519", work / "platform" / "it-seal.key",
                                       work / "platform" / "it-seal.pub")
        env = dict(os.environ, EDGE_OT_BROKER=ot.url, EDGE_IT_BROKER=it.url,
                   EDGE_STATE_DIR=str(work / "state"),
                   EDGE_IT_SEAL_KEY=str(work / "platform" / "it-seal.pub"))
        lock = threading.Lock()
        print(f"demo: OT broker {ot.url}, IT broker {it.url}, state {work / 'state'}")
        # the node's keys, as an installer creates them; the platform enrols the node's
        # public signing key and accepts sealed payloads only when that node signed them
        init = subprocess.run([sys.executable, "-m", "edge_agent", "keys", "init", "-c",
                               str(config)], env=env, capture_output=True, text=True,
                              check=False)
        enrolled = work / "state" / "keys" / nodekey.ENROLMENT
        if init.returncode != 0 or not enrolled.is_file():
            print(f"edge-agent demo: keys init failed: {init.stderr.strip()}", file=sys.stderr)
            ot.stop()
            it.stop()
            return 1
        node_keys = nodekey.NodeKeys.load(enrolled)
        print(f"demo: platform enrolled node {', '.join('/'.join(n) for n in node_keys.nodes())}"
              f" ({enrolled})")
        consumers = [
            Consumer("127.0.0.1", ot.port, "edge/demo/pi-demo/ot",
                     on_message=_printer("OT", lock), keep_messages=False).start(),
            Consumer("127.0.0.1", it.port, "edge/demo/pi-demo/it",
                     on_message=_printer("IT", lock), keep_messages=False,
                     private_key=platform.private_key, node_keys=node_keys).start(),
        ]
        agent = subprocess.Popen([sys.executable, "-m", "edge_agent", "run", "-c",
                                  str(config)], env=env)
        rc = 0
        try:
            deadline = time.monotonic() + duration if duration else None
            while agent.poll() is None:
                if deadline is not None and time.monotonic() >= deadline:
                    break
                time.sleep(0.2)
        except KeyboardInterrupt:
            pass
        finally:
            if agent.poll() is None:
                agent.send_signal(signal.SIGTERM)
                try:
                    rc = agent.wait(15)
                except subprocess.TimeoutExpired:
                    agent.kill()
                    rc = 1
            else:
                rc = agent.returncode or 1
            time.sleep(0.3)
            for c in consumers:
                c.stop()
            ot.stop()
            it.stop()
        ok = True
        for label, c in zip(("OT", "IT"), consumers, strict=True):
            rec = c.snapshot()
            ranges = list(rec.ranges)
            gaps = rec.ranges.gaps(1, rec.ranges.max()) if ranges else []
            print(f"demo: {label}: {rec.readings} readings received, seq ranges {ranges[:3]}"
                  f"{'...' if len(ranges) > 3 else ''}, gaps {gaps or 'none'}, "
                  f"duplicates {rec.duplicates}, rejected {len(rec.bad)}")
            for why in rec.bad[:3]:
                print(f"demo: {label}: rejected {why}")
            ok &= rec.readings > 0 and not rec.bad
        print(f"demo: agent exited with {rc}")
        return 0 if rc == 0 and ok else 1
