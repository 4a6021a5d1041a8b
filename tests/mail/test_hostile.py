"""Hostile input: every kind of it parses to something, with the work bounded by the named
limits and the fault flagged; none raises. The wall-clock bound is a generous safety net
(ten times what a loaded machine needs), the limits are what is asserted."""

from __future__ import annotations

import random
import time
from collections.abc import Callable

import pytest

from actors.mail import headers, htmltext, parse
from actors.mail.bounces import detect
from actors.mail.loops import check
from actors.mail.message import Defect, ParsedMail
from actors.mail.reply import reply_of

WALL_CLOCK_BOUND_S = 30.0
HEAD = b"From: a@example.com\r\nTo: support@example.net\r\nSubject: x\r\nMIME-Version: 1.0\r\n"


def _everything(raw: bytes) -> ParsedMail:
    """Parse, extract the reply, check loops and bounces: all bounded, none raising."""
    started = time.perf_counter()
    mail = parse.parse(raw)
    reply_of(mail)
    check(mail)
    detect(raw)
    assert time.perf_counter() - started < WALL_CLOCK_BOUND_S
    assert "\x00" not in mail.text + mail.subject
    assert len(mail.text) <= parse.MAX_TEXT_CHARS
    return mail


def _mime_bomb(parts: int) -> bytes:
    body = b"".join(b"--b\r\nContent-Type: image/png\r\n\r\nx\r\n" for _ in range(parts))
    return HEAD + b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n' + body + b"--b--\r\n"


def test_a_100000_part_mime_bomb_is_cut_at_max_parts() -> None:
    mail = _everything(_mime_bomb(100_000))
    assert Defect.TOO_MANY_PARTS in mail.defects
    assert 0 < len(mail.attachments) <= parse.MAX_PARTS


def test_a_mail_within_the_part_limit_keeps_every_part() -> None:
    mail = _everything(_mime_bomb(100))
    assert len(mail.attachments) == 100
    assert Defect.TOO_MANY_PARTS not in mail.defects


def test_multiparts_nested_5000_deep_stop_at_max_depth() -> None:
    nest = b"".join(
        b'Content-Type: multipart/mixed; boundary="b%d"\r\n\r\n--b%d\r\n' % (i, i)
        for i in range(5000)
    )
    mail = _everything(HEAD + nest + b"Content-Type: text/plain\r\n\r\nhi\r\n")
    assert Defect.TOO_MANY_PARTS in mail.defects or Defect.TOO_DEEP in mail.defects


def test_messages_attached_5000_deep_parse_to_something() -> None:
    nest = b"Content-Type: message/rfc822\r\n\r\n" * 5000
    mail = _everything(HEAD + nest + b"Subject: inner\r\n\r\nhi\r\n")
    assert mail.defects  # cut, too deep, or read as text: flagged in any case


def test_a_10_mb_body_line_is_cut_at_max_text_chars() -> None:
    mail = _everything(HEAD + b"Content-Type: text/plain\r\n\r\n" + b"a" * 10_000_000 + b"\r\n")
    assert len(mail.text) == parse.MAX_TEXT_CHARS
    assert Defect.BODY_TOO_LONG in mail.defects


def test_a_10_mb_header_line_is_cut_at_max_header_chars() -> None:
    mail = _everything(b"From: a@example.com\r\nSubject: " + b"a" * 10_000_000 + b"\r\n\r\nhi")
    assert len(mail.subject) <= headers.MAX_HEADER_CHARS
    assert Defect.HEADER_TOO_LONG in mail.defects
    assert mail.text == "hi"


def test_a_10_mb_address_line_is_read_by_the_linear_parser() -> None:
    mail = _everything(
        b"From: a@example.com\r\nTo: " + b"b@example.com, " * 700_000 + b"\r\n\r\nhi"
    )
    assert Defect.HEADER_TOO_LONG in mail.defects
    assert mail.to and all(a.address == "b@example.com" for a in mail.to[:-1])


