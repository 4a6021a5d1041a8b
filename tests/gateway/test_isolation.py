"""Customer A walks every endpoint with customer B's ids: nothing of B's leaks."""

from __future__ import annotations

import uuid
from typing import Any

import pytest

from tests.desk import Desk
from tests.sse import SseRecorder

pytestmark = pytest.mark.ray

MISSING = "TT-999999"


def answer(desk: Desk, token: str, method: str, path: str, **kw: Any) -> tuple[int, str]:
    with desk.http(token) as c:
        r = c.request(method, path, **kw)
    return r.status_code, r.json().get("error", "") if r.content else ""


def test_customer_a_can_not_see_or_touch_customer_b(desk: Desk) -> None:
    a_account, a = desk.customer("Alpha")
    b_account, b = desk.customer("Beta")
    with desk.http(b) as c:
        b_number = c.post("/api/v1/tickets", json={"subject": "B secret", "body": "b"}).json()[
            "number"
        ]
    with desk.http(a) as c:
        a_number = c.post("/api/v1/tickets", json={"subject": "A own", "body": "a"}).json()[
            "number"
        ]
    a_stream = SseRecorder(f"{desk.base_url}/api/v1/events", a).start()

    ticket_calls: list[tuple[str, str, dict[str, Any]]] = [
        ("GET", "/api/v1/tickets/{n}", {}),
        ("POST", "/api/v1/tickets/{n}/messages", {"json": {"body": "hi"}}),
        ("POST", "/api/v1/tickets/{n}/take", {}),
        ("POST", "/api/v1/tickets/{n}/handover", {"json": {"agent_id": 1}}),
        ("POST", "/api/v1/tickets/{n}/escalate", {"json": {"reason": "please"}}),
        ("POST", "/api/v1/tickets/{n}/resolve", {}),
        ("POST", "/api/v1/tickets/{n}/reopen", {}),
        ("POST", "/api/v1/tickets/{n}/close", {}),
    ]
    for method, path, kw in ticket_calls:
        # B's ticket answers exactly like one that does not exist: no oracle.
        got = answer(desk, a, method, path.format(n=b_number), **kw)
        missing = answer(desk, a, method, path.format(n=MISSING), **kw)
        assert got == missing, (path, got, missing)
        assert got[0] in (403, 404)

    for path in (f"/api/v1/accounts/{b_account.id}", f"/api/v1/accounts/{b_account.id}/timeline"):
        assert answer(desk, a, "GET", path) == answer(desk, a, "GET", "/api/v1/accounts/999999")
        assert answer(desk, a, "GET", path)[0] == 404
    r = answer(desk, a, "POST", "/api/v1/tickets",
               json={"subject": "x", "body": "y", "account_id": b_account.id})  # fmt: skip
    assert r == (404, "not_found")
    assert answer(desk, a, "GET", "/api/v1/queues/1") == (403, "forbidden")
    assert (
        answer(desk, a, "PUT", "/api/v1/agents/me/presence", json={"presence": "online"})[0] == 403
    )

    # Lists are scoped to the caller's account whatever the filters say.
    with desk.http(a) as c:
        listed = c.get("/api/v1/tickets", params={"account": b_account.id}).json()
        view = c.get(f"/api/v1/accounts/{a_account.id}").json()
        timeline = c.get(f"/api/v1/accounts/{a_account.id}/timeline").json()
    assert [t["number"] for t in listed["items"]] == [a_number]
    assert "B secret" not in str(view) and "B secret" not in str(timeline)
    assert [t["number"] for t in view["open_tickets"]] == [a_number]

    # B's activity never reaches A's live stream.
    with desk.http(b) as c:
        c.post(f"/api/v1/tickets/{b_number}/messages", json={"body": "more B"})
    with desk.http(a) as c:
        c.post(f"/api/v1/tickets/{a_number}/messages", json={"body": "more A"})
    a_stream.wait_for(lambda e: e["topic"] == "ticket.message" and e["data"]["number"] == a_number)
    assert all(e.get("account_id") == a_account.id for e in a_stream.events)
    assert "B secret" not in str(a_stream.events)
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
        assert r.status_code == 404 and r.json()["error"] == "not_found"
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
