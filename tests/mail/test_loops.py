"""Loop protection, rule by rule: each sign of an automatic, bulk or looping mail forbids an
automatic answer and names its reason; a person's ordinary mail has no reason at all."""

from __future__ import annotations

import pytest

from actors.mail.loops import LOOP_HEADER, LoopReason, check
from actors.mail.message import ParsedMail
from actors.mail.parse import parse


def mail(
    *fields: str, subject: str = "My site is down", sender: str = "ann@example.com"
) -> ParsedMail:
    lines = [f"From: Ann <{sender}>", "To: support@desk.example", f"Subject: {subject}", *fields]
    return parse(("\r\n".join(lines) + "\r\n\r\nPlease help.\r\n").encode())


def test_a_persons_mail_may_get_an_auto_reply() -> None:
    result = check(mail("Return-Path: <ann@example.com>", "Auto-Submitted: no"))
    assert result.reasons == []
    assert not result.no_auto_reply and not result.automatic


@pytest.mark.parametrize(
    ("field", "reason"),
    [
        ("Auto-Submitted: auto-replied", LoopReason.AUTO_SUBMITTED),
        ("Auto-Submitted: auto-generated", LoopReason.AUTO_SUBMITTED),
        ("Auto-Submitted: auto-notified; owner-email=x@example.com", LoopReason.AUTO_SUBMITTED),
        ("X-Autoreply: yes", LoopReason.AUTO_RESPONDER),
        ("X-Autorespond: on", LoopReason.AUTO_RESPONDER),
        ("Precedence: bulk", LoopReason.BULK_PRECEDENCE),
        ("Precedence: list", LoopReason.BULK_PRECEDENCE),
        ("Precedence: junk", LoopReason.BULK_PRECEDENCE),
        ("List-Id: Hosting news <news.example.com>", LoopReason.LIST_ID),
        ("List-Unsubscribe: <mailto:leave@example.com>", LoopReason.LIST_UNSUBSCRIBE),
        ("Return-Path: <>", LoopReason.NULL_RETURN_PATH),
        ("Return-Path: <MAILER-DAEMON@mx.example.com>", LoopReason.SYSTEM_SENDER),
        ("Return-Path: <postmaster@example.com>", LoopReason.SYSTEM_SENDER),
        ("Return-Path: <owner-news@lists.example.com>", LoopReason.SYSTEM_SENDER),
        ("Return-Path: <news-bounces@lists.example.com>", LoopReason.SYSTEM_SENDER),
        ("X-Auto-Response-Suppress: All", LoopReason.RESPONSE_SUPPRESSED),
        ("X-Auto-Response-Suppress: DR, OOF, AutoReply", LoopReason.RESPONSE_SUPPRESSED),
        ('Content-Type: multipart/report; report-type=delivery-status; boundary="b"',
         LoopReason.DELIVERY_REPORT),
        (f"{LOOP_HEADER}: desk-1", LoopReason.OWN_LOOP_HEADER),
    ],
)  # fmt: skip
def test_each_rule_forbids_an_auto_reply_with_its_reason(field: str, reason: LoopReason) -> None:
    result = check(mail(field))
    assert reason in result.reasons
    assert result.no_auto_reply


@pytest.mark.parametrize("sender", ["mailer-daemon@mx.example.com", "Postmaster@example.com"])
def test_a_system_sender_in_from_forbids_an_auto_reply(sender: str) -> None:
    assert check(mail(sender=sender)).reasons == [LoopReason.SYSTEM_SENDER]


@pytest.mark.parametrize(
    "subject", ["Automatic reply: My site", "Auto reply: hi", "Out of Office: away", "Autoreply"]
)
def test_an_auto_reply_subject_forbids_an_auto_reply(subject: str) -> None:
    assert check(mail(subject=subject)).reasons == [LoopReason.AUTO_REPLY_SUBJECT]


@pytest.mark.parametrize(
    "field",
    [
        "X-Auto-Response-Suppress: DR, NDR, RN, NRN",  # receipts only: a person may get one
        "Precedence: first-class",
        "Auto-Submitted: No",
        "Return-Path: <ann@example.com>",
        "In-Reply-To: <abc@desk.example>",
    ],
)
def test_signs_that_do_not_forbid_an_auto_reply(field: str) -> None:
    assert check(mail(field)).reasons == []


@pytest.mark.parametrize("sender", ["owner@example.com", "requester@example.com", "daemon@x.io"])
def test_ordinary_addresses_near_system_ones_are_people(sender: str) -> None:
    assert check(mail(sender=sender)).reasons == []


def test_our_own_message_id_coming_back_forbids_an_auto_reply() -> None:
    ours = mail("Message-ID: <desk.42.sig@desk.example>")
    other = mail("Message-ID: <x1@example.com>")

    def is_ours(message_id: str) -> bool:
        return message_id.startswith("desk.")

    assert check(ours, is_own_message_id=is_ours).reasons == [LoopReason.OWN_MESSAGE_ID]
    assert check(other, is_own_message_id=is_ours).reasons == []


def test_a_custom_loop_header_is_honoured() -> None:
    looped = mail("X-Other-Desk-Loop: 1")
    assert check(looped).reasons == []
    assert check(looped, loop_header="X-Other-Desk-Loop").reasons == [LoopReason.OWN_LOOP_HEADER]


def test_an_auto_reply_is_automatic_but_list_mail_is_not() -> None:
    assert check(mail("Auto-Submitted: auto-replied")).automatic
    assert check(mail("X-Autoreply: yes")).automatic
    newsletter = check(mail("List-Id: <news.example.com>", "Precedence: bulk"))
    assert newsletter.no_auto_reply and not newsletter.automatic


def test_every_reason_found_is_named() -> None:
    result = check(mail("Auto-Submitted: auto-replied", "Precedence: bulk", "Return-Path: <>"))
    assert result.reasons == [
        LoopReason.AUTO_SUBMITTED,
        LoopReason.BULK_PRECEDENCE,
        LoopReason.NULL_RETURN_PATH,
    ]
