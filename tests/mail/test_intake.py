"""The SMTP intake end to end: real SMTP over a loopback socket into the running desk (real
Ray actors on SQLite and PostgreSQL), each threading and loop rule as a customer or an
attacker would meet it."""

from __future__ import annotations

import secrets
import smtplib
from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from sqlalchemy import func, select

from actors import names
from actors.mail.message_id import make_message_id
from store.models import Contact, InboundMail, MailSuppression, Message, Ticket
from store.models.ticket import ticket_id_from_number
from tests.conftest import MAIL_SECRET
from tests.desk import Desk
from tests.mta import PostfixFactory

pytestmark = pytest.mark.ray

HOUR = 3600


def mail(
    sender: str,
    subject: str = "Site down",
    body: str = "Our site answers 502 since 10:00.",
    *,
    to: str = "support@sitedesk.test",
    message_id: str | None = None,
    headers: dict[str, str] | None = None,
    attachment: tuple[str, bytes] | None = None,
) -> tuple[bytes, str]:
    """A message as a mail client writes it; returns its bytes and its Message-ID."""
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    mid = message_id or make_msgid(domain="customer.example")
    msg["Message-ID"] = mid
    for name, value in (headers or {}).items():
        msg[name] = value
    msg.set_content(body)
    if attachment:
        msg.add_attachment(
            attachment[1], maintype="application", subtype="pdf", filename=attachment[0]
        )
    return msg.as_bytes(), mid


DSN = """\
From: MAILER-DAEMON@mx.customer.example (Mail Delivery System)
To: support@sitedesk.test
Subject: Undelivered Mail Returned to Sender
Auto-Submitted: auto-replied
Message-Id: <20261202101500.4A1B2C3D4E@mx.customer.example>
MIME-Version: 1.0
Content-Type: multipart/report; report-type=delivery-status;
\tboundary="4A1B2C3D4E.1764670500/mx.customer.example"

This is a MIME-encapsulated message.

--4A1B2C3D4E.1764670500/mx.customer.example
Content-Description: Notification
Content-Type: text/plain; charset=us-ascii

I'm sorry to have to inform you that your message could not
be delivered to one or more recipients.

<{address}>: host mx.customer.example said: 550 5.1.1 <{address}>: Recipient
    address rejected: User unknown in virtual mailbox table

--4A1B2C3D4E.1764670500/mx.customer.example
Content-Description: Delivery report
Content-Type: message/delivery-status

Reporting-MTA: dns; mx.customer.example
X-Postfix-Queue-ID: 4A1B2C3D4E
Arrival-Date: Wed,  2 Dec 2026 10:14:59 +0000 (UTC)

Final-Recipient: rfc822; {address}
Original-Recipient: rfc822;{address}
Action: failed
Status: 5.1.1
Remote-MTA: dns; mx.customer.example
Diagnostic-Code: smtp; 550 5.1.1 <{address}>: Recipient address rejected: User
    unknown in virtual mailbox table

--4A1B2C3D4E.1764670500/mx.customer.example
Content-Description: Undelivered Message Headers
Content-Type: text/rfc822-headers

From: Sitedesk Support <support@sitedesk.test>
To: {address}
Subject: [{number}] Site down
Message-ID: {ours}
Auto-Submitted: auto-generated

--4A1B2C3D4E.1764670500/mx.customer.example--
"""


def ticket_of(desk: Desk, answer: str) -> Ticket:
    number = next(w for w in answer.split() if w.startswith("TT-"))
    ticket_id = ticket_id_from_number(number)
    with desk.db.read() as s:
        t = s.get(Ticket, ticket_id)
        assert t is not None
        s.expunge(t)
        return t


def messages_of(desk: Desk, ticket_id: int) -> list[Message]:
    with desk.db.read() as s:
        rows = list(
            s.scalars(select(Message).where(Message.ticket_id == ticket_id).order_by(Message.id))
        )
        for r in rows:
            s.expunge(r)
        return rows


def contact_email(desk: Desk, account_id: int) -> str:
    with desk.db.read() as s:
        email = s.scalar(select(Contact.email).where(Contact.account_id == account_id))
        assert email is not None
        return email


