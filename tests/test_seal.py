"""End-to-end sealing of IT payloads (HPKE, RFC 9180, signed by the node): envelope, tampering,
forgery, keys, enrolment, CLI, agent."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from edge_agent.config import load_config
from edge_agent.core.errors import ConfigError
from edge_agent.core.model import Channel, Priority
from edge_agent.daemon.runtime import Agent
from edge_agent.devices.registry import SENSOR_TYPES
from edge_agent.security import nodekey, seal
from edge_agent.security.nodekey import NodeKeyError, NodeKeys, enrolment, fingerprint
from edge_agent.tools.consumer import Consumer
from edge_agent.tools.mosquitto import Mosquitto
from edge_agent.uplink.envelope import EnvelopeBuilder, parse
from tests.conftest import EDGE_AGENT, wait_for, write_site

SENML = b'[{"n":"pulse/heart_rate","u":"/min","v":71.5,"t":1.7e9},{"n":"pulse/spo2","v":97}]'
HEAD = {"node": "pi-1", "channel": "it", "lane": "alarm", "seq": [7, 8]}
NODE_KEY = ed25519.Ed25519PrivateKey.generate()


def enrolled(*nodes: tuple[str, str], key: ed25519.Ed25519PrivateKey = NODE_KEY) -> NodeKeys:
    keys = NodeKeys()
    for site, node in nodes or (("s1", "pi-1"),):
        keys.add(site, node, key.public_key())
    return keys


def sealer(public_key: seal.PublicKey, suite: seal.SuiteName = "x25519") -> seal.Sealer:
    return seal.Sealer(public_key, NODE_KEY, "s1", suite)


@pytest.fixture(params=seal.SUITES)
def keypair(request: pytest.FixtureRequest, tmp_path: Path) -> seal.KeyPair:
    return seal.generate_files(request.param, tmp_path / "p.key", tmp_path / "p.pub")


def test_sealed_envelope_keeps_metadata_clear_and_hides_senml(
        keypair: seal.KeyPair, tmp_path: Path) -> None:
    s = seal.Sealer.from_file(tmp_path / "p.pub", NODE_KEY, "s1", keypair.suite)
    payload = EnvelopeBuilder("pi-1", Channel.IT, s).data(Priority.ALARM, 7, 8, SENML)
    msg = parse(payload)
    assert (msg["site"], msg["node"], msg["channel"], msg["lane"], msg["seq"]) == (
        "s1", "pi-1", "it", "alarm", [7, 8])
    assert "senml" not in msg and msg["suite"] == keypair.suite + "+ed25519"
    assert b"heart_rate" not in payload and b"71.5" not in payload
    opened = seal.open_sealed(payload, seal.load_private_key(tmp_path / "p.key"), enrolled())
    assert opened["senml"] == json.loads(SENML) and opened["seq"] == [7, 8]
    assert opened["signer"] == fingerprint(NODE_KEY.public_key())
    # every message has its own ephemeral KEM key: same input, different ciphertext
    assert s.seal({"node": "a", "channel": "it", "lane": "normal", "seq": [1, 1]}, b"[]") \
        != s.seal({"node": "a", "channel": "it", "lane": "normal", "seq": [1, 1]}, b"[]")


@pytest.mark.parametrize("field,value", [("seq", [7, 9]), ("seq", [8, 9]), ("node", "pi-2"),
                                         ("site", "s2"), ("lane", "normal"),
                                         ("channel", "ot")])
def test_a_seal_moved_to_another_site_node_or_seq_does_not_open(field: str,
                                                                value: object) -> None:
    """Even where the same node key is enrolled for the target (the worst case), a genuine
    payload relabelled for another site, node, sequence range, lane or channel is refused:
    the clear fields are bound into the key schedule and the signature."""
    kp = seal.generate("x25519")
    msg = json.loads(sealer(kp.public_key).seal(HEAD, SENML))
    keys = enrolled(("s1", "pi-1"), ("s1", "pi-2"), ("s2", "pi-1"))
    assert seal.open_sealed(msg, kp.private_key, keys)["senml"] == json.loads(SENML)
    msg[field] = value
    with pytest.raises(seal.SealError, match=r"cannot open.*authentication failed"):
        seal.open_sealed(msg, kp.private_key, keys)


@pytest.mark.parametrize("change", ["other store", "store removed", "store added"])
def test_the_store_id_is_bound_into_the_seal(change: str) -> None:
    """The store id joins the bound fields: a genuine payload relabelled to another store
    (a wiped store's range passed off as the new store's, or the other way round), or with
    its store id stripped or added, does not open; one without a store id still does."""
    kp = seal.generate("x25519")
    keys = enrolled()
    with_store = json.loads(sealer(kp.public_key).seal({**HEAD, "store": "9f2c4e1a7b3d5c60"},
                                                       SENML))
    without = json.loads(sealer(kp.public_key).seal(HEAD, SENML))
    assert with_store["store"] == "9f2c4e1a7b3d5c60" and "store" not in without
    assert seal.open_sealed(with_store, kp.private_key, keys)["store"] == "9f2c4e1a7b3d5c60"
    assert seal.open_sealed(without, kp.private_key, keys)["senml"] == json.loads(SENML)
    if change == "other store":
        msg = {**with_store, "store": "0000000000000001"}
    elif change == "store removed":
        msg = {k: v for k, v in with_store.items() if k != "store"}
    else:
        msg = {**without, "store": "9f2c4e1a7b3d5c60"}
    with pytest.raises(seal.SealError, match=r"cannot open.*authentication failed"):
        seal.open_sealed(msg, kp.private_key, keys)


def _forge_v1(public_key: seal.PublicKey, head: dict[str, object], senml: bytes) -> dict[
        str, object]:
    """What anyone holding the platform's PUBLIC key could always make: the earlier unsigned
    format, HPKE base mode, node/channel/lane/seq bound. The old decryptor opened it."""
    info = seal.INFO_PREFIX + json.dumps({**head, "suite": "x25519"}, sort_keys=True,
                                         separators=(",", ":")).encode()
    ct = seal.suite("x25519").encrypt(senml, public_key, info=info)
    return {**head, "suite": "x25519", "sealed": base64.b64encode(ct).decode()}


def _forge_v2(public_key: seal.PublicKey, signature: bytes, head: dict[str, object],
              senml: bytes) -> dict[str, object]:
    """The signed format, built from the platform's public key and a signature of the
    forger's choosing (it has no node key)."""
    name = "x25519+ed25519"
    ct = seal.suite("x25519").encrypt(signature + senml, public_key,
                                      info=seal.info(head, name))
    return {**head, "suite": name, "sealed": base64.b64encode(ct).decode()}


