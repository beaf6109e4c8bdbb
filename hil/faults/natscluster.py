"""A throwaway 3-node NATS cluster with JetStream and MQTT (3.1.1), on free loopback ports.

Each node has its own config file, JetStream store dir and log under ``workdir/<name>``;
the MQTT streams are replicated on every node (``mqtt { stream_replicas }``), so losing one
node loses no accepted message. nats-server comes from Debian (``/usr/sbin/nats-server``).

    with NatsCluster(work) as c:       # returns once every node answers an MQTT CONNECT
        c.urls                         # mqtt://127.0.0.1:<port>, one per node
        c.kill(1)                      # SIGKILL that node
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import threading
import time
from pathlib import Path
from types import TracebackType

import paho.mqtt.client as mqtt
from paho.mqtt.enums import CallbackAPIVersion

from edge_agent.tools.mosquitto import free_port

NATS_CANDIDATES = ("/usr/sbin/nats-server", "/usr/bin/nats-server")


class ClusterError(RuntimeError):
    """The cluster did not come up (the message names the node and its log)."""


def find_nats() -> str | None:
    for cand in (shutil.which("nats-server"), *NATS_CANDIDATES):
        if cand and Path(cand).exists():
            return cand
    return None


def mqtt_connects(port: int, timeout: float) -> bool:
    """A 3.1.1 CONNECT is answered with a success CONNACK (the node's MQTT streams exist)."""
    ok = threading.Event()

    def on_connect(c: mqtt.Client, u: object, flags: object, rc: object, p: object) -> None:
        if not getattr(rc, "is_failure", True):
            ok.set()

    c = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311)
    c.on_connect = on_connect
    try:
        c.connect("127.0.0.1", port, keepalive=10)
    except OSError:
        return False
    c.loop_start()
    try:
        return ok.wait(timeout)
    finally:
        c.disconnect()
        c.loop_stop()


class NatsNode:
    def __init__(self, binary: str, workdir: Path, name: str, cluster: str) -> None:
        self.binary, self.name, self.workdir = binary, name, workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.port, self.route_port, self.mqtt_port = free_port(), free_port(), free_port()
        self.conf, self.log = workdir / "nats.conf", workdir / "nats.log"
        self.cluster = cluster
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.mqtt_port}"

    def write_conf(self, routes: list[int], replicas: int) -> None:
        rlist = ", ".join(f"nats-route://127.0.0.1:{p}" for p in routes)
        self.conf.write_text(
            f"server_name: {self.name}\n"
            f"listen: 127.0.0.1:{self.port}\n"
            f'jetstream {{ store_dir: "{self.workdir / "js"}" }}\n'
            f"cluster {{ name: {self.cluster}, listen: 127.0.0.1:{self.route_port}, "
            f"routes: [{rlist}] }}\n"
            f"mqtt {{ listen: 127.0.0.1:{self.mqtt_port}, stream_replicas: {replicas} }}\n")

    def start(self) -> None:
        with open(self.log, "ab") as log:
            self.proc = subprocess.Popen([self.binary, "-c", str(self.conf)],
                                         stdout=subprocess.DEVNULL, stderr=log)

    @property
    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.alive:
            assert self.proc is not None
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)


class NatsCluster:
    def __init__(self, workdir: Path, size: int = 3, replicas: int = 3,
                 binary: str | None = None) -> None:
        found = binary or find_nats()
        if found is None:
            raise ClusterError("nats-server is not installed (apt-get install nats-server)")
        name = f"edge-{free_port()}"
        self.nodes = [NatsNode(found, workdir / f"n{i}", f"n{i}", name) for i in range(size)]
        routes = [n.route_port for n in self.nodes]
        for n in self.nodes:
            n.write_conf(routes, replicas)

    @property
    def urls(self) -> list[str]:
        return [n.url for n in self.nodes]

    def start(self, timeout: float = 60.0) -> NatsCluster:
        for n in self.nodes:
            n.start()
        deadline = time.monotonic() + timeout
        for n in self.nodes:
            while not mqtt_connects(n.mqtt_port, 2.0):
                if not n.alive:
                    self.stop()
                    raise ClusterError(f"{n.name} exited: {_tail(n.log)}")
                if time.monotonic() > deadline:
                    self.stop()
                    raise ClusterError(f"{n.name}: no MQTT CONNACK within {timeout:g}s: "
                                       f"{_tail(n.log)}")
                time.sleep(0.2)
        return self

    def kill(self, i: int) -> None:
        self.nodes[i].kill()

    def stop(self) -> None:
        for n in self.nodes:
            n.stop()

    def __enter__(self) -> NatsCluster:
        return self.start()

    def __exit__(self, t: type[BaseException] | None, v: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.stop()


def _tail(log: Path, n: int = 8) -> str:
    try:
        return " | ".join(log.read_text(errors="replace").splitlines()[-n:])
    except OSError:
        return "(no log)"
