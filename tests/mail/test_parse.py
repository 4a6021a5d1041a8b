"""The parser on mails written for one feature each: encoded words, addresses, ids, the
return path, dates, body selection, safe HTML, attachments with RFC 2231 names."""

from __future__ import annotations

import base64
import hashlib
from datetime import UTC, datetime, timedelta, timezone

from actors.mail.message import Defect, MailAddress
from actors.mail.parse import parse


def raw(*fields: str, body: str = "Hello.", content_type: str | None = None) -> bytes:
    head = ["From: Ann <ann@example.com>", "To: support@desk.example", "Subject: Hi", *fields]
    if content_type:
        head += ["MIME-Version: 1.0", f"Content-Type: {content_type}"]
    return ("\r\n".join(head) + "\r\n\r\n" + body).encode()


def multipart(kind: str, *parts: str, fields: tuple[str, ...] = ()) -> bytes:
    body = "".join(f"--b\r\n{p}\r\n" for p in parts) + "--b--\r\n"
    return raw(*fields, content_type=f'multipart/{kind}; boundary="b"', body=body)


def test_encoded_word_subjects_in_any_charset_are_decoded() -> None:
    # the space between two encoded words is not text (RFC 2047 6.2): "mit" "der" join
    subject = "Subject: =?UTF-8?B?w4RyZ2VyIG1pdA==?= =?iso-8859-1?Q?der_Domain_=E4?="
    mail = parse(raw(subject).replace(b"Subject: Hi\r\n", b""))
    assert mail.subject == "Ärger mitder Domain ä"


def test_raw_utf8_headers_are_read_as_utf8() -> None:
    mail = parse("From: Jürgen <j@example.com>\r\nSubject: Grüße\r\n\r\nx".encode())
    assert mail.subject == "Grüße"
    assert mail.from_address == MailAddress(name="Jürgen", address="j@example.com")


def test_addresses_with_display_names_and_groups() -> None:
    mail = parse(
        b'From: "Doe, Jane" <jane@example.com>\r\n'
        b"To: team: a@example.com, =?utf-8?q?B=C3=B6b?= <b@example.com>;\r\n"
        b"Cc: c@example.com\r\nReply-To: <help@example.com>\r\n\r\nx"
    )
    assert mail.from_address == MailAddress(name="Doe, Jane", address="jane@example.com")
    assert mail.to == [
        MailAddress(address="a@example.com"),
        MailAddress(name="Böb", address="b@example.com"),
    ]
    assert mail.cc == [MailAddress(address="c@example.com")]
    assert mail.reply_to == [MailAddress(address="help@example.com")]


def test_message_ids_come_without_angle_brackets() -> None:
    mail = parse(
        raw(
            "Message-ID: <m3@example.com>",
            "In-Reply-To: <m2@desk.example>",
            "References: <m1@desk.example>\r\n <m2@desk.example>",
        )
    )
    assert mail.message_id == "m3@example.com"
    assert mail.in_reply_to == ["m2@desk.example"]
    assert mail.references == ["m1@desk.example", "m2@desk.example"]


def test_the_return_path_tells_absent_from_null() -> None:
    assert parse(raw()).return_path is None
    assert parse(raw("Return-Path: <>")).return_path == ""
    assert parse(raw("Return-Path: <bounce@example.com>")).return_path == "bounce@example.com"


def test_dates_are_timezone_aware_and_bad_ones_flagged() -> None:
    mail = parse(raw("Date: Tue, 1 Dec 2026 10:00:00 +0100"))
    assert mail.date == datetime(2026, 12, 1, 10, tzinfo=timezone(timedelta(hours=1)))
    assert parse(raw("Date: Tue, 1 Dec 2026 10:00:00 -0000")).date == datetime(
        2026, 12, 1, 10, tzinfo=UTC
    )
    broken = parse(raw("Date: yesterday"))
    assert broken.date is None and Defect.MALFORMED_DATE in broken.defects


def test_text_plain_is_preferred_and_html_sanitised() -> None:
    mail = parse(
        multipart(
            "alternative",
            "Content-Type: text/plain; charset=utf-8\r\n\r\nPlain words",
            "Content-Type: text/html\r\n\r\n<p onclick='x()'>Rich <a href='javascript:x'>"
            "words</a><script>alert(1)</script></p>",
        )
    )
    assert mail.text.strip() == "Plain words"
    assert not mail.text_from_html
    assert mail.html is not None
    assert "script" not in mail.html and "onclick" not in mail.html
    assert "javascript" not in mail.html and "Rich" in mail.html


def test_html_only_mail_is_read_as_text_with_quotes_marked() -> None:
    body = "<div>Thanks!</div><blockquote>On Monday you wrote:<br>It is down</blockquote>"
    mail = parse(raw(content_type="text/html; charset=utf-8", body=body))
    assert mail.text_from_html
    assert mail.text == "Thanks!\n\n> On Monday you wrote:\n> It is down"


def test_attachments_keep_their_bytes_names_and_digests() -> None:
    data = b"%PDF-1.4 invoice"
    mail = parse(
        multipart(
            "mixed",
            "Content-Type: text/plain\r\n\r\nSee attached",
            "Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
            "Content-Disposition: attachment; filename*=UTF-8''Rechnung%20M%C3%A4rz.pdf\r\n\r\n"
            + base64.b64encode(data).decode(),
            "Content-Type: text/plain; name*0*=utf-8''na%C3%AF; name*1=ve.txt\r\n"
            "Content-Disposition: attachment\r\n\r\nnotes",
            'Content-Type: image/png; name="=?utf-8?B?QmlsZC5wbmc=?="\r\n'
            "Content-Disposition: inline\r\nContent-ID: <img1@example.com>\r\n\r\npng",
        )
    )
    assert mail.text.strip() == "See attached"
    pdf, notes, image = mail.attachments
    assert (pdf.filename, pdf.content_type, pdf.data, pdf.size) == (
        "Rechnung März.pdf",
        "application/pdf",
        data,
        len(data),
    )
    assert pdf.sha256 == hashlib.sha256(data).hexdigest()
    assert notes.filename == "naïve.txt" and notes.data.strip() == b"notes"
    assert (image.filename, image.inline, image.content_id) == (
        "Bild.png",
        True,
        "img1@example.com",
    )


def test_a_forwarded_message_is_an_attachment_holding_that_message() -> None:
    mail = parse(
        multipart(
            "mixed",
            "Content-Type: text/plain\r\n\r\nFYI",
            "Content-Type: message/rfc822\r\n\r\nSubject: inner\r\nFrom: x@example.com\r\n\r\nold",
        )
    )
    (forwarded,) = mail.attachments
    assert forwarded.content_type == "message/rfc822"
    assert b"Subject: inner" in forwarded.data and b"old" in forwarded.data
    assert parse(forwarded.data).subject == "inner"


def test_headers_are_kept_decoded_in_order() -> None:
    mail = parse(raw("X-Custom: =?utf-8?q?caf=C3=A9?=", "Auto-Submitted: no"))
    assert mail.header("x-custom") == "café"
    assert mail.header("AUTO-SUBMITTED") == "no"
    assert [k for k, _ in mail.headers][:3] == ["From", "To", "Subject"]
    assert mail.header_values("x-missing") == []