def test_a_customers_mail_becomes_a_ticket_with_its_raw_bytes_and_files(desk: Desk) -> None:
    account, _ = desk.customer("Ann")
    address = contact_email(desk, account.id)
    raw, mid = mail(f"Ann Baker <{address}>", attachment=("invoice.pdf", b"%PDF-1.4 test"))
    answer = desk.send_mail(raw, mail_from=address)
    assert "ticketed TT-" in answer
    t = ticket_of(desk, answer)
    assert (t.account_id, t.channel, t.subject) == (account.id, "email", "Site down")
    (first,) = messages_of(desk, t.id)
    assert first.body == "Our site answers 502 since 10:00."
    assert first.email_message_id == mid.strip("<>")
    with desk.db.read() as s:
        kept = s.get(InboundMail, first.inbound_mail_id)
        assert kept is not None and kept.status == "ticketed" and kept.ticket_id == t.id
        # Byte for byte as it crossed SMTP (line ends CRLF, a final line end added).
        assert bytes(kept.raw).replace(b"\r\n", b"\n").rstrip() == raw.rstrip()
    staff = desk.agent(1)[1]
    with desk.http(staff) as c:
        detail = c.get(f"/api/v1/tickets/{t.number}").json()
    files = detail["messages"][0]["attachments"]
    assert [(f["filename"], f["size"]) for f in files] == [("invoice.pdf", 13)]


def test_the_same_message_twice_makes_one_message(desk: Desk) -> None:
    account, _ = desk.customer("Bo")
    address = contact_email(desk, account.id)
    raw, _ = mail(address)
    first = desk.send_mail(raw, mail_from=address)
    again = desk.send_mail(raw, mail_from=address)
    assert "received before" in again
    t = ticket_of(desk, first)
    assert ticket_of(desk, again).id == t.id
    assert len(messages_of(desk, t.id)) == 1


def test_a_reply_to_our_mail_threads_by_its_signed_message_id(desk: Desk) -> None:
    account, _ = desk.customer("Cy")
    address = contact_email(desk, account.id)
    t = ticket_of(desk, desk.send_mail(mail(address)[0], mail_from=address))
    ours = make_message_id(MAIL_SECRET, ticket_id=t.id, outbox_id=None, domain="sitedesk.test")
    # A reply by References only (no In-Reply-To), with no ticket number in the subject.
    body = (
        "Thanks, it works again.\n\nOn Tue, 1 Dec 2026 at 10:00, Sitedesk Support "
        "<support@sitedesk.test> wrote:\n> We changed the record.\n"
    )
    raw, _ = mail(address, "Re: your message", body,
                  headers={"References": f"<x@elsewhere.example> {ours}"})  # fmt: skip
    answer = desk.send_mail(raw, mail_from=address)
    assert f"appended {t.number}" in answer
    last = messages_of(desk, t.id)[-1]
    assert last.body == "Thanks, it works again."
    assert last.direction == "inbound" and last.channel == "email"


def test_a_forged_message_id_of_ours_threads_nowhere(desk: Desk) -> None:
    account, _ = desk.customer("Di")
    address = contact_email(desk, account.id)
    t = ticket_of(desk, desk.send_mail(mail(address)[0], mail_from=address))
    forged = make_message_id(b"not the desk's key!", ticket_id=t.id, outbox_id=None,
                             domain="sitedesk.test")  # fmt: skip
    raw, _ = mail(address, "Re: something", headers={"In-Reply-To": forged})
    answer = desk.send_mail(raw, mail_from=address)
    assert "ticketed" in answer and ticket_of(desk, answer).id != t.id


