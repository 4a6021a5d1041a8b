"""The doors' bounds, pushed past on the real desk: a gateway whose queue of new tickets is
full answers 503 `intake_busy` with Retry-After (and files every ticket it took), and the SMTP
door serves its bound of sessions and greets one more with 421 (and loses no mail)."""

from __future__ import annotations

import secrets
import smtplib
import threading
import uuid
from collections import Counter
from email.message import EmailMessage

import httpx
import pytest
from sqlalchemy import select

from automation.loopback import free_port
from gateway.settings import GatewaySettings
from gateway.smtp import SmtpIntake
from store.models import InboundMail, Ticket
from tests.backpressure import gateway_of_its_own, holding_the_write_lock
from tests.desk import Desk, wait_until

pytestmark = pytest.mark.ray


def test_a_gateway_past_its_ticket_queue_answers_503_and_files_all_it_took(desk: Desk) -> None:
    account, token = desk.customer("Queued")
    tag = secrets.token_hex(3)
    answers: dict[int, httpx.Response] = {}

    def open_ticket(url: str, i: int) -> None:
        with httpx.Client(base_url=url, timeout=60,
                          headers={"Authorization": f"Bearer {token}"}) as c:  # fmt: skip
            answers[i] = c.post(
                "/api/v1/tickets",
                json={"subject": f"Queued {tag} {i}", "body": "Is anyone there?"},
                headers={"Idempotency-Key": f"{tag}-{i}"},
            )

    # One call to the intake at a time, three more tickets waiting for it: the fifth to come
    # while the intake's commit can not finish is refused.
    with gateway_of_its_own(desk, ticket_queue_max=3) as url:
        with holding_the_write_lock(desk.db):
            clients = [threading.Thread(target=open_ticket, args=(url, i)) for i in range(8)]
            for t in clients:
                t.start()
            wait_until(lambda: len(answers) >= 4, what="the tickets beyond the queue refused")
            assert sorted(r.status_code for r in answers.values()) == [503] * 4
        for t in clients:
            t.join(60)
        refused = [i for i, r in answers.items() if r.status_code == 503]
        for i in refused:
            r = answers[i]
            assert r.json()["error"] == "intake_busy" and r.headers["Retry-After"] == "1"
        took = {i: r.json()["number"] for i, r in answers.items() if r.status_code == 201}
        assert len(took) == 4 and len(refused) == 4
        with desk.db.read() as s:
            filed = Counter(
                s.scalars(select(Ticket.subject).where(Ticket.account_id == account.id))
            )
        assert filed == Counter(f"Queued {tag} {i}" for i in took)  # each once, no refused one
        # A refused request sent again (after its Retry-After) is taken like any other.
        for i in refused:
            open_ticket(url, i)
            assert answers[i].status_code == 201, answers[i].text
    with desk.db.read() as s:
        filed = Counter(s.scalars(select(Ticket.subject).where(Ticket.account_id == account.id)))
    assert filed == Counter(f"Queued {tag} {i}" for i in range(8))


def mail(sender: str, subject: str) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, "support@sitedesk.test", subject
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@customer.test>"
    msg.set_content("The shop is slow again.")
    return msg


def test_the_smtp_door_serves_its_bound_of_sessions_and_greets_one_more_421(desk: Desk) -> None:
    _, sender = desk.new_customer("Sessions")
    door = SmtpIntake(desk.deployment.directory, desk.deployment.config.mail, port=free_port(),
                      limits=GatewaySettings(smtp_max_sessions=2)).start()  # fmt: skip
    sent = []
    try:
        first = smtplib.SMTP("127.0.0.1", door.port, timeout=30)
        second = smtplib.SMTP("127.0.0.1", door.port, timeout=30)
        first.ehlo("mx1.test")
        second.ehlo("mx2.test")
        with pytest.raises(smtplib.SMTPConnectError) as turned:
            smtplib.SMTP("127.0.0.1", door.port, timeout=30)
        assert turned.value.smtp_code == 421 and b"try again later" in turned.value.smtp_error
        assert door.door.turned_away == 1
        # The sessions it serves go on as before.
        msg = mail(sender, "Held session")
        first.send_message(msg)
        sent.append(msg["Message-ID"])
        first.quit()
        wait_until(lambda: door.door.sessions == 1, what="the first session to end")
        # Room again: the sending server's retry of the turned-away mail is taken, once.
        third = smtplib.SMTP("127.0.0.1", door.port, timeout=30)
        msg = mail(sender, "Retried after 421")
        third.send_message(msg)
        sent.append(msg["Message-ID"])
        third.quit()
        second.quit()
    finally:
        door.stop()
    with desk.db.read() as s:
        kept = Counter(s.scalars(select(InboundMail.message_id).where(
            InboundMail.message_id.in_([m.strip("<>") for m in sent] + sent))))  # fmt: skip
    assert sorted(kept.values()) == [1, 1]
