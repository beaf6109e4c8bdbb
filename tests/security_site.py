"""Helpers for the security tests: a throwaway PKI, a two-listener mTLS broker, site files."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from pathlib import Path

from edge_agent.security import pki
from edge_agent.tools.mosquitto import Mosquitto, free_port

NODE_PREFIX = "edge/test/n1"


@dataclass
class PKI:
    ot_ca: pki.Issued
    it_ca: pki.Issued
    rogue_ca: pki.Issued
    ot_server: pki.Issued
    it_server: pki.Issued
    ot_client: pki.Issued  # CN test-n1-ot
    it_client: pki.Issued  # CN test-n1-it
    rogue_ot_client: pki.Issued  # CN test-n1-ot, but from the rogue CA
    platform_ot: pki.Issued
    platform_it: pki.Issued


def make_pki(d: Path, client_days: float = 365) -> PKI:
    ot_ca, it_ca, rogue = (pki.make_ca(d, "ot-ca"), pki.make_ca(d, "it-ca"),
                           pki.make_ca(d, "rogue-ca"))
    return PKI(
        ot_ca, it_ca, rogue,
        pki.make_cert(ot_ca, d, "ot-broker", server=True),
        pki.make_cert(it_ca, d, "it-broker", server=True),
        pki.make_cert(ot_ca, d, "test-n1-ot", days=client_days),
        pki.make_cert(it_ca, d, "test-n1-it", days=client_days),
        pki.make_cert(rogue, d / "rogue", "test-n1-ot"),
        pki.make_cert(ot_ca, d, "platform-ot"),
        pki.make_cert(it_ca, d, "platform-it"))


def listener_conf(ca: pki.Issued, server: pki.Issued, acl: Path) -> str:
    return (f"cafile {ca.cert}\ncertfile {server.cert}\nkeyfile {server.key}\n"
            "require_certificate true\nuse_identity_as_username true\n"
            f"acl_file {acl}\nallow_anonymous false\n")


def acl_for(d: Path, ch: str) -> Path:
    acl = d / f"acl-{ch}"
    acl.write_text(f"user test-n1-{ch}\ntopic write {NODE_PREFIX}/{ch}/#\n"
                   f"user platform-{ch}\ntopic read {NODE_PREFIX}/{ch}/#\n")
    return acl


def two_listener_broker(d: Path, p: PKI) -> tuple[Mosquitto, int, int]:
    """One mosquitto, two TLS listeners with their own CA, server cert and ACL (OT, IT)."""
    it_port = free_port()
    b = Mosquitto(d / "broker", listener_extra=listener_conf(p.ot_ca, p.ot_server,
                                                             acl_for(d, "ot")),
                  allow_anonymous=False, tls=True, per_listener_settings=True,
                  listeners=[(it_port, listener_conf(p.it_ca, p.it_server, acl_for(d, "it")))])
    b.start()
    return b, b.port, it_port


def client_ctx(ca: pki.Issued, me: pki.Issued) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(ca.cert))
    ctx.load_cert_chain(str(me.cert), str(me.key))
    return ctx


def channel_yaml(ch: str, url: str, ca: pki.Issued, client: pki.Issued, extra: str = "") -> str:
    return (f"  {ch}:\n    brokers: [\"{url}\"]\n    health_interval: 1s\n"
            "    reconnect_min: 100ms\n    reconnect_max: 1s\n"
            f"    tls: {{ca_file: {ca.cert}, cert_file: {client.cert}, key_file: {client.key}}}\n"
            f"{extra}")


def write_site(d: Path, channels: str, sensors: str, store: str = "") -> Path:
    cfg = d / "site.yaml"
    cfg.write_text(f"site: test\nnode: n1\nhardware: emulated\nstate_dir: {d / 'state'}\n"
                   f"channels:\n{channels}store:\n  commit_interval: 100ms\n{store}"
                   f"sensors:\n{sensors}")
    return cfg