def test_a_forged_seal_made_with_only_the_platform_public_key_is_rejected() -> None:
    kp = seal.generate("x25519")
    keys = enrolled()
    fake_alarm = b'[{"n":"sos/held","vs":"held","t":1.7e9}]'
    head = {"site": "s1", **HEAD}
    forger = ed25519.Ed25519PrivateKey.generate()  # its own key, not enrolled for pi-1
    ctx = seal.context(head, "x25519+ed25519")
    forgeries = [
        (_forge_v1(kp.public_key, HEAD, fake_alarm), "unsigned"),
        (_forge_v2(kp.public_key, b"\0" * 64, head, fake_alarm), "FORGED"),
        (_forge_v2(kp.public_key, forger.sign(seal.signed_data(ctx, fake_alarm)), head,
                   fake_alarm), "FORGED"),
        # a genuine signature over other content, spliced in
        (_forge_v2(kp.public_key, NODE_KEY.sign(seal.signed_data(ctx, SENML)), head,
                   fake_alarm), "FORGED"),
        (_forge_v2(kp.public_key, b"", head, b"[]"), "FORGED"),  # too short to hold one
    ]
    for forged, says in forgeries:
        with pytest.raises(seal.SealError, match=says):
            seal.open_sealed(forged, kp.private_key, keys)
    # not enrolled, or no enrolment given at all: refused too, never opened unchecked
    genuine = sealer(kp.public_key).seal(HEAD, SENML)
    with pytest.raises(seal.SealError, match="node s1/pi-1 is not enrolled"):
        seal.open_sealed(genuine, kp.private_key, enrolled(("s1", "pi-9")))
    with pytest.raises(seal.SealError, match="no enrolled node keys"):
        seal.open_sealed(genuine, kp.private_key)
    # an archive of the earlier format stays readable, on request, marked unsigned
    old = seal.open_sealed(forgeries[0][0], kp.private_key, allow_unsigned=True)
    assert old["signer"] is None and old["senml"][0]["vs"] == "held"
    assert seal.open_sealed(genuine, kp.private_key, keys)["signer"]