def test_a_ticket_number_threads_only_for_the_requester_or_an_account_contact(desk: Desk) -> None:
    ann, _ = desk.customer("Eve")
    ann_address = contact_email(desk, ann.id)
    t = ticket_of(desk, desk.send_mail(mail(ann_address)[0], mail_from=ann_address))
    # Her own reply by subject number threads.
    answer = desk.send_mail(mail(ann_address, f"Re: [{t.number}] Site down")[0])
    assert f"appended {t.number}" in answer
    # A customer of another account naming her ticket gets a ticket of their own.
    other, _ = desk.customer("Mallory")
    other_address = contact_email(desk, other.id)
    answer = desk.send_mail(mail(other_address, f"[{t.number}] give me access")[0])
    stranger = ticket_of(desk, answer)
    assert "ticketed" in answer and stranger.account_id == other.id
    # A display name that looks like hers proves nothing.
    spoof = f'"{ann_address}" <{other_address}>'
    answer = desk.send_mail(mail(spoof, f"Re: {t.number}")[0])
    assert ticket_of(desk, answer).account_id == other.id
    assert [m.author_name for m in messages_of(desk, t.id)].count(spoof) == 0
    assert len(messages_of(desk, t.id)) == 2


def test_an_unknown_sender_becomes_a_contact_on_no_account_until_linked(desk: Desk) -> None:
    stranger = f"new.{secrets.token_hex(3)}@prospect.example"
    raw, _ = mail(f"New Person <{stranger}>", "Do you host WordPress?")
    answer = desk.send_mail(raw, mail_from=stranger)
    assert "held" in answer
    with desk.db.read() as s:
        contact = s.scalar(select(Contact).where(Contact.email == stranger))
        assert contact is not None and contact.account_id is None
        assert contact.name == "New Person"
        contact_id = contact.id
    account, _ = desk.customer("Prospect")
    _, admin = desk.agent(1)
    with desk.http(admin) as c:
        r = c.post(f"/api/v1/contacts/{contact_id}/link", json={"account_id": account.id})
    assert r.status_code == 200, r.text
    (receipt,) = r.json()["mails"]
    assert receipt["status"] == "ticketed"
    t = ticket_of(desk, receipt["ticket_number"])
    assert t.account_id == account.id and t.subject == "Do you host WordPress?"
    with desk.http(admin) as c:
        again = c.post(f"/api/v1/contacts/{contact_id}/link", json={"account_id": account.id})
    assert again.status_code == 409 and again.json()["error"] == "contact_link_invalid"


def test_an_auto_reply_is_kept_but_does_not_reopen(desk: Desk) -> None:
    account, _ = desk.customer("Flo")
    address = contact_email(desk, account.id)
    t = ticket_of(desk, desk.send_mail(mail(address)[0], mail_from=address))
    _, staff = desk.agent(1)
    with desk.http(staff) as c:
        assert (
            c.post(f"/api/v1/tickets/{t.number}/resolve", json={"note": "Fixed."}).status_code
            == 200
        )
    ours = make_message_id(MAIL_SECRET, ticket_id=t.id, outbox_id=None, domain="sitedesk.test")
    raw, _ = mail(address, "Out of Office: Re: Site down", "I am away until Monday.",
                  headers={"In-Reply-To": ours, "Auto-Submitted": "auto-replied"})  # fmt: skip
    assert f"appended {t.number}" in desk.send_mail(raw, mail_from=address)
    assert ticket_of(desk, f"x {t.number}").status == "resolved"
    # A person's reply does reopen it.
    raw, _ = mail(address, "Re: Site down", "It is broken again.", headers={"In-Reply-To": ours})
    desk.send_mail(raw, mail_from=address)
    assert ticket_of(desk, f"x {t.number}").status in ("open", "new")


def test_a_bounce_of_our_mail_is_an_internal_note_and_stops_mail_to_the_address(desk: Desk) -> None:
    account, _ = desk.customer("Gus")
    address = contact_email(desk, account.id)
    t = ticket_of(desk, desk.send_mail(mail(address)[0], mail_from=address))
    ours = make_message_id(MAIL_SECRET, ticket_id=t.id, outbox_id=7, domain="sitedesk.test")
    # A delivery report as Postfix writes it (RFC 3464 inside RFC 6522).
    report = DSN.format(address=address, ours=ours, number=t.number).encode()
    answer = desk.send_mail(report, mail_from="")
    assert f"bounce {t.number}" in answer
    note = messages_of(desk, t.id)[-1]
    assert note.visibility == "internal" and "5.1.1" in note.body
    with desk.db.read() as s:
        assert (
            s.scalar(select(MailSuppression.status_code).where(MailSuppression.address == address))
            == "5.1.1"
        )
        assert s.get(Ticket, t.id).status == "new"  # type: ignore[union-attr]


