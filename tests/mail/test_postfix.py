"""A real Postfix in front of a real SMTP server: it relays what it accepts with the headers
intact, keeps a mail queued while the far side answers 4xx, and delivers it exactly once when
asked to retry. The base of the tests that put Postfix in front of the desk's intake."""

from __future__ import annotations

import smtplib
from collections.abc import Iterator
from datetime import UTC, datetime
from email import policy
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

import pytest

from tests.mta import PostfixFactory
from tests.smtp_sink import SmtpSink

HOUR = 3600


@pytest.fixture(scope="module")
def sink() -> Iterator[SmtpSink]:
    """One far side for the module, so its Postfix instances are shared (each starts in ~2 s)."""
    server = SmtpSink().start()
    yield server
    server.stop()


@pytest.fixture
def accepting(sink: SmtpSink) -> Iterator[SmtpSink]:
    """The sink, answering 250 again after the test whatever the test set."""
    sink.reply = None
    yield sink
    sink.reply = None


def customer_mail(subject: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = "Ann Example <ann@customer.example>"
    msg["To"] = "help@sitedesk.test"
    msg["Subject"] = subject
    msg["Date"] = format_datetime(datetime(2026, 3, 1, 9, 30, tzinfo=UTC))
    msg["Message-ID"] = make_msgid(domain="customer.example")
    msg["X-Customer-Ref"] = "site 4711"
    msg.set_content("My site answers 502 since this morning.\n.\nA line with a lone dot.\n")
    return msg


def test_a_mail_for_our_domain_arrives_with_its_headers_and_postfix_received_line(
    postfix_factory: PostfixFactory, accepting: SmtpSink
) -> None:
    mta = postfix_factory(accepting.port)
    before = len(accepting.received)
    msg = customer_mail("Site down")

    assert mta.send("ann@customer.example", ["help@sitedesk.test"], msg) == {}

    got = accepting.wait_for(before + 1)[before]
    assert (got.mail_from, got.rcpt_tos) == ("ann@customer.example", ["help@sitedesk.test"])
    # The mail as sent follows Postfix's one Received header, byte for byte (the lone dot
    # survived the dot-stuffing on both hops).
    original = msg.as_bytes(policy=policy.SMTP)
    assert got.data.endswith(original)
    added = got.data[: len(got.data) - len(original)].decode()
    assert added.startswith("Received: from ") and added.count("Received:") == 1
    assert f"by {mta.hostname} (Postfix)" in added
    assert "for <help@sitedesk.test>" in added
    parsed = got.message()
    for name in ("From", "To", "Subject", "Date", "Message-ID", "X-Customer-Ref"):
        assert parsed[name] == msg[name]
    mta.wait_queue_empty()
    assert len(accepting.received) == before + 1


def test_a_mail_for_another_domain_is_refused_and_not_queued(
    postfix_factory: PostfixFactory, accepting: SmtpSink
) -> None:
    mta = postfix_factory(accepting.port)
    attempts = accepting.attempts

    with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
        mta.send("ann@customer.example", ["someone@elsewhere.example"], customer_mail("Relay?"))

    code, reason = refused.value.recipients["someone@elsewhere.example"]
    assert code == 554 and b"Relay access denied" in reason
    assert mta.queue() == []
    assert accepting.attempts == attempts


def test_a_451_keeps_the_mail_queued_until_a_flush_delivers_it_once(
    postfix_factory: PostfixFactory, accepting: SmtpSink
) -> None:
    # Retries an hour apart: only the flush can bring the second attempt within the test.
    mta = postfix_factory(accepting.port, minimal_backoff=HOUR, maximal_backoff=HOUR)
    before, attempts = len(accepting.received), accepting.attempts
    accepting.reply = "451 4.3.0 try later"
    msg = customer_mail("Mailbox full?")

    assert mta.send("ann@customer.example", ["help@sitedesk.test"], msg) == {}

    (deferred,) = mta.wait_deferred()
    assert deferred.sender == "ann@customer.example"
    (rcpt,) = deferred.recipients
    assert rcpt.address == "help@sitedesk.test"
    assert rcpt.delay_reason is not None and "451 4.3.0 try later" in rcpt.delay_reason
    assert accepting.attempts == attempts + 1
    assert len(accepting.received) == before

    accepting.reply = None
    mta.flush()

    got = accepting.wait_for(before + 1)[before]
    assert got.message()["Message-ID"] == msg["Message-ID"]
    mta.wait_queue_empty()
    assert len(accepting.received) == before + 1
    assert accepting.attempts == attempts + 2
    assert f"{deferred.queue_id}: removed" in mta.log()
