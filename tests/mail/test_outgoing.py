"""The desk's outgoing mail end to end: what the relay (a real SMTP server on loopback) receives
when customers and agents act, parsed back; replies to it threading home; an auto-responder
loop that stops; a bounce of a notification; a relay that is down, then back."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import make_msgid

import pytest
from sqlalchemy import func, select

from actors.mail.message_id import parse_own_message_id
from actors.notify.mail_out import MailPlanner
from store.models import Contact, MailDelivery, MailSuppression, Message, OutboxEvent, Ticket
from store.models.enums import DeliveryStatus
from store.models.ticket import ticket_id_from_number
from tests.conftest import AUTO_REPLIES_PER_HOUR, MAIL_SECRET
from tests.desk import Desk, wait_until
from tests.mail.test_intake import DSN, contact_email, mail
from tests.smtp_sink import Received

pytestmark = pytest.mark.ray


def mails_to(desk: Desk, address: str) -> list[Received]:
    return [m for m in desk.outgoing.received if address.lower() in [r.lower() for r in m.rcpt_tos]]


def wait_mails(desk: Desk, address: str, count: int, what: str = "") -> list[EmailMessage]:
    """The mails the relay received for `address`, once there are `count` (or more)."""
    got = wait_until(
        lambda: (m := mails_to(desk, address)) and len(m) >= count and m,
        timeout=30,
        what=what or f"{count} mails to {address}",
    )
    return [m.message() for m in got]


def deliveries(desk: Desk, address: str) -> list[MailDelivery]:
    with desk.db.read() as s:
        rows = list(
            s.scalars(
                select(MailDelivery)
                .where(MailDelivery.recipient == address.lower())
                .order_by(MailDelivery.id)
            )
        )
        for r in rows:
            s.expunge(r)
        return rows


def text_of(msg: EmailMessage, subtype: str = "plain") -> str:
    part = msg.get_body(preferencelist=(subtype,))
    assert part is not None, f"no text/{subtype} part"
    return str(part.get_content())


def open_ticket(desk: Desk, token: str, subject: str = "Site down") -> str:
    with desk.http(token) as c:
        r = c.post("/api/v1/tickets", json={"subject": subject, "body": "It answers 502."})
    assert r.status_code == 201, r.text
    return str(r.json()["number"])


def reply(desk: Desk, token: str, number: str, body: str, **extra: object) -> None:
    with desk.http(token) as c:
        r = c.post(f"/api/v1/tickets/{number}/messages", json={"body": body, **extra})
    assert r.status_code in (200, 201), r.text


def test_a_customer_hears_an_agents_reply_and_answering_it_threads_home(desk: Desk) -> None:
    account, customer = desk.customer("Ada")
    address = contact_email(desk, account.id)
    _, agent = desk.agent(1)
    number = open_ticket(desk, customer, "Site down")
    (opened,) = wait_mails(desk, address, 1, "the ticket's opening notice")
    assert opened["Subject"] == f"[{number}] Site down"
    assert opened["Auto-Submitted"] == "auto-generated"

    reply(desk, agent, number, "A note for us only", visibility="internal")
    reply(desk, agent, number, "Restarted PHP-FPM <b>now</b>; please check & tell us.")
    mails = wait_mails(desk, address, 2, "the agent's reply")
    assert len(mails) == 2  # the internal note sent nothing
    answer = mails[1]
    assert answer["Subject"] == f"[{number}] Re: Site down"
    assert answer["From"] == "Sitedesk Support <support@sitedesk.test>"
    assert answer["Auto-Submitted"] == "auto-generated" and answer["X-Sitedesk-Loop"]
    own = parse_own_message_id(MAIL_SECRET, answer["Message-ID"])
    assert own is not None and own.ticket_id == ticket_id_from_number(number)
    assert own.outbox_id is not None
    assert opened["Message-ID"] in answer["References"]  # one thread in the customer's client
    assert "Restarted PHP-FPM <b>now</b>; please check & tell us." in text_of(answer)
    html = text_of(answer, "html")
    assert "&lt;b&gt;now&lt;/b&gt;" in html and "<b>now</b>" not in html  # escaped, not markup

    # The customer answers from their mail client, subject changed, no ticket number in it.
    raw, _ = mail(address, "my answer", "Works again, thanks!",
                  headers={"In-Reply-To": answer["Message-ID"],
                           "References": answer["Message-ID"]})  # fmt: skip
    assert number in desk.send_mail(raw, mail_from=address)
    with desk.db.read() as s:
        bodies = list(
            s.scalars(
                select(Message.body).where(Message.ticket_id == ticket_id_from_number(number))
            )
        )
    assert any("Works again" in b for b in bodies)
    # The customer's own mail is not mailed back to them.
    with desk.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Ticket).where(
            Ticket.account_id == account.id)) == 1  # fmt: skip
    assert all(d.status == DeliveryStatus.sent for d in deliveries(desk, address))
    assert len(deliveries(desk, address)) == 2


def test_state_changes_reach_the_customer_in_their_language(desk: Desk) -> None:
    account, customer = desk.customer("Greta")
    address = contact_email(desk, account.id)
    with desk.db.write() as s:
        contact = s.scalar(select(Contact).where(Contact.account_id == account.id))
        assert contact is not None
        contact.language = "de"
    _, agent = desk.agent(1)
    number = open_ticket(desk, customer, "Mailbox voll")
    with desk.http(agent) as c:
        wait_until(
            lambda: c.post(f"/api/v1/tickets/{number}/resolve").status_code == 200,
            what="the ticket resolved",
        )
    opened, resolved = wait_mails(desk, address, 2, "opening and resolution notices")
    assert opened["Content-Language"] == "de" and "Hallo Greta" in text_of(opened)
    assert resolved["Subject"] == f"[{number}] Gelöst: Mailbox voll"
    assert "wurde gelöst" in text_of(resolved) and "wurde gelöst" in text_of(resolved, "html")


def test_an_agent_hears_of_an_assignment_by_the_system_not_of_taking_a_ticket(
    desk: Desk,
) -> None:
    _, customer = desk.customer("Ivo")
    agent, _ = desk.agent(1)
    with desk.db.read() as s:
        from store.models import User

        agent_email = s.scalar(select(User.email).where(User.id == agent.user_id))
        assert agent_email is not None
    subject = "DNS broken for every domain of ours since the migration last night"
    number = open_ticket(desk, customer, subject)  # the tier pool assigns it
    (assigned,) = wait_mails(desk, agent_email, 1, "the assignment notice")
    assert assigned["Subject"] == f"[{number}] Assigned to you: {subject}"  # long, one line
    assert "References" not in assigned  # agents' mails are not in the customer's thread


def test_a_mail_ticket_gets_one_auto_reply_and_an_automatic_mail_none(desk: Desk) -> None:
    account, _ = desk.customer("Hal")
    address = contact_email(desk, account.id)
    raw, mid = mail(address, "Backup missing")
    answer = desk.send_mail(raw, mail_from=address)
    number = next(w for w in answer.split() if w.startswith("TT-"))
    (ack,) = wait_mails(desk, address, 1, "the auto-reply")
    assert ack["Auto-Submitted"] == "auto-replied"
    assert ack["In-Reply-To"] == mid and ack["Subject"] == f"[{number}] Re: Backup missing"
    assert "This is an automatic reply" in text_of(ack)

    raw, _ = mail(address, "Your invoice is ready", headers={"Auto-Submitted": "auto-generated"})
    desk.send_mail(raw, mail_from=address)
    refused = wait_until(
        lambda: [d for d in deliveries(desk, address) if d.status == DeliveryStatus.suppressed],
        what="the auto-reply refused by loop protection",
    )
    assert "auto_submitted" in refused[0].last_answer
    assert len(mails_to(desk, address)) == 1


def test_an_auto_responder_that_ignores_the_rules_is_stopped_by_the_cap(desk: Desk) -> None:
    """A responder that answers every mail as a person would (no Auto-Submitted, a new
    subject, no threading): each answer opens a ticket that would be auto-replied to again.
    The per-address cap ends the loop."""
    account, _ = desk.customer("Otto")
    address = contact_email(desk, account.id)
    raw, _ = mail(address, "Please call me back")
    desk.send_mail(raw, mail_from=address)

    def next_step(answered: int) -> str | None:
        if len(mails_to(desk, address)) > answered:
            return "mail"
        if any(d.status == DeliveryStatus.suppressed for d in deliveries(desk, address)):
            return "capped"
        return None

    answered = 0
    for _ in range(AUTO_REPLIES_PER_HOUR + 5):
        state = wait_until(lambda: next_step(answered), what="an auto-reply or the cap")  # noqa: B023
        if state == "capped":
            break
        answered += 1
        raw, _ = mail(address, f"Thanks for your message {answered}", "I am on leave.")
        desk.send_mail(raw, mail_from=address)
    rows = deliveries(desk, address)
    sent = [d for d in rows if d.status == DeliveryStatus.sent]
    capped = [d for d in rows if d.status == DeliveryStatus.suppressed]
    assert answered == len(sent) == AUTO_REPLIES_PER_HOUR
    assert len(capped) == 1 and "in the last hour" in capped[0].last_answer
    with desk.db.read() as s:
        tickets = s.scalar(
            select(func.count()).select_from(Ticket).where(Ticket.account_id == account.id)
        )
    assert tickets == AUTO_REPLIES_PER_HOUR + 1  # every mail kept, the loop ended


def test_an_rfc3834_auto_responder_gets_no_answer_and_does_not_reopen(desk: Desk) -> None:
    account, customer = desk.customer("Una")
    address = contact_email(desk, account.id)
    _, agent = desk.agent(1)
    number = open_ticket(desk, customer)
    reply(desk, agent, number, "Fixed.", pending_customer=True)
    _, fixed = wait_mails(desk, address, 2)
    with desk.http(agent) as c:
        assert c.post(f"/api/v1/tickets/{number}/resolve").status_code == 200
    wait_mails(desk, address, 3, "the resolution notice")
    headers = {"Auto-Submitted": "auto-replied", "In-Reply-To": fixed["Message-ID"]}
    raw, _ = mail(address, "Out of Office: Re: Site down", "Back on Monday.", headers=headers)
    desk.send_mail(raw, mail_from=address)
    with desk.db.read() as s:
        t = s.get(Ticket, ticket_id_from_number(number))
        assert t is not None and t.status == "resolved"  # kept on the ticket, not reopened
        kept = s.scalar(select(func.count()).select_from(Message).where(
            Message.ticket_id == t.id, Message.body.contains("Back on Monday")))  # fmt: skip
    assert kept == 1
    assert len(deliveries(desk, address)) == 3  # nothing answered it


def test_a_bounce_of_a_notification_stops_mail_to_the_address(desk: Desk) -> None:
    account, customer = desk.customer("Bea")
    address = contact_email(desk, account.id)
    _, agent = desk.agent(1)
    number = open_ticket(desk, customer)
    reply(desk, agent, number, "Please check your DNS.")
    _, ours = wait_mails(desk, address, 2)
    dsn = DSN.format(address=address, number=number, ours=ours["Message-ID"]).replace(
        "<20261202101500.4A1B2C3D4E@mx.customer.example>", make_msgid(domain="mx.customer.example")
    )  # a report of its own: the template's Message-ID is another test's report
    desk.send_mail(dsn.encode(), mail_from="")
    with desk.db.read() as s:
        assert s.scalar(select(MailSuppression).where(MailSuppression.address == address))
    with desk.http(agent) as c:
        (contact,) = c.get(f"/api/v1/accounts/{account.id}").json()["contacts"]
    assert "5.1.1" in (contact["undeliverable"] or "")
    reply(desk, agent, number, "Did you check?")
    held = wait_until(
        lambda: [d for d in deliveries(desk, address) if d.status == DeliveryStatus.suppressed],
        what="the next mail held back",
    )
    assert "bounced" in held[0].last_answer
    assert len(mails_to(desk, address)) == 2


def test_a_recipient_the_relay_refuses_for_good_fails_once_and_is_suppressed(
    desk: Desk,
) -> None:
    account, customer = desk.customer("Ned")
    address = contact_email(desk, account.id)
    desk.outgoing.refuse.add(address.lower())
    try:
        open_ticket(desk, customer)
        (failed,) = wait_until(
            lambda: [d for d in deliveries(desk, address) if d.status == DeliveryStatus.failed],
            what="the refused mail failed",
        )
    finally:
        desk.outgoing.refuse.discard(address.lower())
    assert failed.attempts == 1 and failed.last_answer.startswith("550 5.1.1")
    with desk.db.read() as s:
        row = s.scalar(select(MailSuppression).where(MailSuppression.address == address))
        assert row is not None and row.status_code == "5.1.1"
    _, agent = desk.agent(1)
    with desk.http(agent) as c:  # the agent sees it on the account view, at once
        view = c.get(f"/api/v1/accounts/{account.id}").json()
    (contact,) = view["contacts"]
    assert contact["undeliverable"] and "5.1.1" in contact["undeliverable"]


def test_a_relay_that_is_down_is_retried_and_each_mail_arrives_once(desk: Desk) -> None:
    account, customer = desk.customer("Rae")
    address = contact_email(desk, account.id)
    desk.outgoing.reply = "451 4.3.0 try again later"
    try:
        number = open_ticket(desk, customer)  # the desk answers while its relay does not
        retried = wait_until(
            lambda: [d for d in deliveries(desk, address) if d.attempts >= 2],
            what="a second attempt after the 451",
        )
        assert retried[0].status == DeliveryStatus.queued and "451" in retried[0].last_answer
        assert retried[0].next_attempt_at is not None
        _, agent = desk.agent(1)
        reply(desk, agent, number, "We are on it.")  # the desk works on
    finally:
        desk.outgoing.reply = None
    wait_until(
        lambda: (
            len(deliveries(desk, address)) == 2
            and all(d.status == DeliveryStatus.sent for d in deliveries(desk, address))
        ),
        what="both mails sent once the relay is back",
    )
    got = [m.message()["Message-ID"] for m in mails_to(desk, address)]
    assert len(got) == 2 and len(set(got)) == 2  # each once


def test_planning_an_outbox_row_twice_plans_its_mail_once(desk: Desk) -> None:
    """What the notifier does after a crash between planning and marking the row published."""
    from actors.mail.settings import MailSettings
    from store.models.base import utcnow

    account, customer = desk.customer("Pia")
    address = contact_email(desk, account.id)
    open_ticket(desk, customer)
    wait_mails(desk, address, 1)
    (row,) = deliveries(desk, address)
    planner = MailPlanner(desk.deployment.config.mail)
    assert isinstance(desk.deployment.config.mail, MailSettings)
    with desk.db.write() as s:
        event = s.get(OutboxEvent, row.outbox_event_id)
        assert event is not None
        assert planner.plan(s, [event.envelope()], utcnow()) == 0
    assert len(deliveries(desk, address)) == 1


def test_the_same_mail_delivered_twice_is_auto_replied_to_once(desk: Desk) -> None:
    """The same message delivered twice (an MTA's retry) makes one ticket and one auto-reply."""
    account, _ = desk.customer("Lia")
    address = contact_email(desk, account.id)
    raw, _ = mail(address, "Twice", message_id=make_msgid(domain="customer.example"))
    desk.send_mail(raw, mail_from=address)
    desk.send_mail(raw, mail_from=address)
    wait_mails(desk, address, 1)
    assert len(deliveries(desk, address)) == 1


def test_admins_read_the_sent_mail_and_nobody_else_does(desk: Desk) -> None:
    account, customer = desk.customer("Sol")
    address = contact_email(desk, account.id)
    number = open_ticket(desk, customer, "Renew my certificate")
    (sent,) = wait_mails(desk, address, 1)
    admin = desk.admin()
    with desk.http(admin) as c:
        page = c.get("/api/v1/mail/outgoing", params={"recipient": address}).json()
        (item,) = page["items"]
        assert item["ticket_number"] == number and item["status"] == "sent"
        assert item["last_answer"].startswith("250") and item["subject"] == sent["Subject"]
        assert f"<{item['message_id']}>" == sent["Message-ID"]
        detail = c.get(f"/api/v1/mail/outgoing/{item['id']}").json()
        assert detail["headers"]["Auto-Submitted"] == "auto-generated"
        assert "Renew my certificate" in detail["text"] and detail["html"]
        raw = c.get(f"/api/v1/mail/outgoing/{item['id']}/raw")
        assert raw.headers["content-type"].startswith("message/rfc822")
        assert raw.content.replace(b"\r\n", b"\n") in mails_to(desk, address)[0].data.replace(
            b"\r\n", b"\n"
        )
        by_ticket = c.get("/api/v1/mail/outgoing", params={"ticket": number}).json()["items"]
        assert [i["id"] for i in by_ticket] == [item["id"]]
        bad = c.get("/api/v1/mail/outgoing", params={"ticket": "TT-x"})
        assert bad.status_code == 422 and bad.json()["error"] == "invalid_ticket_number"
        assert c.get("/api/v1/mail/outgoing/999999999").status_code == 404
    _, agent = desk.agent(1)
    for token in (customer, agent):
        with desk.http(token) as c:
            r = c.get("/api/v1/mail/outgoing")
        assert r.status_code == 403 and "administrators" in r.text


def test_an_sla_warning_and_an_escalation_reach_the_agents_and_the_customer(desk: Desk) -> None:
    import ray

    from store.models import User

    account, _ = desk.customer("Kai")
    address = contact_email(desk, account.id)
    l1, l1_token = desk.agent(1)
    l2, _ = desk.agent(2)
    with desk.db.read() as s:
        l1_email, l2_email = (s.scalar(select(User.email).where(User.id == a.user_id))
                              for a in (l1, l2))  # fmt: skip
        assert l1_email and l2_email
    with desk.http(l1_token) as c:  # urgent: first response due in 30 minutes
        r = c.post("/api/v1/tickets", json={"account_id": account.id, "priority": "urgent",
                                            "subject": "Checkout broken", "body": "x"})  # fmt: skip
    assert r.status_code == 201, r.text
    number = r.json()["number"]
    sla = desk.deployment.directory.sla()
    try:
        (assigned,) = wait_mails(desk, l1_email, 1, "the assignment notice")
        assert "Assigned to you" in str(assigned["Subject"])  # not the customer's notice
        ray.get(sla.advance.remote(25 * 60))  # past 80 %: a warning to the owner
        warned = wait_mails(desk, l1_email, 2, "the SLA warning")[1]
        assert warned["Subject"] == f"[{number}] SLA warning: Checkout broken"
        assert "the first response deadline" in text_of(warned)
        ray.get(sla.advance.remote(6 * 60))  # breached: escalated to level 2
        to_l2 = wait_until(
            lambda: [m.message() for m in mails_to(desk, l2_email)
                     if "Escalated" in str(m.message()["Subject"])],
            what="the escalation to level 2",
        )  # fmt: skip
        assert to_l2[0]["Subject"] == f"[{number}] Escalated to level 2: Checkout broken"
    finally:
        ray.get(sla.reset_clock.remote())
    told = wait_mails(desk, address, 2, "the customer's opening and escalation notices")
    assert "passed to level 2 support" in text_of(told[-1])
    assert not [m for m in told if "SLA" in str(m["Subject"])]  # internal: not for customers
