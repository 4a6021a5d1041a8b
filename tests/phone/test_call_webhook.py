"""The telephony webhook through the real desk: a second gateway over the same actors with a
shared secret (the provider is outside the system, so the test signs its events itself, with
the real check on the other side). Good and bad signatures, the replay window, bodies that are
no event; `call.started` pops the caller's account for the answering agent only; `call.ended`
logs on the open ticket or opens one, once."""

from __future__ import annotations

import json
import secrets
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select

from actors.phone.webhook import SIGNATURE_HEADER, sign
from store.models import Account, Call, Ticket, User
from store.repositories import AccountRepository
from tests.desk import Desk
from tests.phone.conftest import SECRET
from tests.phone.test_calls import call_logs, detail, fresh_number, staff_ticket
from tests.sse import SseRecorder

pytestmark = pytest.mark.ray

SUPPORT_LINE = "+4930901820"


def event(kind: str, caller: str | None, **fields: Any) -> dict[str, Any]:
    started = datetime.now(UTC) - timedelta(minutes=3)
    body = {"type": kind, "call_id": f"prov-{secrets.token_hex(6)}", "from": caller,
            "to": SUPPORT_LINE, "started_at": started.isoformat()}  # fmt: skip
    if kind == "call.ended":
        body |= {"ended_at": (started + timedelta(seconds=150)).isoformat(),
                 "duration_seconds": 140}  # fmt: skip
    return body | fields


def post(
    url: str, body: bytes | dict[str, Any], *, at: float | None = None, secret: str = SECRET
) -> httpx.Response:
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    header = sign(secret, int(time.time() if at is None else at), raw)
    with httpx.Client(base_url=url, timeout=60) as c:
        headers = {SIGNATURE_HEADER: header, "Content-Type": "application/json"}
        return c.post("/api/v1/calls/events", content=raw, headers=headers)


def caller(desk: Desk) -> tuple[Account, int, str, str]:
    """An account whose contact has a fresh number: (account, contact id, customer token,
    the number as the provider sends it, E.164)."""
    _, canonical = fresh_number()
    account, email = desk.new_customer("Ringing")
    with desk.db.write() as s:
        contact = AccountRepository(s).add_contact(
            account.id, name="Rita Ringer", email=f"r.{secrets.token_hex(3)}@x.test",
            phone=canonical,
        )  # fmt: skip
    return account, contact.id, desk.login(email), canonical


def email_of(desk: Desk, user_id: int) -> str:
    with desk.db.read() as s:
        user = s.get(User, user_id)
        assert user is not None
        return user.email


def test_without_a_secret_the_webhook_says_it_is_not_configured(desk: Desk) -> None:
    r = post(desk.base_url, event("call.started", SUPPORT_LINE))
    assert r.status_code == 503, r.text
    assert r.json()["error"] == "telephony_not_configured"
    assert "SITEDESK_TELEPHONY_SECRET" in r.json()["message"]


def test_signatures_and_the_replay_window(desk: Desk, phone_gateway: str) -> None:
    _, _, _, number = caller(desk)
    good = event("call.started", number)
    r = post(phone_gateway, good)
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "ringing"
    [call] = _calls(desk, good["call_id"])
    assert (call.status, call.caller_number) == ("ringing", number)

    r = post(phone_gateway, event("call.started", number), secret="not-our-secret-" + "x" * 16)
    assert (r.status_code, r.json()["error"]) == (401, "bad_signature"), r.text
    raw = json.dumps(event("call.started", number)).encode()
    header = sign(SECRET, int(time.time()), raw)
    with httpx.Client(base_url=phone_gateway) as c:
        r = c.post("/api/v1/calls/events", content=raw + b" ",
                   headers={SIGNATURE_HEADER: header})  # fmt: skip
        assert (r.status_code, r.json()["error"]) == (401, "bad_signature"), r.text
        r = c.post("/api/v1/calls/events", content=raw)
        assert (r.status_code, r.json()["error"]) == (400, "malformed_signature_header")
        assert SIGNATURE_HEADER in r.json()["message"]

    replayed = event("call.started", number)
    r = post(phone_gateway, replayed, at=time.time() - 6 * 60)  # correctly signed, 6 min old
    assert (r.status_code, r.json()["error"]) == (401, "stale_timestamp"), r.text
    assert "too old" in r.json()["message"]
    r = post(phone_gateway, replayed, at=time.time() + 6 * 60)
    assert (r.status_code, r.json()["error"]) == (401, "stale_timestamp"), r.text
    assert "future" in r.json()["message"]
    assert _calls(desk, replayed["call_id"]) == []  # refused requests leave nothing


def test_a_signed_body_that_is_no_event_says_what_is_wrong(desk: Desk, phone_gateway: str) -> None:
    r = post(phone_gateway, event("call.forwarded", SUPPORT_LINE))
    assert (r.status_code, r.json()["error"]) == (422, "malformed_event"), r.text
    assert [d["loc"] for d in r.json()["detail"]] == [["type"]]
    r = post(phone_gateway, event("call.started", "12"))
    assert r.status_code == 422, r.text
    [problem] = r.json()["detail"]
    assert (
        problem["loc"] == ["call.started", "from"] and "not a valid phone number" in problem["msg"]
    )
    r = post(phone_gateway, b"{not json")
    assert (r.status_code, r.json()["error"]) == (422, "malformed_event"), r.text
    r = post(phone_gateway, event("call.ended", SUPPORT_LINE, duration_seconds=-5))
    assert r.status_code == 422 and "duration_seconds" in json.dumps(r.json()["detail"])


