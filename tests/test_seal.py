"""End-to-end sealing of IT payloads (HPKE, RFC 9180): envelope, tampering, keys, CLI, agent."""

from __future__ import annotations

import base64
import json
import subprocess
from collections.abc import Callable
from pathlib import Path

import pytest

from edge_agent import seal
from edge_agent.config import load_config
from edge_agent.consumer import Consumer
from edge_agent.drivers.registry import SENSOR_TYPES
from edge_agent.errors import ConfigError
from edge_agent.model import Channel, Priority
from edge_agent.mosquitto import Mosquitto
from edge_agent.runtime import Agent
from edge_agent.uplink.envelope import EnvelopeBuilder, parse
from tests.conftest import EDGE_AGENT, wait_for, write_site

SENML = b'[{"n":"pulse/heart_rate","u":"/min","v":71.5,"t":1.7e9},{"n":"pulse/spo2","v":97}]'


@pytest.fixture(params=seal.SUITES)
def keypair(request: pytest.FixtureRequest, tmp_path: Path) -> seal.KeyPair:
    return seal.generate_files(request.param, tmp_path / "p.key", tmp_path / "p.pub")


def test_sealed_envelope_keeps_metadata_clear_and_hides_senml(
        keypair: seal.KeyPair, tmp_path: Path) -> None:
    sealer = seal.Sealer.from_file(tmp_path / "p.pub", keypair.suite)
    payload = EnvelopeBuilder("pi-1", Channel.IT, sealer).data(Priority.ALARM, 7, 8, SENML)
    msg = parse(payload)
    assert (msg["node"], msg["channel"], msg["lane"], msg["seq"]) == ("pi-1", "it", "alarm",
                                                                     [7, 8])
    assert "senml" not in msg and msg["suite"] == keypair.suite
    assert b"heart_rate" not in payload and b"71.5" not in payload
    opened = seal.open_sealed(payload, seal.load_private_key(tmp_path / "p.key"))
    assert opened["senml"] == json.loads(SENML) and opened["seq"] == [7, 8]
    # every message has its own ephemeral KEM key: same input, different ciphertext
    assert sealer.seal({"node": "a", "channel": "it", "lane": "normal", "seq": [1, 1]}, b"[]") \
        != sealer.seal({"node": "a", "channel": "it", "lane": "normal", "seq": [1, 1]}, b"[]")


@pytest.mark.parametrize("field,value", [("seq", [7, 9]), ("node", "pi-2"), ("lane", "normal"),
                                         ("channel", "ot")])
def test_changing_any_clear_field_makes_it_fail_to_open(field: str, value: object,
                                                        tmp_path: Path) -> None:
    kp = seal.generate("x25519")
    payload = seal.Sealer(kp.public_key).seal(
        {"node": "pi-1", "channel": "it", "lane": "alarm", "seq": [7, 8]}, SENML)
    msg = json.loads(payload)
    msg[field] = value
    with pytest.raises(seal.SealError, match="authentication failed"):
        seal.open_sealed(msg, kp.private_key)


def test_flipped_ciphertext_wrong_key_and_suite_mismatch_fail() -> None:
    kp, other = seal.generate("x25519"), seal.generate("x25519")
    msg = json.loads(seal.Sealer(kp.public_key).seal(
        {"node": "n", "channel": "it", "lane": "normal", "seq": [1, 2]}, SENML))
    ct = bytearray(base64.b64decode(msg["sealed"]))
    ct[-1] ^= 1
    with pytest.raises(seal.SealError):
        seal.open_sealed({**msg, "sealed": base64.b64encode(ct).decode()}, kp.private_key)
    with pytest.raises(seal.SealError):
        seal.open_sealed(msg, other.private_key)
    with pytest.raises(seal.SealError, match="suite"):
        seal.open_sealed(msg, seal.generate("mlkem768-x25519").private_key)
    with pytest.raises(seal.SealError, match="does not fit"):
        seal.Sealer(kp.public_key, "mlkem768-x25519")


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
    sealer = seal.Sealer.from_file(tmp_path / "platform-it.pub")
    lines = [sealer.seal({"node": "n", "channel": "it", "lane": "normal", "seq": [i, i]},
                         b'[{"n":"s/x","v":%d}]' % i).decode() for i in (1, 2)]
    src = tmp_path / "payloads.jsonl"
    src.write_text("\n".join([lines[0], '{"node":"n"}', lines[1]]) + "\n")
    out = subprocess.run([EDGE_AGENT, "unseal", "--key", str(tmp_path / "platform-it.key"),
                          str(src)], capture_output=True, text=True, timeout=30)
    assert out.returncode == 1
    opened = [json.loads(line) for line in out.stdout.splitlines()]
    assert [o["senml"][0]["v"] for o in opened] == [1, 2]
    assert "line 2: not a sealed message" in out.stderr
    out = subprocess.run([EDGE_AGENT, "unseal", "--key", str(tmp_path / "platform-it.key")],
                         input=lines[0] + "\n", capture_output=True, text=True, timeout=30)
    assert out.returncode == 0 and json.loads(out.stdout)["seq"] == [1, 1]


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
    blind = Consumer("127.0.0.1", it.port, "edge/test/n1/it").start()  # the broker's view
    platform = Consumer("127.0.0.1", it.port, "edge/test/n1/it",
                        private_key=kp.private_key).start()
    cfg = write_site(tmp_path, ot.url, it.url,
                     sensors="  - {id: gen-it, type: load, channel: it, rate: 100}\n",
                     extra_it=f"    seal: {{public_key_file: {tmp_path / 'p.pub'}, "
                              "suite: mlkem768-x25519}\n")
    agent = Agent(load_config(cfg, SENSOR_TYPES), SENSOR_TYPES)
    agent.start()
    try:
        assert wait_for(lambda: platform.rec.readings > 100)
    finally:
        agent.stop_event.set()
        agent.shutdown()
        blind.stop()
        platform.stop()
    seen = blind.snapshot()
    assert seen.messages and all("senml" not in m.msg and "sealed" in m.msg
                                 for m in seen.messages)
    got = platform.snapshot()
    assert not got.bad and got.ranges.gaps(1, got.ranges.max()) == []
    assert {r["n"] for m in got.messages for r in m.msg["senml"]} == {"gen-it/counter"}


def _unseal(key: Path, source: str) -> tuple[int, str]:
    import io

    out, err = io.StringIO(), io.StringIO()
    rc = seal.run_unseal(key, source, out, err)
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
    from edge_agent.store.keys import check_private

    rc, err = _unseal(tmp_path / "nope.key", "-")
    assert rc == 2 and "edge-agent keys platform" in err and "keys init" not in err
    with pytest.raises(PermissionError, match="edge-agent keys init"):  # store keys: unchanged
        check_private(tmp_path / "nope.key")