def test_a_10_mb_html_line_is_cut_at_max_html_chars() -> None:
    mail = _everything(HEAD + b"Content-Type: text/html\r\n\r\n" + b"<b>a</b>" * 1_300_000)
    assert Defect.BODY_TOO_LONG in mail.defects
    assert mail.html is not None and len(mail.html) <= htmltext.MAX_HTML_CHARS
    assert mail.text_from_html


def test_too_many_header_fields_are_cut_at_max_headers() -> None:
    fields = b"".join(b"X-H%d: v\r\n" % i for i in range(50_000))
    mail = _everything(b"From: a@example.com\r\n" + fields + b"\r\nhi")
    assert len(mail.headers) == headers.MAX_HEADERS
    assert Defect.TOO_MANY_HEADERS in mail.defects


def test_a_message_over_max_message_bytes_is_cut() -> None:
    mail = _everything(HEAD + b"\r\n" + b"x" * (parse.MAX_MESSAGE_BYTES + 10))
    assert Defect.TOO_LARGE in mail.defects


def test_nul_bytes_become_replacement_characters_and_are_flagged() -> None:
    mail = _everything(b"From: Ann\x00 <ann@example.com>\r\nSubject: x\x00y\r\n\r\nbody\x00here")
    assert mail.subject == "x\ufffdy"
    assert mail.text == "body\ufffdhere"
    assert mail.from_address is not None and "\x00" not in (mail.from_address.name or "")
    assert Defect.CONTROL_CHARACTERS in mail.defects


def test_invalid_base64_keeps_what_decodes_and_is_flagged() -> None:
    raw = HEAD + (
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\nContent-Type: text/plain\r\n'
        b"\r\nsee attached\r\n--b\r\nContent-Type: application/pdf; name=a.pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\nJVBE*Ri0x!!!==\r\n--b--\r\n"
    )
    mail = _everything(raw)
    assert mail.text.strip() == "see attached"
    assert [a.filename for a in mail.attachments] == ["a.pdf"]
    assert Defect.MALFORMED_BASE64 in mail.defects


@pytest.mark.parametrize("charset", ["x-no-such-charset", "hex", "rot13", "zlib", "utf-7"])
def test_an_unknown_or_odd_charset_decodes_with_replacement(charset: str) -> None:
    raw = HEAD + f"Content-Type: text/plain; charset={charset}\r\n\r\n".encode() + b"caf\xc3\xa9"
    mail = _everything(raw)
    assert mail.text.startswith("caf")
    if charset != "utf-7":
        assert Defect.UNKNOWN_CHARSET in mail.defects


def test_bytes_that_are_not_in_the_declared_charset_are_flagged() -> None:
    raw = HEAD + b"Content-Type: text/plain; charset=us-ascii\r\n\r\ncaf\xc3\xa9"
    mail = _everything(raw)
    assert mail.text == "café"
    assert Defect.CHARSET_MISMATCH in mail.defects


@pytest.mark.parametrize(
    "make",
    [
        lambda: b"",
        lambda: b"\r\n\r\n",
        lambda: b"no header at all, just text",
        lambda: random.Random(9).randbytes(200_000),
        lambda: b"Content-Type: multipart/mixed\r\n\r\nno boundary here",
        lambda: b"Content-Type: multipart/mixed; boundary=\r\n\r\n--\r\n--\r\n",
        lambda: b"Subject: =?utf-8?B?!!!?= =?x-bad?Q?=ZZ?=\r\nFrom: =?utf-8?q?\xff?= <@>\r\n\r\n",
        lambda: b"Date: not a date\r\nMessage-ID: <a b c>\r\nReturn-Path: <\r\n\r\n",
        lambda: b"Content-Disposition: attachment; filename*=utf-8''%ZZ%\xff\r\n\r\nx",
    ],
)
def test_garbage_parses_to_something(make: Callable[[], bytes]) -> None:
    _everything(make())