def test_call_started_pops_the_account_for_the_answering_agent_only(
    desk: Desk, phone_gateway: str
) -> None:
    account, contact_id, customer, number = caller(desk)
    answering, answering_token = desk.agent(1)
    _, other_token = desk.agent(1)
    url = f"{desk.base_url}/api/v1/events"
    streams = [SseRecorder(url, t).start() for t in (answering_token, other_token, customer)]
    try:
        ring = event("call.started", number, agent=email_of(desk, answering.user_id))
        r = post(phone_gateway, ring)
        assert r.status_code == 200 and r.json()["agent_id"] == answering.id, r.text
        popped = streams[0].wait_for(lambda e: e.get("topic") == "call.started")
        assert popped["call_id"] == ring["call_id"] and popped["agent_id"] == answering.id
        assert popped["account"]["id"] == account.id == popped["account_id"]
        assert popped["contact"]["id"] == contact_id
        assert popped["summary"] == f"Call from Rita Ringer ({account.name})"
        # A later event that the other agent and the customer do hear: having heard it, they
        # would have heard the call before it (the outbox is published in order).
        later = staff_ticket(desk, answering_token, account.id)
        for stream in streams[1:]:
            stream.wait_for(lambda e: e.get("topic") == "ticket.created"
                            and e.get("data", {}).get("number") == later)  # fmt: skip
            assert not [e for e in stream.events if e.get("topic") == "call.started"]
        assert post(phone_gateway, ring).json()["status"] == "duplicate"
    finally:
        for stream in streams:
            stream.stop()


def test_call_ended_logs_on_the_open_ticket_once(desk: Desk, phone_gateway: str) -> None:
    account, _, _, number = caller(desk)
    agent, token = desk.agent(1)
    number_open = staff_ticket(desk, token, account.id)
    ended = event("call.ended", number, agent=email_of(desk, agent.user_id))
    first = post(phone_gateway, ended)
    again = post(phone_gateway, ended)
    assert first.status_code == again.status_code == 200, again.text
    assert (first.json()["status"], first.json()["ticket_number"]) == ("logged", number_open)
    assert (again.json()["status"], again.json()["ticket_number"]) == ("duplicate", number_open)
    [call] = _calls(desk, ended["call_id"])
    assert (call.status, call.duration_seconds, call.agent_id) == ("ended", 140, agent.id)
    logs = call_logs(detail(desk, token, number_open))
    assert len(logs) == 1 and logs[0]["author"] == f"L1 agent {email_of(desk, agent.user_id)[8:16]}"
    assert f"Phone call from {number}, 2 min 20 s" in logs[0]["body"]


def test_call_ended_opens_a_phone_ticket_once_when_none_is_open(
    desk: Desk, phone_gateway: str
) -> None:
    account, contact_id, _, number = caller(desk)
    _, token = desk.agent(1)
    ringing = event("call.started", number)
    assert post(phone_gateway, ringing).json()["status"] == "ringing"
    ended = event("call.ended", number, call_id=ringing["call_id"])
    first = post(phone_gateway, ended)
    again = post(phone_gateway, ended)
    assert first.status_code == again.status_code == 200, again.text
    assert first.json()["status"] == "logged" and again.json()["status"] == "duplicate"
    new = first.json()["ticket_number"]
    assert again.json()["ticket_number"] == new
    with desk.db.read() as s:
        tickets = list(s.scalars(select(Ticket).where(Ticket.account_id == account.id)))
    assert [(t.channel, t.contact_id, t.subject) for t in tickets] == [
        ("phone", contact_id, "Phone call from Rita Ringer")
    ]
    [call] = _calls(desk, ringing["call_id"])  # the ringing call, filled in: one call
    assert (call.status, call.ticket_id, call.duration_seconds) == ("ended", tickets[0].id, 140)
    assert len(call_logs(detail(desk, token, new))) == 1


def test_a_call_from_an_unknown_number_is_kept_without_a_ticket(
    desk: Desk, phone_gateway: str
) -> None:
    _, number = fresh_number()
    ended = event("call.ended", number)
    r = post(phone_gateway, ended)
    assert (r.status_code, r.json()["status"]) == (200, "unknown_caller"), r.text
    [call] = _calls(desk, ended["call_id"])
    assert (call.status, call.account_id, call.ticket_id) == ("ended", None, None)
    with desk.db.read() as s:
        assert s.scalar(select(func.count()).select_from(Call).where(
            Call.caller_number == number)) == 1  # fmt: skip


def _calls(desk: Desk, provider_call_id: str) -> list[Call]:
    with desk.db.read() as s:
        return list(s.scalars(select(Call).where(Call.provider_call_id == provider_call_id)))
