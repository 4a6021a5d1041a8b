"""Calls an agent logs, through the real desk (Ray actors, both databases, Redis, the gateway
over HTTP): on a ticket, once per provider call id; a ticket opened from a call finds the
caller by any spelling of their number; an unknown number needs an account."""

from __future__ import annotations

import secrets
from typing import Any

import pytest
from sqlalchemy import func, select

from store.models import Account, Call
from store.phone import e164
from store.repositories import AccountRepository
from tests.desk import Desk

pytestmark = pytest.mark.ray


def fresh_number() -> tuple[str, str]:
    """A Berlin number no other test uses: (national spelling, E.164)."""
    while True:
        national = f"030 {secrets.randbelow(9 * 10**7) + 10**7}"
        canonical = e164(national)
        if canonical is not None:
            return national, canonical


def caller_account(desk: Desk, phone: str) -> tuple[Account, int, str]:
    """A customer account whose contact has `phone`; returns it, the contact id and a token."""
    account, email = desk.new_customer("Caller")
    with desk.db.write() as s:
        contact = AccountRepository(s).add_contact(
            account.id, name="Phoning Person", email=f"p.{secrets.token_hex(3)}@x.test", phone=phone
        )
    return account, contact.id, desk.login(email)


def staff_ticket(desk: Desk, token: str, account_id: int) -> str:
    with desk.http(token) as c:
        r = c.post("/api/v1/tickets", json={"account_id": account_id, "subject": "Site down",
                                            "body": "The site is down, they say."})  # fmt: skip
    assert r.status_code == 201, r.text
    return str(r.json()["number"])


def calls_with(desk: Desk, provider_call_id: str) -> list[Call]:
    with desk.db.read() as s:
        return list(s.scalars(select(Call).where(Call.provider_call_id == provider_call_id)))


def call_logs(ticket: dict[str, Any]) -> list[dict[str, Any]]:
    """The messages of a ticket that are logged calls (its first message may be `phone` too)."""
    return [m for m in ticket["messages"] if m["body"].startswith("Phone call ")]


def detail(desk: Desk, token: str, number: str) -> dict[str, Any]:
    with desk.http(token) as c:
        r = c.get(f"/api/v1/tickets/{number}")
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_a_call_logged_on_a_ticket_twice_with_one_provider_id_is_one_call(desk: Desk) -> None:
    national, canonical = fresh_number()
    account, contact_id, customer = caller_account(desk, f"+49 {national[1:]}")
    _, agent = desk.agent(1)
    number = staff_ticket(desk, agent, account.id)
    call_id = f"pc-{secrets.token_hex(6)}"
    body = {"number": national, "direction": "inbound", "duration_seconds": 185,
            "notes": "Walked the customer through the DNS settings.",
            "provider_call_id": call_id}  # fmt: skip
    with desk.http(agent) as c:
        first = c.post(f"/api/v1/tickets/{number}/calls", json=body)
        again = c.post(f"/api/v1/tickets/{number}/calls", json=body)
    assert first.status_code == 201, first.text
    assert again.status_code == 201, again.text
    [call] = calls_with(desk, call_id)
    assert (call.caller_number, call.duration_seconds, call.status) == (canonical, 185, "ended")
    assert (call.account_id, call.contact_id, call.direction) == (account.id, contact_id, "inbound")
    seen = detail(desk, agent, number)
    phone = call_logs(seen)
    assert phone[0]["channel"] == "phone"
    assert len(phone) == 1
    assert phone[0]["visibility"] == "internal"  # call notes are the agents' by default
    assert f"Phone call from {canonical}, 3 min 05 s" in phone[0]["body"]
    assert "DNS settings" in phone[0]["body"]
    assert [e["kind"] for e in seen["events"]].count("call_logged") == 1
    assert seen["first_responded_at"] is None  # an internal note answers nobody
    assert not call_logs(detail(desk, customer, number))


def test_a_public_call_log_is_the_first_response_and_the_customer_reads_it(desk: Desk) -> None:
    national, _ = fresh_number()
    account, _, customer = caller_account(desk, national)
    _, agent = desk.agent(1)
    number = staff_ticket(desk, agent, account.id)
    with desk.http(agent) as c:
        r = c.post(f"/api/v1/tickets/{number}/calls", json={
            "number": national, "direction": "outbound", "duration_seconds": 42,
            "notes": "Called back: the certificate is renewed.", "visibility": "public",
        })  # fmt: skip
    assert r.status_code == 201, r.text
    assert r.json()["first_responded_at"] is not None
    mine = call_logs(detail(desk, customer, number))
    assert [m["body"].splitlines()[-1] for m in mine] == [
        "Called back: the certificate is renewed."
    ]