def test_flipped_ciphertext_wrong_key_and_suite_mismatch_fail() -> None:
    kp, other = seal.generate("x25519"), seal.generate("x25519")
    msg = json.loads(sealer(kp.public_key).seal(
        {"node": "pi-1", "channel": "it", "lane": "normal", "seq": [1, 2]}, SENML))
    ct = bytearray(base64.b64decode(msg["sealed"]))
    ct[-1] ^= 1
    with pytest.raises(seal.SealError):
        seal.open_sealed({**msg, "sealed": base64.b64encode(ct).decode()}, kp.private_key,
                         enrolled())
    with pytest.raises(seal.SealError):
        seal.open_sealed(msg, other.private_key, enrolled())
    with pytest.raises(seal.SealError, match="suite"):
        seal.open_sealed(msg, seal.generate("mlkem768-x25519").private_key, enrolled())
    with pytest.raises(seal.SealError, match="does not fit"):
        seal.Sealer(kp.public_key, NODE_KEY, "s1", "mlkem768-x25519")


def test_enrolment_records_name_their_node_and_bad_ones_are_located(tmp_path: Path) -> None:
    a, b = ed25519.Ed25519PrivateKey.generate(), ed25519.Ed25519PrivateKey.generate()
    d = tmp_path / "nodes"
    d.mkdir()
    (d / "a.pub").write_text(enrolment("s1", "pi-1", a.public_key()))
    (d / "b.pub").write_text(enrolment("s1", "pi-2", b.public_key())
                             + enrolment("s2", "pi-1", b.public_key()))
    keys = NodeKeys.load(d)
    assert keys.nodes() == [("s1", "pi-1"), ("s1", "pi-2"), ("s2", "pi-1")]
    assert [fingerprint(k) for k in keys.get("s1", "pi-1")] == [fingerprint(a.public_key())]
    bad = tmp_path / "bad.pub"
    bad.write_text(enrolment("s1", "pi-1", a.public_key()).replace("node: pi-1\n", ""))
    with pytest.raises(NodeKeyError, match=r"bad\.pub:\d+: public key without 'site:' and "
                                           r"'node:'"):
        NodeKeys.load(bad)
    bad.write_text("site: s1\nnode: n\nhello\n")
    with pytest.raises(NodeKeyError, match=r"bad\.pub:3: expected"):
        NodeKeys.load(bad)
    x = seal.generate_files("x25519", tmp_path / "p.key", tmp_path / "p.pub")
    bad.write_text("site: s1\nnode: n\n" + (tmp_path / "p.pub").read_text())
    assert x.suite == "x25519"
    with pytest.raises(NodeKeyError, match="not an Ed25519 public key"):
        NodeKeys.load(bad)


