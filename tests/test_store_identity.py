"""A store's id (edge_agent/store/identity.py) and the envelope field that carries it: the
platform can tell two stores apart, and a wiped store from a replay."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from edge_agent.core.model import Channel, Priority, Reading
from edge_agent.security.nodekey import NodeKeys
from edge_agent.security.seal import Sealer, generate, open_sealed
from edge_agent.store import identity
from edge_agent.store.channel_store import ChannelStore
from edge_agent.uplink.envelope import EnvelopeBuilder, parse

KEY = bytes(range(32))


def store(root: Path) -> ChannelStore:
    return ChannelStore(root, Channel.OT, KEY)


def test_a_new_store_gets_a_random_id_and_keeps_it(tmp_path: Path) -> None:
    s = store(tmp_path / "a")
    sid = s.store_id
    assert identity.read(tmp_path / "a" / "ot") == sid and len(sid) == 16
    s.append([Reading("g", Channel.OT, Priority.NORMAL, "counter", 1.0, 1.7e9)])
    s.close()
    s = store(tmp_path / "a")
    assert s.store_id == sid  # a restart is the same store
    s.close()
    other = store(tmp_path / "b")
    assert other.store_id != sid  # another node's (or another card's) store
    other.close()


def test_a_wiped_store_is_a_new_store(tmp_path: Path) -> None:
    s = store(tmp_path)
    sid = s.store_id
    s.close()
    shutil.rmtree(tmp_path / "ot")
    s = store(tmp_path)
    assert s.store_id != sid and s.stats().next_seq == 1
    s.close()


def test_numbering_reset_with_the_id_left_behind_gets_a_new_id(tmp_path: Path) -> None:
    """The id lives with the numbering: numbers starting again at 1 under the old id
    would look like a replay."""
    s = store(tmp_path)
    sid = s.store_id
    s.close()
    for f in (tmp_path / "ot").glob("seq.*"):
        f.unlink()
    s = store(tmp_path)
    assert s.store_id != sid
    s.close()


def test_a_store_from_before_ids_gets_one_then_keeps_it(tmp_path: Path) -> None:
    s = store(tmp_path)
    s.close()
    (tmp_path / "ot" / identity.FILE).unlink()
    s = store(tmp_path)
    sid = s.store_id
    s.close()
    s = store(tmp_path)
    assert s.store_id == sid
    s.close()


def test_an_unreadable_id_is_replaced_and_said(tmp_path: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    s = store(tmp_path)
    sid = s.store_id
    s.close()
    (tmp_path / "ot" / identity.FILE).write_bytes(b"\xff garbage")
    with caplog.at_level(logging.WARNING, "edge_agent.store"):
        s = store(tmp_path)
    assert s.store_id != sid and identity.read(tmp_path / "ot") == s.store_id
    assert any("gets a new id" in r.getMessage() for r in caplog.records)
    s.close()


def test_envelopes_carry_the_store_id_clear_and_sealed() -> None:
    senml = b'[{"n":"g/counter","v":1.0,"t":1.7e9}]'
    clear = parse(EnvelopeBuilder("pi-0042", Channel.OT, store="0123456789abcdef")
                  .data(Priority.NORMAL, 5, 5, senml))
    assert clear["store"] == "0123456789abcdef" and clear["seq"] == [5, 5]
    assert "store" not in json.loads(EnvelopeBuilder("pi-0042", Channel.OT)
                                     .data(Priority.NORMAL, 5, 5, senml))
    kp = generate("x25519")
    node_key = ed25519.Ed25519PrivateKey.generate()
    sealer = Sealer(kp.public_key, node_key, "namwon-01")
    msg = json.loads(EnvelopeBuilder("pi-0042", Channel.IT, sealer, store="0123456789abcdef")
                     .data(Priority.ALARM, 7, 7, senml))
    assert msg["store"] == "0123456789abcdef"
    enrolled = NodeKeys()
    enrolled.add("namwon-01", "pi-0042", node_key.public_key())
    opened = open_sealed(msg, kp.private_key, enrolled)
    assert opened["senml"][0]["n"] == "g/counter"