def test_the_door_refuses_unknown_recipients_too_many_and_too_large(desk: Desk) -> None:
    with smtplib.SMTP("127.0.0.1", desk.smtp_port, timeout=30) as c:
        c.ehlo("t")
        c.mail("someone@example.com")
        code, text = c.rcpt("nobody@sitedesk.test")
        assert code == 550 and b"5.1.1" in text
        codes = [c.rcpt("support@sitedesk.test")[0] for _ in range(25)]
        assert codes[:20] == [250] * 20 and set(codes[20:]) == {452}


def test_the_door_answers_451_while_the_intake_is_down_and_loses_nothing(desk: Desk) -> None:
    from cluster.deploy import deploy

    account, _ = desk.customer("Hal")
    address = contact_email(desk, account.id)
    raw, mid = mail(address, "During the outage")
    desk.deployment.kill(names.INTAKE, restart=False)
    with pytest.raises(smtplib.SMTPDataError) as refused:
        desk.send_mail(raw, mail_from=address)
    assert refused.value.smtp_code == 451
    again = deploy(desk.deployment.config, manual_clock=True)  # as an operator would
    desk.deployment.handles[names.INTAKE] = again.handles[names.INTAKE]
    answer = desk.send_mail(raw, mail_from=address)  # the sending server's retry
    assert "ticketed" in answer
    with desk.db.read() as s:
        n = s.scalar(
            select(func.count())
            .select_from(Message)
            .where(Message.email_message_id == mid.strip("<>"))
        )
    assert n == 1


def test_postfix_in_front_redelivers_after_451_and_each_mail_makes_one_ticket(
    desk: Desk, postfix_factory: PostfixFactory
) -> None:
    """The company's MTA (a real Postfix) relays to the intake; while the intake answers 451
    the mails wait in Postfix's queue, and its redelivery after the restore files each once."""
    from cluster.deploy import deploy

    # Retries an hour apart: only the flush below brings the redelivery within the test.
    mta = postfix_factory(desk.smtp_port, minimal_backoff=HOUR, maximal_backoff=HOUR)
    account, _ = desk.customer("Ida")
    address = contact_email(desk, account.id)
    sent = [mail(address, f"Outage {i}") for i in range(3)]

    desk.deployment.kill(names.INTAKE, restart=False)
    for raw, _ in sent:
        assert mta.send(address, ["support@sitedesk.test"], raw) == {}  # Postfix took it
    deferred = mta.wait_deferred(len(sent), timeout=60)
    assert all("451" in (r.delay_reason or "") for m in deferred for r in m.recipients)
    with desk.db.read() as s:
        for _, mid in sent:
            kept = s.scalar(
                select(func.count())
                .select_from(InboundMail)
                .where(InboundMail.message_id == mid.strip("<>"))
            )
            assert kept == 0  # 451 means not kept: the mail is Postfix's to retry

    again = deploy(desk.deployment.config, manual_clock=True)  # the operator restores it
    desk.deployment.handles[names.INTAKE] = again.handles[names.INTAKE]
    mta.flush()
    mta.wait_queue_empty(timeout=60)

    tickets = set()
    with desk.db.read() as s:
        for _, mid in sent:
            rows = list(
                s.execute(
                    select(Message.ticket_id, Ticket.account_id, Ticket.subject)
                    .join(Ticket, Ticket.id == Message.ticket_id)
                    .where(Message.email_message_id == mid.strip("<>"))
                )
            )
            assert len(rows) == 1, (mid, rows)  # one message per mail, not two
            ticket_id, account_id, subject = rows[0]
            assert account_id == account.id and subject.startswith("Outage ")
            tickets.add(ticket_id)
    assert len(tickets) == len(sent)  # one ticket per mail
    assert mta.log().count("status=sent") >= len(sent)