def test_key_files_are_pem_private_owner_only_never_overwritten(
        keypair: seal.KeyPair, tmp_path: Path) -> None:
    assert (tmp_path / "p.key").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "p.pub").read_bytes().startswith(b"-----BEGIN ")
    assert seal.suite_of(seal.load_public_key(tmp_path / "p.pub")) == keypair.suite
    with pytest.raises(FileExistsError):
        seal.generate_files(keypair.suite, tmp_path / "p.key", tmp_path / "p2.pub")
    (tmp_path / "p.key").chmod(0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        seal.load_private_key(tmp_path / "p.key")


def test_unseal_cli_opens_lines_and_reports_bad_ones(tmp_path: Path) -> None:
    out = subprocess.run([EDGE_AGENT, "keys", "platform", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    s = seal.Sealer.from_file(tmp_path / "platform-it.pub", NODE_KEY, "s1")
    lines = [s.seal({"node": "pi-1", "channel": "it", "lane": "normal", "seq": [i, i]},
                    b'[{"n":"s/x","v":%d}]' % i).decode() for i in (1, 2)]
    forged = json.dumps(_forge_v2(seal.load_public_key(tmp_path / "platform-it.pub"),
                                  b"\1" * 64, {"site": "s1", **HEAD}, b'[{"n":"s/x","v":9}]'))
    src = tmp_path / "payloads.jsonl"
    src.write_text("\n".join([lines[0], '{"node":"n"}', forged, lines[1]]) + "\n")
    nodes = tmp_path / "nodes.pub"
    nodes.write_text(enrolment("s1", "pi-1", NODE_KEY.public_key()))
    key = str(tmp_path / "platform-it.key")
    out = subprocess.run([EDGE_AGENT, "unseal", "--key", key, "--nodes", str(nodes), str(src)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    opened = [json.loads(line) for line in out.stdout.splitlines()]
    assert [o["senml"][0]["v"] for o in opened] == [1, 2]
    assert {o["signer"] for o in opened} == {fingerprint(NODE_KEY.public_key())}
    assert "skipped 1 line(s) that are not sealed data messages" in out.stderr  # line 2
    assert "line 3: cannot open seq [7, 8]: FORGED" in out.stderr
    out = subprocess.run([EDGE_AGENT, "unseal", "--key", key, "--nodes", str(nodes)],
                         input=lines[0] + "\n", capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and json.loads(out.stdout)["seq"] == [1, 1]
    out = subprocess.run([EDGE_AGENT, "unseal", "--key", key], input=lines[0] + "\n",
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 1 and "--nodes" in out.stderr and not out.stdout
    out = subprocess.run([EDGE_AGENT, "unseal", "--key", key, "--nodes", str(src)],
                         input=lines[0] + "\n", capture_output=True, text=True, timeout=30)
    assert out.returncode == 2 and "enrolled node keys" in out.stderr


def test_unseal_reads_what_mosquitto_sub_v_prints(tmp_path: Path) -> None:
    """``mosquitto_sub -v -t 'edge/#' | edge-agent unseal ...``: topic, space, payload;
    status and health lines (and clear data) are skipped with a count."""
    out = subprocess.run([EDGE_AGENT, "keys", "platform", "--out", str(tmp_path)],
                         capture_output=True, text=True, timeout=30)
    assert out.returncode == 0, out.stderr
    s = seal.Sealer.from_file(tmp_path / "platform-it.pub", NODE_KEY, "s1")
    sealed = s.seal({"node": "pi-1", "channel": "it", "lane": "alarm", "seq": [3, 3]},
                    b'[{"n":"s/x","v":3}]').decode()
    nodes = tmp_path / "nodes.pub"
    nodes.write_text(enrolment("s1", "pi-1", NODE_KEY.public_key()))
    text = "\n".join([
        'edge/s1/pi-1/it/status {"state":"online","node":"pi-1"}',
        f"edge/s1/pi-1/it/alarm {sealed}",
        'edge/s1/pi-1/it/health {"node":"pi-1","store":{}}',
        "edge/s1/pi-1/it/status offline",
    ]) + "\n"
    out = subprocess.run([EDGE_AGENT, "unseal", "--key", str(tmp_path / "platform-it.key"),
                          "--nodes", str(nodes)], input=text, capture_output=True, text=True,
                         timeout=30)
    assert out.returncode == 0, out.stderr
    (opened,) = [json.loads(line) for line in out.stdout.splitlines()]
    assert opened["topic"] == "edge/s1/pi-1/it/alarm" and opened["senml"][0]["v"] == 3
    assert "skipped 3 line(s)" in out.stderr


def test_it_channel_must_decide_on_sealing(tmp_path: Path) -> None:
    cfg = write_site(tmp_path, "mqtt://127.0.0.1:1", "mqtt://127.0.0.1:2",
                     extra_it="    seal: {suite: x25519}\n")
    with pytest.raises(ConfigError) as ei:
        load_config(cfg, SENSOR_TYPES)
    assert "channels.it.seal: seal: give public_key_file" in str(ei.value)
    text = cfg.read_text().replace("    seal: {suite: x25519}\n", "")
    cfg.write_text(text)
    out = subprocess.run([EDGE_AGENT, "check-config", str(cfg)], capture_output=True,
                         text=True, timeout=30)
    assert out.returncode == 1
    assert ": channels.it.seal: health data is sealed end to end by default" in out.stderr


def test_agent_seals_it_and_consumer_with_key_opens_it(
        tmp_path: Path, broker_factory: Callable[..., Mosquitto]) -> None:
    kp = seal.generate_files("mlkem768-x25519", tmp_path / "p.key", tmp_path / "p.pub")
    ot, it = broker_factory(), broker_factory()
    cfg = write_site(tmp_path, ot.url, it.url,
                     sensors="  - {id: gen-it, type: load, channel: it, rate: 100}\n",
                     extra_it=f"    seal: {{public_key_file: {tmp_path / 'p.pub'}, "
                              "suite: mlkem768-x25519}\n")
    agent = Agent(load_config(cfg, SENSOR_TYPES), SENSOR_TYPES)  # creates the node key
    pub = tmp_path / "state" / "keys" / "node-sign.pub"
    assert pub.stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "state" / "keys" / "node-sign.key").stat().st_mode & 0o777 == 0o600
    blind = Consumer("127.0.0.1", it.port, "edge/test/n1/it").start()  # the broker's view
    platform = Consumer("127.0.0.1", it.port, "edge/test/n1/it", private_key=kp.private_key,
                        node_keys=NodeKeys.load(pub)).start()
    stranger = Consumer("127.0.0.1", it.port, "edge/test/n1/it", private_key=kp.private_key,
                        node_keys=enrolled(("test", "n1"))).start()  # another key for n1
    agent.start()
    try:
        assert wait_for(lambda: platform.rec.readings > 100 and stranger.rec.bad)
    finally:
        agent.stop_event.set()
        agent.shutdown()
        blind.stop()
        platform.stop()
        stranger.stop()
    seen = blind.snapshot()
    assert seen.messages and all("senml" not in m.msg and "sealed" in m.msg
                                 and m.msg["site"] == "test" for m in seen.messages)
    got = platform.snapshot()
    assert not got.bad and got.ranges.gaps(1, got.ranges.max()) == []
    assert {r["n"] for m in got.messages for r in m.msg["senml"]} == {"gen-it/counter"}
    assert all(m.msg["suite"] == "mlkem768-x25519+ed25519" for m in got.messages)
    assert stranger.rec.readings == 0 and "FORGED" in stranger.rec.bad[0]


def _unseal(key: Path, source: str) -> tuple[int, str]:
    import io

    from edge_agent.cli.unseal import run_unseal

    out, err = io.StringIO(), io.StringIO()
    rc = run_unseal(key, source, out, err)
    return rc, err.getvalue()


def test_unseal_unreadable_file_is_an_error_not_a_traceback(tmp_path: Path) -> None:
    seal.generate_files("x25519", tmp_path / "p.key", tmp_path / "p.pub")
    key = tmp_path / "p.key"
    (tmp_path / "bin").write_bytes(b"\xff\xfe\x00\x81" * 64)
    for name, reason in (("missing", "No such file"), (".", "Is a directory"),
                         ("bin", "not UTF-8 text")):
        source = str(tmp_path / name)
        rc, err = _unseal(key, source)
        assert rc == 2, name
        assert err.startswith(f"unseal: cannot read {source}: {reason}"), err


def test_unseal_names_what_is_wrong_with_a_record(tmp_path: Path) -> None:
    kp = seal.generate_files("x25519", tmp_path / "p.key", tmp_path / "p.pub")
    for payload, says in (('{"sealed": 5}', "'sealed' is a JSON number, expected a base64"),
                          ('{"sealed": null}', "'sealed' is a JSON null"),
                          ('{"sealed": "!!"}', "'sealed' is not valid base64"),
                          ('[1]', "a JSON array, not an object"),
                          ('{"node": "n"}', "no 'sealed' field")):
        with pytest.raises(seal.SealError, match=says):
            seal.open_sealed(payload, kp.private_key)
    src = tmp_path / "in.jsonl"
    src.write_text('{"sealed": 5}\n')
    rc, err = _unseal(tmp_path / "p.key", str(src))
    assert rc == 1 and "line 1: 'sealed' is a JSON number" in err


@pytest.mark.parametrize("mode", [0o644, 0o600])
def test_unseal_with_the_public_key_says_so(tmp_path: Path, mode: int) -> None:
    seal.generate_files("mlkem768-x25519", tmp_path / "p.key", tmp_path / "p.pub")
    (tmp_path / "p.pub").chmod(mode)
    with pytest.raises(seal.SealError, match=r"public key; give the private key.*p\.key"):
        seal.load_private_key(tmp_path / "p.pub")
    rc, err = _unseal(tmp_path / "p.pub", "-")
    assert rc == 2 and "public key" in err and "chmod" not in err


def test_missing_platform_key_points_to_keys_platform(tmp_path: Path) -> None:
    from edge_agent.security.keys import check_private

    rc, err = _unseal(tmp_path / "nope.key", "-")
    assert rc == 2 and "edge-agent keys platform" in err and "keys init" not in err
    with pytest.raises(PermissionError, match="edge-agent keys init"):  # store keys: unchanged
        check_private(tmp_path / "nope.key")


def test_keys_init_makes_the_node_signing_key_status_shows_it_export_enrols_it(
        tmp_path: Path) -> None:
    seal.generate_files("x25519", tmp_path / "p.key", tmp_path / "p.pub")
    cfg = write_site(tmp_path, "mqtt://127.0.0.1:1", "mqtt://127.0.0.1:2",
                     extra_it=f"    seal: {{public_key_file: {tmp_path / 'p.pub'}}}\n")
    keys = tmp_path / "state" / "keys"

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([EDGE_AGENT, "keys", *args, "-c", str(cfg)], capture_output=True,
                              text=True, timeout=60)

    out = cli("init")
    assert out.returncode == 0, out.stderr
    assert (keys / "node-sign.key").stat().st_mode & 0o777 == 0o600
    assert (keys / "node-sign.pub").stat().st_mode & 0o777 == 0o644
    enrolled = NodeKeys.load(keys / "node-sign.pub")
    (key,) = enrolled.get("test", "n1")
    fp = fingerprint(key)
    assert f"enrol   {keys / 'node-sign.pub'}" in out.stdout and fp in out.stdout
    assert "kept" in cli("init").stdout and NodeKeys.load(keys / "node-sign.pub").get(
        "test", "n1")[0] == key  # never replaced
    status = cli("status")
    assert status.returncode == 0 and f"node signing key: {keys / 'node-sign.key'} (0600) {fp}" \
        in status.stdout
    export = cli("export")
    assert export.returncode == 0 and export.stdout == (keys / "node-sign.pub").read_text()
    assert "site: test\nnode: n1\n-----BEGIN PUBLIC KEY-----" in export.stdout
    # what the agent seals with that key opens with the exported record, and only with it
    s = seal.Sealer.from_file(tmp_path / "p.pub", nodekey.load(keys / "node-sign.key"), "test")
    payload = s.seal({"node": "n1", "channel": "it", "lane": "normal", "seq": [1, 1]}, b"[]")
    assert seal.open_sealed(payload, seal.load_private_key(tmp_path / "p.key"),
                            enrolled)["signer"] == fp
    out = cli("shred", "--all", "--yes")
    assert out.returncode == 0, out.stderr
    assert not (keys / "node-sign.key").exists() and not (keys / "node-sign.pub").exists()
    assert cli("export").returncode == 1
