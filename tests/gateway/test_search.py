"""GET /api/v1/search through the running desk: what the write paths (the actors) store is found
at once; customers find their own account's tickets only and never an internal note; staff
find every account's; bad input is a 4xx in the API's error shape, never a 500."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from gateway.settings import GatewaySettings
from store.repositories import AccountRepository
from tests.desk import Desk

pytestmark = pytest.mark.ray


def search(desk: Desk, token: str | None, **params: Any) -> tuple[int, dict[str, Any]]:
    with desk.http(token) as c:
        r = c.get("/api/v1/search", params=params)
    return r.status_code, r.json()


def found(desk: Desk, token: str, q: str) -> dict[str, Any]:
    status, body = search(desk, token, q=q)
    assert status == 200, body
    assert set(body) == {"tickets", "accounts", "next_cursor"}
    return body


def numbers(body: dict[str, Any]) -> list[str]:
    return [t["number"] for t in body["tickets"]]


def open_ticket(desk: Desk, token: str, subject: str, body: str) -> str:
    with desk.http(token) as c:
        r = c.post("/api/v1/tickets", json={"subject": subject, "body": body})
    assert r.status_code == 201, r.text
    return str(r.json()["number"])


def test_each_caller_finds_what_they_may_see_as_soon_as_it_is_written(desk: Desk) -> None:
    alpha, a = desk.customer("Alpha")
    beta, b = desk.customer("Beta")
    _, agent = desk.agent(1)
    word = f"kw{secrets.token_hex(4)}"  # in this test's tickets only
    a_number = open_ticket(desk, a, f"Printer {word}", "The toner is empty")
    b_number = open_ticket(desk, b, f"Backup {word}", "Last night's backup did not run")
    # Written by the actors and committed before the answer: found by the very next request.
    assert numbers(found(desk, a, word)) == [a_number]
    assert numbers(found(desk, b, word)) == [b_number]
    assert sorted(numbers(found(desk, agent, word))) == sorted([a_number, b_number])

    hit = found(desk, a, word)["tickets"][0]
    assert hit["matched"] == "subject" and hit["account_id"] == alpha.id
    assert (hit["account_code"], hit["account_name"]) == (alpha.code, alpha.name)
    assert [p["text"] for p in hit["snippet"] if p["hit"]] == [word]
    assert "".join(p["text"] for p in hit["snippet"]) == f"Printer {word}"

    # An internal note: staff find the ticket by its words, its customer does not.
    secret = f"sn{secrets.token_hex(4)}"
    with desk.http(agent) as c:
        r = c.post(
            f"/api/v1/tickets/{a_number}/messages",
            json={"body": f"Internal: {secret} toner supplier", "visibility": "internal"},
        )
    assert r.status_code == 201, r.text
    staff_hit = found(desk, agent, secret)["tickets"]
    assert [t["number"] for t in staff_hit] == [a_number]
    assert staff_hit[0]["matched"] == "message"
    assert secret in "".join(p["text"] for p in staff_hit[0]["snippet"])
    assert found(desk, a, secret)["tickets"] == []
    assert found(desk, a, "toner supplier")["tickets"] == []  # the note's words
    # A word the note shares with a public message finds the ticket by the public one only.
    public = found(desk, a, "toner")["tickets"]
    assert a_number in [t["number"] for t in public]
    mine = next(t for t in public if t["number"] == a_number)
    assert "Internal" not in "".join(p["text"] for p in mine["snippet"])

    # Another account's ticket: not by its number, its words, or its account.
    for q in (b_number, b_number.removeprefix("TT-").lstrip("0"), "Backup " + word, beta.code):
        body = found(desk, a, q)
        assert b_number not in numbers(body), q
        assert body["accounts"] == [], q
    assert numbers(found(desk, a, a_number))[:1] == [a_number]
    assert numbers(found(desk, agent, b_number))[:1] == [b_number]

    # Accounts are for staff: by code, by a contact's e-mail, by a domain.
    with desk.db.read() as s:
        contact = AccountRepository(s).contacts(alpha.id)[0]
        domain = AccountRepository(s).services(alpha.id)[0].name
    for q, field in ((alpha.code, "code"), (contact.email, "email"), (domain, "service")):
        accounts = found(desk, agent, q)["accounts"]
        assert [x["id"] for x in accounts] == [alpha.id], q
        assert accounts[0]["matched"] == field, q
    admin = desk.admin()
    assert [x["code"] for x in found(desk, admin, alpha.code)["accounts"]] == [alpha.code]
    assert found(desk, a, alpha.code)["accounts"] == []


def test_results_page_with_the_cursor(desk: Desk) -> None:
    _, a = desk.customer("Pager")
    word = f"pg{secrets.token_hex(4)}"
    made = {open_ticket(desk, a, f"{word} number {n}", "paging") for n in range(5)}
    seen: list[str] = []
    status, page = search(desk, a, q=word, limit=2)
    while True:
        assert status == 200, page
        assert len(page["tickets"]) <= 2
        seen += numbers(page)
        if page["next_cursor"] is None:
            break
        status, page = search(desk, a, q=word, limit=2, cursor=page["next_cursor"])
    assert sorted(seen) == sorted(made)


HOSTILE = [
    '"', "'", "AND OR NOT", "NOT", "*", "a*", '"unterminated', ":", "a:b", "-", "-x", "--",
    "' OR 1=1 --", "'; DROP TABLE tickets; --", "NEAR(a b)", "&|!<->", "\\", "%", "_", "%_",
    "()", "TT-", "TT-99999999999999999999", "日本語", "Grüße", "🎉", "\u200b", "!!!", "the",
    "x" * 200, "a\x00b", "\x00",
]  # fmt: skip


def test_hostile_queries_answer_200_and_bad_input_422(desk: Desk) -> None:
    _, customer = desk.customer("Hostile")
    _, agent = desk.agent(1)
    for token in (customer, agent):
        for q in HOSTILE:
            status, body = search(desk, token, q=q)
            assert status == 200, (q, body)
            assert set(body) == {"tickets", "accounts", "next_cursor"}, q
        for params in ({"q": "x" * 201}, {"q": "x" * 10_240}, {"q": ""}, {}):
            status, body = search(desk, token, **params)
            assert status == 422, (params, body)
            assert body["error"] == "invalid_request" and "q" in body["message"]
        for params in ({"limit": 0}, {"limit": 51}, {"limit": "many"}):
            status, body = search(desk, token, q="printer", **params)
            assert (status, body["error"]) == (422, "invalid_request"), params
        for cursor in ("abc", "-1", "99999", "1e3"):
            status, body = search(desk, token, q="printer", cursor=cursor)
            assert (status, body["error"]) == (422, "invalid_cursor"), cursor
    status, body = search(desk, None, q="printer")
    assert (status, body["error"]) == (401, "unauthorized")


def test_the_openapi_documents_the_route_and_its_errors(desk: Desk) -> None:
    with desk.http() as c:
        spec = c.get("/openapi.json").json()
    route = spec["paths"]["/api/v1/search"]["get"]
    assert {"200", "401", "403", "422", "429"} <= set(route["responses"])
    error = route["responses"]["422"]["content"]["application/json"]["schema"]
    assert error["$ref"].endswith("/ValidationErrorBody")  # ErrorBody, `detail` per field
    assert "invalid_cursor" in route["responses"]["422"]["description"]
    ok = route["responses"]["200"]["content"]["application/json"]["schema"]["$ref"]
    assert ok.endswith("/SearchResults")
    assert {p["name"] for p in route["parameters"]} == {"q", "limit", "cursor"}


def test_one_user_searching_without_pause_is_told_to_wait(desk: Desk) -> None:
    """Searches are counted per user a minute (`searches_per_minute`, 120), on every gateway
    alike (Redis): past it a 429 with Retry-After; someone else searches on."""
    limit = GatewaySettings().searches_per_minute  # the desk's gateway runs on the defaults
    _, token = desk.customer("Eager Searcher")
    answered, refusal = 0, None
    with desk.http(token) as c:
        for _ in range(2 * limit + 1):  # a minute may turn over once meanwhile, not twice
            r = c.get("/api/v1/search", params={"q": "invoice"})
            if r.status_code != 200:
                refusal = r
                break
            answered += 1
    assert refusal is not None and refusal.status_code == 429, answered
    assert refusal.json()["error"] == "rate_limited"
    assert 1 <= int(refusal.headers["Retry-After"]) <= 60
    assert limit <= answered <= 2 * limit
    _, other = desk.customer("Patient Searcher")
    assert search(desk, other, q="invoice")[0] == 200
