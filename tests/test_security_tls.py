"""TLS everywhere, mutual TLS per channel, OT/IT separation, against a real mosquitto.

One broker, two TLS listeners (per_listener_settings true): each with its own CA, server
certificate, ACL; clients must present a certificate (require_certificate) and their CN is
their MQTT identity (use_identity_as_username).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import re
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge_agent.config import load_config
from edge_agent.config.schema import ChannelConfig, TLSConfig
from edge_agent.config.types import BrokerURL
from edge_agent.core.errors import KeyFileError
from edge_agent.core.model import Channel
from edge_agent.daemon.runtime import Agent
from edge_agent.devices.registry import SENSOR_TYPES
from edge_agent.security import events as secevents
from edge_agent.security import pki
from edge_agent.security.seal import generate_files
from edge_agent.tools.consumer import Consumer
from edge_agent.tools.mosquitto import Mosquitto
from edge_agent.uplink.tls import tls_context
from tests.conftest import EDGE_AGENT, enrol_node, stop_agent, wait_for
from tests.security_site import (
    PKI,
    channel_yaml,
    client_ctx,
    make_pki,
    two_listener_broker,
    write_site,
)

OT_LOAD = "  - {id: gen-ot, type: load, channel: ot, rate: 100}\n"
IT_PULSE = ("  - {id: pulse-ox, type: max30102, channel: it, subject: kim-young-ja-1942,\n"
            "     report_seconds: 1, window_seconds: 4}\n")
IT_CLIMATE = "  - {id: climate-room, type: sht31, channel: it, interval: 200ms}\n"



@pytest.fixture
def site_pki(tmp_path: Path) -> PKI:
    return make_pki(tmp_path / "pki")


@pytest.fixture
def mtls_broker(tmp_path: Path, site_pki: PKI) -> Iterator[tuple[Mosquitto, int, int]]:
    b, ot_port, it_port = two_listener_broker(tmp_path, site_pki)
    yield b, ot_port, it_port
    b.stop()


def start(cfg: Path) -> Agent:
    agent = Agent(load_config(cfg, SENSOR_TYPES), SENSOR_TYPES)
    agent.start()
    return agent



def test_mtls_both_channels_deliver_and_nothing_of_it_reaches_ot(
        tmp_path: Path, site_pki: PKI, mtls_broker: tuple[Mosquitto, int, int]) -> None:
    p = site_pki
    _, ot_port, it_port = mtls_broker
    kp = generate_files("x25519", tmp_path / "platform.key", tmp_path / "platform.pub")
    channels = (channel_yaml("ot", f"mqtts://127.0.0.1:{ot_port}", p.ot_ca, p.ot_client)
                + channel_yaml("it", f"mqtts://localhost:{it_port}", p.it_ca, p.it_client,
                               f"    seal: {{public_key_file: {tmp_path / 'platform.pub'}}}\n"))
    cfg = write_site(tmp_path, channels, OT_LOAD + IT_PULSE + IT_CLIMATE)
    enrolled = enrol_node(tmp_path / "state")
    c_ot = Consumer("127.0.0.1", ot_port, "edge/test/n1/ot",
                    tls_context=client_ctx(p.ot_ca, p.platform_ot)).start()
    c_it = Consumer("127.0.0.1", it_port, "edge/test/n1/it",
                    tls_context=client_ctx(p.it_ca, p.platform_it),
                    private_key=kp.private_key, node_keys=enrolled).start()
    agent = start(cfg)
    try:
        assert wait_for(lambda: c_ot.rec.readings > 50 and any(
            "pulse-ox/heart_rate" in r["n"] for m in c_it.snapshot().messages
            for r in m.msg["senml"]) and len(c_ot.snapshot().health) >= 1, timeout=30)
    finally:
        stop_agent(agent)
        c_ot.stop()
        c_it.stop()
    ot, it = c_ot.snapshot(), c_it.snapshot()
    assert not ot.bad and not it.bad
    # IT payloads were sealed on the wire and opened by the platform's key
    assert all(m.msg.get("suite") == "x25519+ed25519" and m.msg.get("signer")
               for m in it.messages)
    it_names = {r["n"] for m in it.messages for r in m.msg["senml"]}
    it_values = {r["v"] for m in it.messages for r in m.msg["senml"]
                 if isinstance(r.get("v"), float) and r["v"] != int(r["v"])}
    assert any(n.endswith("/pulse-ox/heart_rate") for n in it_names)
    # not one OT message (data, status, health) mentions an IT sensor, field or value
    ot_text = json.dumps([m.msg for m in ot.messages] + ot.health + [ot.status])
    for word in ("pulse-ox", "climate-room", "heart_rate", "spo2", "humidity", "p-",
                 "kim-young-ja"):
        assert word not in ot_text.replace("edge/test/n1/ot", ""), word
    for v in it_values:
        assert not re.search(rf"[:\[,]{re.escape(repr(v))}[,}}\]]", ot_text), v
    assert {r["n"] for m in ot.messages for r in m.msg["senml"]} == {"gen-ot/counter"}
    # certificate expiry reported on health and status
    h = ot.health[-1]
    assert 360 < h["cert_expiry"] <= 365
    assert h["security"] == {} or all(not k.startswith(("auth", "acl")) for k in h["security"])
    assert ot.status is not None and 360 < ot.status["cert_expiry"] <= 365


@pytest.mark.parametrize("identity,foreign", [("ot", "it"), ("it", "ot")])
def test_identity_cannot_publish_the_other_channels_topics(
        tmp_path: Path, site_pki: PKI, mtls_broker: tuple[Mosquitto, int, int],
        identity: str, foreign: str) -> None:
    p = site_pki
    _, ot_port, it_port = mtls_broker
    port, ca, client = ((ot_port, p.ot_ca, p.ot_client) if identity == "ot"
                        else (it_port, p.it_ca, p.it_client))
    extra = f"    topic_prefix: edge/test/n1/{foreign}\n"
    if identity == "it":
        extra += "    seal: {enabled: false}\n"
    cfg = write_site(tmp_path, channel_yaml(identity, f"mqtts://127.0.0.1:{port}", ca, client,
                                            extra),
                     f"  - {{id: g, type: load, channel: {identity}, rate: 50, total: 20}}\n")
    agent = start(cfg)
    ch = Channel(identity)
    try:
        assert wait_for(lambda: agent.stores[ch].stats().dead_letters >= 1, timeout=20)
    finally:
        stop_agent(agent)
    up = agent.uplinks[ch].stats
    assert up.connects >= 1 and up.published_readings == 0
    assert "0x87" in (up.last_error or "")
    assert agent.stores[ch].stats().evicted["rejected"] >= 1
    assert secevents.EVENTS.counts(identity).get("acl.denied", 0) >= 1


@pytest.mark.parametrize("case", ["client-cert-from-rogue-ca", "server-not-trusted",
                                  "hostname-mismatch", "no-client-cert"])
def test_untrusted_certificates_are_refused_and_reported(
        tmp_path: Path, site_pki: PKI, mtls_broker: tuple[Mosquitto, int, int],
        case: str) -> None:
    p = site_pki
    _, ot_port, _ = mtls_broker
    url = f"mqtts://127.0.0.1:{ot_port}"
    tls = (f"{{ca_file: {p.ot_ca.cert}, cert_file: {p.ot_client.cert}, "
           f"key_file: {p.ot_client.key}}}")
    if case == "client-cert-from-rogue-ca":
        tls = (f"{{ca_file: {p.ot_ca.cert}, cert_file: {p.rogue_ot_client.cert}, "
               f"key_file: {p.rogue_ot_client.key}}}")
    elif case == "server-not-trusted":
        tls = (f"{{ca_file: {p.rogue_ca.cert}, cert_file: {p.ot_client.cert}, "
               f"key_file: {p.ot_client.key}}}")
    elif case == "hostname-mismatch":  # a server cert from the right CA, for another name
        other = pki.make_cert(p.ot_ca, tmp_path / "other", "other-broker", server=True,
                              hosts=("other.example",))
        b2 = Mosquitto(tmp_path / "b-other", tls=True, listener_extra=(
            f"cafile {p.ot_ca.cert}\ncertfile {other.cert}\nkeyfile {other.key}\n"
            "require_certificate true\nuse_identity_as_username true\n"))
        b2.start()
        url = b2.url
    elif case == "no-client-cert":
        tls = f"{{ca_file: {p.ot_ca.cert}}}"
    channels = (f"  ot:\n    brokers: [\"{url}\"]\n    reconnect_min: 100ms\n"
                f"    reconnect_max: 300ms\n    tls: {tls}\n")
    cfg = write_site(tmp_path, channels, "  - {id: g, type: load, channel: ot, rate: 10}\n")
    agent = start(cfg)
    up = agent.uplinks[Channel.OT].stats
    try:
        assert wait_for(lambda: up.connect_failures >= 2, timeout=20)
    finally:
        stop_agent(agent)
        if case == "hostname-mismatch":
            b2.stop()
    assert up.connects == 0 and up.published_readings == 0
    assert secevents.EVENTS.counts("ot").get("auth.failure", 0) >= 2
    if case in ("server-not-trusted", "hostname-mismatch"):
        assert "CERTIFICATE_VERIFY_FAILED" in (up.last_error or "")


def test_minimum_tls_version_and_verification_always_on(tmp_path: Path) -> None:
    for version, expect in (("1.2", ssl.TLSVersion.TLSv1_2), ("1.3", ssl.TLSVersion.TLSv1_3)):
        cc = ChannelConfig(brokers=[BrokerURL("mqtts", "h", 8883)],
                           tls=TLSConfig(min_version=version))  # type: ignore[arg-type]
        ctx = tls_context(cc)
        assert ctx.minimum_version == expect
        assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.check_hostname


def test_bind_address_chooses_the_source_interface(
        tmp_path: Path, site_pki: PKI, mtls_broker: tuple[Mosquitto, int, int]) -> None:
    p = site_pki
    b, ot_port, _ = mtls_broker
    cfg = write_site(tmp_path, channel_yaml("ot", f"mqtts://127.0.0.1:{ot_port}", p.ot_ca,
                                            p.ot_client, "    bind_address: 127.0.0.3\n"),
                     "  - {id: g, type: load, channel: ot, rate: 10}\n")
    agent = start(cfg)
    try:
        assert wait_for(lambda: agent.uplinks[Channel.OT].stats.connects >= 1, timeout=20)
    finally:
        stop_agent(agent)
    assert re.search(r"New client connected from 127\.0\.0\.3:\d+ as test-n1-ot",
                     b.log.read_text())


def test_username_and_password_file_over_mtls(tmp_path: Path, site_pki: PKI) -> None:
    p = site_pki
    pw = tmp_path / "mosquitto.passwd"
    subprocess.run(["mosquitto_passwd", "-c", "-b", str(pw), "node-ot", "s3cret-pw"],
                   check=True, capture_output=True)
    b = Mosquitto(tmp_path / "bpw", tls=True, allow_anonymous=False, listener_extra=(
        f"cafile {p.ot_ca.cert}\ncertfile {p.ot_server.cert}\nkeyfile {p.ot_server.key}\n"
        f"require_certificate true\npassword_file {pw}\n"))
    b.start()
    secret = tmp_path / "ot.password"
    secret.write_text("s3cret-pw\n")
    secret.chmod(0o600)
    cfg = write_site(tmp_path, channel_yaml(
        "ot", b.url, p.ot_ca, p.ot_client,
        f"    username: node-ot\n    password_file: {secret}\n"),
        "  - {id: g, type: load, channel: ot, rate: 10}\n")
    try:
        agent = start(cfg)
        try:
            assert wait_for(lambda: agent.uplinks[Channel.OT].stats.connects >= 1, timeout=20)
        finally:
            stop_agent(agent)
        # a wrong password is refused by the broker and reported as an auth failure
        secret.write_text("wrong\n")
        agent = start(cfg)
        up = agent.uplinks[Channel.OT].stats
        try:
            assert wait_for(lambda: up.connect_failures >= 1, timeout=20)
        finally:
            stop_agent(agent)
        assert up.connects == 0
        assert secevents.EVENTS.counts("ot").get("auth.failure", 0) >= 1
    finally:
        b.stop()


@pytest.mark.parametrize("which", ["tls-key", "password"])
def test_loose_secret_files_refuse_to_start_naming_the_fix(
        tmp_path: Path, site_pki: PKI, which: str) -> None:
    p = site_pki
    secret = tmp_path / "ot.password"
    secret.write_text("pw\n")
    secret.chmod(0o600)
    cfg = write_site(tmp_path, channel_yaml(
        "ot", "mqtts://127.0.0.1:1", p.ot_ca, p.ot_client,
        f"    username: u\n    password_file: {secret}\n"), "")
    loose = p.ot_client.key if which == "tls-key" else secret
    loose.chmod(0o640)
    with pytest.raises(KeyFileError) as ei:
        Agent(load_config(cfg, SENSOR_TYPES), SENSOR_TYPES)
    assert f"chmod 600 {loose}" in str(ei.value)
    out = subprocess.run([EDGE_AGENT, "run", "-c", str(cfg)], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 2
    assert f"chmod 600 {loose}" in out.stderr
    assert '"category": "key"' in out.stderr


def test_certificate_expiry_warns_ahead_and_errors_when_expired(
        tmp_path: Path, site_pki: PKI, caplog: pytest.LogCaptureFixture) -> None:
    p = site_pki
    d = tmp_path / "short"
    soon = pki.make_cert(p.ot_ca, d, "test-n1-ot", days=10)
    gone = pki.make_cert(p.ot_ca, d / "old", "test-n1-ot", days=10,
                         not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=30))
    for cert, level, outcome in ((soon, logging.WARNING, "warning"),
                                 (gone, logging.ERROR, "expired")):
        secevents.EVENTS.reset()
        caplog.clear()
        cfg = write_site(tmp_path, channel_yaml("ot", "mqtts://127.0.0.1:1", p.ot_ca, cert), "")
        with caplog.at_level(logging.WARNING):
            agent = Agent(load_config(cfg, SENSOR_TYPES), SENSOR_TYPES)
        try:
            days = agent.health(Channel.OT)["cert_expiry"]
            assert (9 < days <= 10) if outcome == "warning" else (-21 < days < -19)
            assert secevents.EVENTS.counts("ot") == {f"cert.{outcome}": 1}
            assert any(r.levelno == level and str(cert.cert) in r.getMessage()
                       for r in caplog.records)
        finally:
            agent.shutdown()
