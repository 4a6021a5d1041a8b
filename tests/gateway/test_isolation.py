"""Customer A walks every endpoint with customer B's ids: nothing of B's leaks."""

from __future__ import annotations

import uuid
from typing import Any
from uuid import uuid4

import pytest
from sqlalchemy import func, select

from store.models import OutboxEvent
from store.repositories import AccountRepository, ChangeRepository
from tests.desk import Desk, wait_until
from tests.sse import SseRecorder

pytestmark = pytest.mark.ray

MISSING = "TT-999999"
MISSING_ID = 999999


def answer(desk: Desk, token: str, method: str, path: str, **kw: Any) -> tuple[int, str]:
    with desk.http(token) as c:
        r = c.request(method, path, **kw)
    return r.status_code, r.json().get("error", "") if r.content else ""


def b_change(desk: Desk, account_id: int, service_id: int) -> str:
    """A settled change on B's service, as the SCDB holds one (no host needed to read it)."""
    with desk.db.write() as s:
        row = ChangeRepository(s).create(
            account_id=account_id, kind="dns_record_add", source="portal", service_id=service_id,
            params={"zone": "b.test", "record": {"name": "b", "type": "TXT", "value": "B secret"}},
        )  # fmt: skip
        row.status = "applied"
        return row.id


def test_customer_a_can_not_see_or_touch_customer_b(desk: Desk) -> None:
    """Every endpoint that looks up something by id answers A about B's things exactly as about
    things that do not exist (404, no oracle), and nothing of B's reaches A."""
    a_account, a = desk.customer("Alpha")
    b_account, b = desk.customer("Beta")
    _, staff = desk.agent(1)
    with desk.db.read() as s:
        before = s.scalar(select(func.max(OutboxEvent.id))) or 0
        a_service = AccountRepository(s).services(a_account.id)[0].id
        b_service = AccountRepository(s).services(b_account.id)[0].id
    key = f"same-key-{uuid.uuid4().hex[:8]}"
    with desk.http(b) as c:
        r = c.post("/api/v1/tickets", json={"subject": "B secret", "body": "b"},
                   headers={"Idempotency-Key": key})  # fmt: skip
        b_number = r.json()["number"]
    # B's ticket is resolved: B may reopen or close it now, so A's refusal is about whose it is.
    wait_until(lambda: answer(desk, staff, "POST", f"/api/v1/tickets/{b_number}/resolve")[0]
               == 200, what="B's ticket resolved")  # fmt: skip
    b_change_id = b_change(desk, b_account.id, b_service)
    with desk.http(a) as c:
        # The same Idempotency-Key as B's: A's own new ticket, never B's answer replayed.
        r = c.post("/api/v1/tickets", json={"subject": "B secret", "body": "b"},
                   headers={"Idempotency-Key": key})  # fmt: skip
        assert r.status_code == 201 and r.json()["number"] != b_number, r.text
        assert r.json()["account_id"] == a_account.id
        a_number = r.json()["number"]

    # (method, path with B's id, its body; the same path and body with ids that do not exist)
    T, ACC = "/api/v1/tickets", "/api/v1/accounts"
    dns = {"kind": "dns_record_add", "params": {"record": {"name": "x", "type": "TXT",
                                                           "value": "x"}}}  # fmt: skip
    lookups: list[tuple[str, str, Any, str, Any]] = [
        ("GET", f"{T}/{b_number}", None, f"{T}/{MISSING}", None),
        ("POST", f"{T}/{b_number}/messages", {"body": "hi"}, f"{T}/{MISSING}/messages",
         {"body": "hi"}),
        ("POST", f"{T}/{b_number}/reopen", None, f"{T}/{MISSING}/reopen", None),
        ("POST", f"{T}/{b_number}/close", None, f"{T}/{MISSING}/close", None),
        ("POST", T, {"subject": "x", "body": "y", "account_id": b_account.id},
         T, {"subject": "x", "body": "y", "account_id": MISSING_ID}),
        ("GET", f"{ACC}/{b_account.id}", None, f"{ACC}/{MISSING_ID}", None),
        ("GET", f"{ACC}/{b_account.id}/timeline", None, f"{ACC}/{MISSING_ID}/timeline", None),
        ("GET", f"/api/v1/changes/{b_change_id}", None, f"/api/v1/changes/{uuid4()}", None),
        # a change to B's service, applied or only planned; A's own service said to be B's
        ("POST", "/api/v1/changes", {"service_id": b_service, **dns},
         "/api/v1/changes", {"service_id": MISSING_ID, **dns}),
        ("POST", "/api/v1/changes", {"service_id": b_service, "dry_run": True, **dns},
         "/api/v1/changes", {"service_id": MISSING_ID, "dry_run": True, **dns}),
        ("POST", "/api/v1/changes", {"service_id": a_service, "account_id": b_account.id, **dns},
         "/api/v1/changes", {"service_id": a_service, "account_id": MISSING_ID, **dns}),
    ]  # fmt: skip
    for method, path, body, missing_path, missing_body in lookups:
        got = answer(desk, a, method, path, json=body)
        missing = answer(desk, a, method, missing_path, json=missing_body)
        assert got == missing, (method, path, got, missing)
        assert got[0] == 404, (method, path, got)
    # B's things are as B left them: nothing A sent reached them.
    with desk.http(b) as c:
        t = c.get(f"/api/v1/tickets/{b_number}").json()
        assert t["status"] == "resolved" and "hi" not in [m["body"] for m in t["messages"]]
        assert c.get(f"/api/v1/changes/{b_change_id}").json()["status"] == "applied"

    # Steps refused to every customer by role, before any lookup: they prove the role rule,
    # not isolation (the lookups above do that).
    for method, path, kw in [
        ("POST", f"/api/v1/tickets/{b_number}/take", {}),
        ("POST", f"/api/v1/tickets/{b_number}/handover", {"json": {"agent_id": 1}}),
        ("POST", f"/api/v1/tickets/{b_number}/escalate", {"json": {"reason": "please"}}),
        ("POST", f"/api/v1/tickets/{b_number}/resolve", {}),
        ("GET", "/api/v1/queues/1", {}),
        ("PUT", "/api/v1/agents/me/presence", {"json": {"presence": "online"}}),
        ("GET", "/api/v1/hosts", {}),
    ]:
        assert answer(desk, a, method, path, **kw)[0] == 403, (method, path)

    # Lists are scoped to the caller's account whatever the filters say.
    with desk.http(a) as c:
        listed = c.get("/api/v1/tickets", params={"account": b_account.id}).json()
        view = c.get(f"/api/v1/accounts/{a_account.id}").json()
        timeline = c.get(f"/api/v1/accounts/{a_account.id}/timeline").json()
    assert [t["number"] for t in listed["items"]] == [a_number]
    assert b_number not in str(view) and b_number not in str(timeline)
    assert "B secret" not in str(view["recent_changes"]) and b_change_id not in str(timeline)
    assert [t["number"] for t in view["open_tickets"]] == [a_number]

    # B's activity never reaches A's live stream, neither live nor replayed from before it.
    a_stream = SseRecorder(f"{desk.base_url}/api/v1/events", a, last_event_id=before).start()
    with desk.http(b) as c:
        c.post(f"/api/v1/tickets/{b_number}/reopen")
        c.post(f"/api/v1/tickets/{b_number}/messages", json={"body": "more B"})
    with desk.http(a) as c:
        c.post(f"/api/v1/tickets/{a_number}/messages", json={"body": "more A"})
    a_stream.wait_for(lambda e: e["topic"] == "ticket.message" and e["data"]["number"] == a_number)
    assert a_stream.topics(a_number)[0] == "ticket.created"  # the replay from `before` ran
    assert not [e for e in a_stream.events if e.get("account_id") == b_account.id]
    assert b_number not in str(a_stream.events)
    a_stream.stop()


