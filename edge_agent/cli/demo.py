"""``edge-agent demo``: throwaway brokers, the agent on emulated hardware, a live view."""

from __future__ import annotations

import argparse
import os
import signal
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edge_agent.cli import demo_site
from edge_agent.security import nodekey, seal
from edge_agent.tools.consumer import Consumer
from edge_agent.tools.mosquitto import Mosquitto, MosquittoMissing, find_mosquitto

DEFAULT_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "demo.yaml"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--duration", type=float, default=None, metavar="SECONDS",
                        help="stop after this many seconds (default: until Ctrl-C)")
    parser.add_argument("--config", type=Path, default=None, metavar="SITE.yaml",
                        help="run this site file on emulated hardware, its TLS settings and "
                             "keys replaced by throwaway ones (default: the bundled demo)")


def run(args: argparse.Namespace) -> int:
    from edge_agent.daemon import logsetup

    logsetup.setup_interactive()  # warnings in plain words; audit events to the journal
    return run_demo(duration=args.duration, site=args.config)


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


@dataclass
class Setup:
    """What one demo run starts: the config the agent runs, a broker and a consumer's
    settings per channel, the agent's environment."""

    config: Path
    env: dict[str, str]
    brokers: dict[str, Mosquitto]
    tls: dict[str, ssl.SSLContext | None]
    platform_key: Any


def _bundled(work: Path) -> Setup:
    """The bundled demo: plaintext loopback brokers, the config's variables set."""
    ot, it = Mosquitto(work / "ot-broker"), Mosquitto(work / "it-broker")
    platform = seal.generate_files("x25519", work / "platform" / "it-seal.key",
                                   work / "platform" / "it-seal.pub")
    env = dict(os.environ, EDGE_OT_BROKER=ot.url, EDGE_IT_BROKER=it.url,
               EDGE_STATE_DIR=str(work / "state"),
               EDGE_IT_SEAL_KEY=str(work / "platform" / "it-seal.pub"))
    return Setup(DEFAULT_CONFIG, env, {"ot": ot, "it": it}, {"ot": None, "it": None},
                 platform.private_key)


def _site(site: Path, work: Path) -> Setup | None:
    """A site file made runnable here (demo_site), said so on screen; None when it has
    problems (printed as check-config prints them)."""
    problems = demo_site.site_problems(site)
    if problems:
        for p in problems:
            print(p.format(), file=sys.stderr)
        print(f"{site}: {len(problems)} problem(s); edge-agent demo runs a site file only "
              "once check-config accepts it (certificates and key files aside)",
              file=sys.stderr)
        return None
    prepared = demo_site.prepare(site, work)
    print(f"demo: running {site} on THIS machine, not on its node: emulated devices, local "
          "brokers, throwaway keys and certificates (deleted when the demo ends). Replaced:")
    for line in prepared.replaced:
        print(f"demo:   - {line}")
    brokers: dict[str, Mosquitto] = {}
    tls: dict[str, ssl.SSLContext | None] = {}
    for ch, b in prepared.brokers.items():
        brokers[ch] = Mosquitto(work / f"{ch}-broker", port=b.port, tls=True,
                                listener_extra=demo_site.broker_listener(b))
        ctx = ssl.create_default_context(cafile=str(b.ca))
        if b.platform is not None:
            ctx.load_cert_chain(str(b.platform[0]), str(b.platform[1]))
        tls[ch] = ctx
    env = {k: v for k, v in os.environ.items() if k != "CREDENTIALS_DIRECTORY"}
    return Setup(prepared.path, env, brokers, tls, prepared.platform_key)


def run_demo(duration: float | None = None, site: Path | None = None) -> int:
    try:
        find_mosquitto()
    except MosquittoMissing as exc:
        print(f"edge-agent demo: {exc}", file=sys.stderr)
        return 2
    if site is not None and not site.is_file():
        print(f"edge-agent demo: {site} not found", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="edge-agent-demo-") as tmp:
        work = Path(tmp)
        setup = _bundled(work) if site is None else _site(site, work)
        if setup is None:
            return 1
        started: list[Mosquitto] = []
        try:
            for b in setup.brokers.values():
                b.start()
                started.append(b)
            return _run(setup, work, duration)
        finally:
            for b in started:
                b.stop()


def _run(setup: Setup, work: Path, duration: float | None) -> int:
    config, env = setup.config, setup.env
    cfg = load_site_env(config, env)
    lock = threading.Lock()
    print("demo: " + ", ".join(f"{ch.upper()} broker {b.url}" for ch, b in setup.brokers.items())
          + f", state {cfg.state_dir}")
    # the node's keys, as an installer creates them; the platform enrols the node's
    # public signing key and accepts sealed payloads only when that node signed them
    init = subprocess.run([sys.executable, "-m", "edge_agent", "keys", "init", "-c",
                           str(config)], env=env, capture_output=True, text=True, check=False)
    if init.returncode != 0:
        print(f"edge-agent demo: keys init failed: {init.stderr.strip()}", file=sys.stderr)
        return 1
    enrolled = cfg.state_dir / "keys" / nodekey.ENROLMENT
    node_keys = None
    if enrolled.is_file():
        node_keys = nodekey.NodeKeys.load(enrolled)
        print(f"demo: platform enrolled node "
              f"{', '.join('/'.join(n) for n in node_keys.nodes())} ({enrolled})")
    for w in cfg.welfare:
        if w.inactivity is not None:
            print(f"demo: welfare: a caution after {float(w.inactivity.caution):g} s without "
                  f"activity from {', '.join(w.activity)} (the site's rule, unchanged)")
    consumers: dict[str, Consumer] = {}
    for ch, cc in cfg.channels.items():
        b = setup.brokers[ch.value]
        sealed = cc.seal is not None and cc.seal.enabled
        consumers[ch.value] = Consumer(
            "127.0.0.1", b.port, cfg.topic_prefix(ch),
            on_message=_printer(ch.value.upper(), lock), keep_messages=False,
            tls_context=setup.tls[ch.value],
            private_key=setup.platform_key if sealed else None,
            node_keys=node_keys if sealed else None).start()
    agent = subprocess.Popen([sys.executable, "-m", "edge_agent", "run", "-c", str(config)],
                             env=env)
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
        for c in consumers.values():
            c.stop()
    ok, received = True, 0
    for label, c in consumers.items():
        rec = c.snapshot()
        ranges = list(rec.ranges)
        gaps = rec.ranges.gaps(1, rec.ranges.max()) if ranges else []
        print(f"demo: {label.upper()}: {rec.readings} readings received, seq ranges "
              f"{ranges[:3]}{'...' if len(ranges) > 3 else ''}, gaps {gaps or 'none'}, "
              f"duplicates {rec.duplicates}, rejected {len(rec.bad)}")
        for why in rec.bad[:3]:
            print(f"demo: {label.upper()}: rejected {why}")
        if not rec.readings:
            on = [sc.id for sc in cfg.sensors if sc.enabled and sc.channel.value == label]
            print(f"demo: {label.upper()}: no readings arrived; sensors on this channel: "
                  f"{', '.join(on) or 'none'}")
        received += rec.readings
        ok &= not rec.bad
    print(f"demo: agent exited with {rc}")
    return 0 if rc == 0 and ok and received > 0 else 1


def load_site_env(config: Path, env: dict[str, str]) -> Any:
    """The config as the agent will read it, with the agent's environment."""
    from edge_agent.config import load_config
    from edge_agent.devices.registry import SENSOR_TYPES

    return load_config(config, SENSOR_TYPES, env=env)
