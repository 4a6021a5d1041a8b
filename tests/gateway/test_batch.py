"""The Python API for batch jobs, on the running desk."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from gateway.batch import Sitedesk, TicketRequest, staff_principal
from store.models import AuditLog
from store.models.enums import TokenScope
from store.repositories import TokenRepository, UserRepository
from tests.desk import PASSWORD, Desk

pytestmark = pytest.mark.ray


def batch_desk(desk: Desk) -> Sitedesk:
    email = f"batch.{id(desk)}.{len(desk.agents_made)}@sitedesk.test"
    with desk.db.write() as s:
        if UserRepository(s).by_email(email) is None:
            UserRepository(s).create(email=email, display_name="Batch Admin", role="admin",
                                     password=PASSWORD)  # fmt: skip
    sd = Sitedesk(desk.db, desk.deployment.directory, staff_principal(desk.db, email))
    sd.progress = False
    return sd


def test_bulk_open_escalate_close_and_rerun_applies_nothing_twice(desk: Desk) -> None:
    accounts = [desk.customer(f"Bulk {i}")[0] for i in range(3)]
    sd = batch_desk(desk)
    requests = [
        TicketRequest(account_id=a.id, subject=f"Notice {n}", body="maintenance")
        for a in accounts
        for n in range(10)
    ]
    opened = sd.open_tickets(requests, job="t-open")
    assert len(opened.succeeded) == 30 and opened.failed == []
    again = sd.open_tickets(requests, job="t-open")
    assert [i.result.number for i in again.items] == [i.result.number for i in opened.items]
    numbers = [i.result.number for i in opened.items]

    esc = sd.escalate([*numbers[:5], "TT-999999"], reason="bulk review", job="t-esc")
    assert len(esc.succeeded) == 5 and [i.item for i in esc.failed] == ["TT-999999"]
    assert all(i.result.tier == 2 for i in esc.succeeded)
    closed = sd.close(numbers, job="t-close")
    assert len(closed.succeeded) == 30
    rerun = sd.close(numbers, job="t-close")  # same job: answered from the records, no 409
    assert len(rerun.succeeded) == 30

    with desk.http(desk.customer()[1]) as c:
        assert c.get("/api/v1/tickets").json()["total"] == 0
    feeds = sd.timelines([accounts[0].id])
    kinds = [k for _, k, _, _ in feeds[accounts[0].id]]
    assert kinds.count("ticket.created") == 10 and kinds.count("ticket.closed") == 10


def test_batch_runs_as_staff_only(desk: Desk) -> None:
    account, _ = desk.customer()
    with desk.db.write() as s:
        email = f"cust.{account.code.lower()}@example.test"
        UserRepository(s).create(email=email, display_name="C", role="customer",
                                 password=PASSWORD, account_id=account.id)  # fmt: skip
    with pytest.raises(LookupError, match="not an active agent or admin"):
        staff_principal(desk.db, email)
    with pytest.raises(LookupError):
        staff_principal(desk.db, "nobody@nowhere.test")
    assert batch_desk(desk).principal.role == "admin"


def issue_token(desk: Desk, email: str, role: str, scopes: tuple[TokenScope, ...]) -> str:
    with desk.db.write() as s:
        users = UserRepository(s)
        user = users.by_email(email)
        if user is None:
            account_id = desk.customer()[0].id if role == "customer" else None
            user = users.create(email=email, display_name=email, role=role,
                                password=PASSWORD, account_id=account_id)  # fmt: skip
        token, _ = TokenRepository(s).issue(user.id, name="job", scopes=scopes)
    return token


def test_connect_acts_only_on_a_batch_token_of_staff(desk: Desk) -> None:
    """The batch API proves who it acts as with an API token, never by naming an e-mail."""
    n = len(desk.agents_made)
    good = issue_token(desk, f"ops.{n}@sitedesk.test", "admin", (TokenScope.batch,))
    sd = Sitedesk.connect(good, database_url=desk.db.url)
    assert sd.principal.role == "admin" and sd.principal.name == f"ops.{n}@sitedesk.test"
    with desk.db.read() as s:
        actions = [a.action for a in s.scalars(select(AuditLog))]
    assert "batch.connect" in actions

    http_only = issue_token(desk, f"ops.{n}@sitedesk.test", "admin", (TokenScope.api,))
    customer = issue_token(desk, f"cust.{n}@example.test", "customer", (TokenScope.batch,))
    for bad in (http_only, customer, "sdt_" + "x" * 43, ""):
        with pytest.raises(PermissionError):
            Sitedesk.connect(bad, database_url=desk.db.url)

    with desk.db.write() as s:
        TokenRepository(s).revoke_token(good)
    with pytest.raises(PermissionError, match="not valid for batch jobs"):
        Sitedesk.connect(good, database_url=desk.db.url)


def test_a_batch_token_does_not_open_the_http_api(desk: Desk) -> None:
    token = issue_token(desk, f"ops.http.{len(desk.agents_made)}@sitedesk.test", "admin",
                        (TokenScope.batch,))  # fmt: skip
    with desk.http(token) as c:
        assert c.get("/api/v1/me").status_code == 401