def test_errors_have_one_shape(desk: Desk) -> None:
    _, a = desk.customer()
    with desk.http() as c:
        r = c.get("/api/v1/tickets")
        assert r.status_code == 401 and r.json()["error"] == "unauthorized"
        assert r.headers["www-authenticate"] == "Bearer"
        r = c.get("/api/v1/tickets", headers={"Authorization": "Bearer sdt_forged"})
        assert r.status_code == 401 and "log in again" in r.json()["message"]
        r = c.post("/api/v1/auth/token", data={"username": "nobody@x.test", "password": "no"})
        assert r.status_code == 401
    with desk.http(a) as c:
        r = c.post("/api/v1/tickets", json={"subject": "", "body": "x", "surprise": 1})
        assert r.status_code == 422
        body = r.json()
        assert body["error"] == "invalid_request"
        assert {d["field"] for d in body["detail"]} == {"subject", "surprise"}
        r = c.post(
            "/api/v1/tickets", content=b"{not json", headers={"content-type": "application/json"}
        )
        assert r.status_code == 422 and r.json()["error"] == "invalid_request"
        r = c.get("/api/v1/tickets", params={"tier": 7})
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "query.tier"
        r = c.get("/api/v1/tickets/not-a-number")
        assert r.status_code == 404 and r.json()["error"] == "ticket_not_found"
        r = c.post("/api/v1/tickets", json={"subject": "s", "body": "b"},
                   headers={"Idempotency-Key": "x" * 500})  # fmt: skip
        assert r.status_code == 422 and r.json()["error"] == "invalid_idempotency_key"


def test_login_is_rate_limited(desk: Desk) -> None:
    victim = f"victim.{uuid.uuid4().hex[:8]}@x.test"
    with desk.http() as c:
        codes = [
            c.post("/api/v1/auth/token",
                   data={"username": victim, "password": f"guess {i}"}).status_code
            for i in range(12)
        ]  # fmt: skip
    assert codes[:10] == [401] * 10 and codes[10:] == [429, 429]


def test_logins_and_failed_logins_are_audited(desk: Desk) -> None:
    from store.repositories import AuditRepository

    account, _ = desk.customer("Audited")
    with desk.db.read() as s:
        ok = [a for a in AuditRepository(s).for_account(account.id) if a.action == "login"]
    assert len(ok) == 1 and ok[0].ip == "127.0.0.1" and ok[0].data["token"].startswith("sdt_")
    ghost = f"ghost.{uuid.uuid4().hex[:8]}@x.test"
    with desk.http() as c:
        c.post("/api/v1/auth/token", data={"username": ghost, "password": "guess"})
    with desk.db.read() as s:
        failed = AuditRepository(s).for_object("user", ghost)
    assert [a.action for a in failed] == ["login_failed"]
    assert "guess" not in str(failed[0].data)


def test_logout_revokes_the_token_at_once(desk: Desk) -> None:
    _, token = desk.customer("Leaving")
    with desk.http(token) as c:
        assert c.get("/api/v1/me").status_code == 200
        assert c.post("/api/v1/auth/logout").status_code == 204
        r = c.get("/api/v1/me")
    assert r.status_code == 401 and "log in again" in r.json()["message"]
