"""The AT text-mode SMS conversation: whole and byte by byte, failures, bounds, fuzz."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge_agent.core.errors import ProtocolError
from edge_agent.protocols.at_modem import (
    NEED_DATA,
    SmsFailed,
    SmsSent,
    SmsSession,
    SmsTextError,
)

OK = b"\r\nOK\r\n"


def converse(session: SmsSession, answers: list[bytes], bytewise: bool = False) -> tuple[
        list[bytes], object]:
    """Answer each command in turn; return what was written and the final event."""
    written: list[bytes] = []
    for answer in answers:
        written.append(session.data_to_send())
        chunks = [answer[i:i + 1] for i in range(len(answer))] if bytewise else [answer]
        for c in chunks:
            session.receive_data(c)
        ev = session.next_event()
        if ev is not NEED_DATA:
            return written, ev
    return written, session.next_event()


HAPPY = [b"ATE0\r\r\nOK\r\n", b"\r\n+CREG: 0,1\r\n" + OK, OK, b"\r\n> ",
         b"\r\n+CMGS: 17\r\n" + OK]


@pytest.mark.parametrize("bytewise", [False, True])
def test_sends_one_text(bytewise: bool) -> None:
    s = SmsSession("+821012345678", "Alarm site s1 node n1: inactivity")
    written, ev = converse(s, HAPPY, bytewise)
    assert written == [b"ATE0\r", b"AT+CREG?\r", b"AT+CMGF=1\r",
                       b'AT+CMGS="+821012345678"\r',
                       b"Alarm site s1 node n1: inactivity\x1a"]
    assert ev == SmsSent(17)
    assert s.done and s.next_event() is NEED_DATA  # an event is given once


def test_cms_error_is_a_failure_with_its_code() -> None:
    s = SmsSession("0101234567", "x")
    _, ev = converse(s, [*HAPPY[:4], b"\r\n+CMS ERROR: 38\r\n"])
    assert ev == SmsFailed("cms", "38", "text")


def test_not_registered_stops_before_sending() -> None:
    s = SmsSession("0101234567", "x")
    _, ev = converse(s, [OK, b"\r\n+CREG: 0,0\r\n" + OK])
    assert ev == SmsFailed("no_network", None, "AT+CREG?")
    assert s.data_to_send() == b""


def test_roaming_is_registered_and_urcs_are_ignored() -> None:
    s = SmsSession("0101234567", "x")
    _, ev = converse(s, [OK, b"\r\nRING\r\n\r\n+CREG: 2,5\r\n" + OK, b"\r\n+CMTI: \"SM\",3\r\n"
                         + OK, b"> ", b"\r\n+CMGS: 3\r\n" + OK])
    assert ev == SmsSent(3)


def test_bare_error_and_timeout() -> None:
    s = SmsSession("0101234567", "x")
    _, ev = converse(s, [OK, b"\r\n+CREG: 0,1\r\n" + OK, b"\r\nERROR\r\n"])
    assert ev == SmsFailed("error", None, "AT+CMGF=1")
    t = SmsSession("0101234567", "x")
    t.timeout()
    assert t.next_event() == SmsFailed("timeout", None, "ATE0")


def test_ok_without_a_reference_is_not_a_delivery() -> None:
    s = SmsSession("0101234567", "x")
    _, ev = converse(s, [*HAPPY[:4], OK])
    assert isinstance(ev, SmsFailed)


def test_a_line_without_end_is_bounded() -> None:
    s = SmsSession("0101234567", "x")
    with pytest.raises(ProtocolError):
        s.receive_data(b"x" * 600)
    assert isinstance(s.next_event(), SmsFailed)


@pytest.mark.parametrize("number", ["12", "+82 10 1234", "0101234567\r", "+" + "1" * 21, ""])
def test_bad_numbers(number: str) -> None:
    with pytest.raises(SmsTextError):
        SmsSession(number, "x")


@pytest.mark.parametrize("text", ["x" * 161, "a\x1ab", "a\x1bb", "온도"])
def test_bad_texts(text: str) -> None:
    with pytest.raises(SmsTextError):
        SmsSession("0101234567", text)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=64), max_size=12))
def test_fuzz_either_an_event_or_a_protocol_error(chunks: list[bytes]) -> None:
    s = SmsSession("0101234567", "x")
    try:
        for c in chunks:
            s.data_to_send()
            s.receive_data(c)
    except ProtocolError:
        return
    ev = s.next_event()
    assert ev is NEED_DATA or isinstance(ev, SmsSent | SmsFailed)
