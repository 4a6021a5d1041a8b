"""The Python API for batch jobs, on the running desk."""

from __future__ import annotations

import pytest

from gateway.batch import Sitedesk, TicketRequest, staff_principal
from store.repositories import UserRepository
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