def test_only_staff_log_calls_and_a_bad_number_says_why(desk: Desk) -> None:
    national, _ = fresh_number()
    account, _, customer = caller_account(desk, national)
    _, agent = desk.agent(1)
    number = staff_ticket(desk, agent, account.id)
    with desk.http(customer) as c:
        r = c.post(f"/api/v1/tickets/{number}/calls", json={"number": national})
    assert r.status_code == 403, r.text
    with desk.http(agent) as c:
        r = c.post(f"/api/v1/tickets/{number}/calls", json={"number": "0301"})
        assert r.status_code == 422, r.text
        assert r.json()["error"] == "invalid_phone_number"
        assert r.json()["detail"] == [{"field": "number", "problem": "not a valid phone number "
                                       "(read in region DE unless it starts with +)"}]  # fmt: skip
        r = c.post("/api/v1/calls", json={"number": "+49 abc"})
        assert r.status_code == 422 and r.json()["error"] == "invalid_phone_number", r.text
        r = c.post(
            f"/api/v1/tickets/{number}/calls", json={"number": national, "duration_seconds": -1}
        )
        assert r.status_code == 422 and "duration_seconds" in r.json()["message"], r.text


def test_a_ticket_from_a_call_finds_the_caller_by_another_spelling(desk: Desk) -> None:
    national, canonical = fresh_number()
    account, contact_id, _ = caller_account(desk, f"+49 {national[1:]}")  # stored as +49...
    _, agent = desk.agent(1)
    with desk.http(agent) as c:
        r = c.post("/api/v1/calls", json={"number": national, "duration_seconds": 60,
                                          "notes": "Mailbox full."},
                   headers={"Idempotency-Key": "call-" + secrets.token_hex(4)})  # fmt: skip
        assert r.status_code == 201, r.text
        receipt = r.json()
        assert receipt["status"] == "logged" and receipt["account_id"] == account.id
        ticket = receipt["ticket"]
        assert (ticket["channel"], ticket["account_id"]) == ("phone", account.id)
        assert ticket["subject"] == "Phone call from Phoning Person"
        who = c.get("/api/v1/calls", params={"number": f"0049 {national[1:]}"})
    assert who.status_code == 200, who.text
    found = who.json()
    assert found["number"] == canonical and found["known"] is True
    assert [(m["contact_id"], m["account_id"]) for m in found["matches"]] == [
        (contact_id, account.id)
    ]
    assert found["matches"][0]["open_ticket"] == ticket["number"]
    assert [x["ticket_number"] for x in found["recent_calls"]] == [ticket["number"]]
    with desk.db.read() as s:
        [call] = s.scalars(select(Call).where(Call.account_id == account.id))
        assert (call.contact_id, call.caller_number) == (contact_id, canonical)


def test_a_retried_call_ticket_with_its_key_is_one_ticket_and_one_call(desk: Desk) -> None:
    national, _ = fresh_number()
    account, _, _ = caller_account(desk, national)
    _, agent = desk.agent(1)
    key = {"Idempotency-Key": "call-" + secrets.token_hex(4)}
    with desk.http(agent) as c:
        first = c.post("/api/v1/calls", json={"number": national}, headers=key)
        again = c.post("/api/v1/calls", json={"number": national}, headers=key)
    assert first.status_code == again.status_code == 201, again.text
    assert first.json()["ticket"]["number"] == again.json()["ticket"]["number"]
    with desk.db.read() as s:
        n = s.scalar(select(func.count()).select_from(Call).where(Call.account_id == account.id))
    assert n == 1


def test_an_unknown_number_needs_an_account(desk: Desk) -> None:
    national, canonical = fresh_number()
    account, _ = desk.new_customer("No phone")
    _, agent = desk.agent(1)
    with desk.http(agent) as c:
        r = c.post("/api/v1/calls", json={"number": national, "notes": "New prospect."})
        assert r.status_code == 422, r.text
        assert r.json()["error"] == "unknown_number"
        assert canonical in r.json()["message"] and "account_id" in r.json()["message"]
        who = c.get("/api/v1/calls", params={"number": national}).json()
        assert (who["known"], who["matches"], who["recent_calls"]) == (False, [], [])
        r = c.post("/api/v1/calls", json={"number": national, "account_id": account.id})
        assert r.status_code == 201, r.text
        assert r.json()["ticket"]["account_id"] == account.id
        r = c.post("/api/v1/calls", json={"number": national, "account_id": 10**9})
        assert r.status_code == 404 and r.json()["error"] == "account_not_found", r.text
