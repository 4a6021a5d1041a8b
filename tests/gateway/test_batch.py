"""The Python API for batch jobs, on the running desk."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sqlalchemy import select

from gateway.batch import Sitedesk, TicketRequest, staff_principal
from store.models import AuditLog
from store.models.enums import TokenScope
from store.models.ticket import ticket_id_from_number
from store.repositories import TicketRepository, TokenRepository, UserRepository
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
    # A step the lane refuses is reported with the refusal's own words, not Ray's traceback.
    refused = sd.close(numbers[:1], job="t-close-again")
    assert [i.error for i in refused.failed] == [f"{numbers[0]} is already closed"]

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
    # The customer's account first, in its own unit of work: SQLite has one writer at a time,
    # and this thread's open one would wait for itself.
    account_id = desk.customer()[0].id if role == "customer" else None
    with desk.db.write() as s:
        users = UserRepository(s)
        user = users.by_email(email)
        if user is None:
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


def test_a_batch_job_in_its_own_process_joins_with_its_token(desk: Desk) -> None:
    """As the README runs one: a separate process with SITEDESK_API_TOKEN and nothing of
    Ray's in its environment finds the running desk through the data dir and opens tickets."""
    account, _ = desk.customer("Batch proc")
    token = issue_token(desk, f"ops.proc.{len(desk.agents_made)}@sitedesk.test", "admin",
                        (TokenScope.batch,))  # fmt: skip
    data_dir = Path(os.environ["RAY_AUTH_TOKEN_PATH"]).parent  # the session Ray's data dir
    code = textwrap.dedent(f"""
        from gateway.batch import Sitedesk, TicketRequest
        desk = Sitedesk.connect()
        desk.progress = False
        req = TicketRequest(account_id={account.id}, subject="Planned maintenance", body="x")
        report = desk.open_tickets([req], job="proc-job")
        print("NUMBER", report.items[0].result.number if report.items[0].ok else report.summary())
    """)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "SITEDESK_"))}
    env.update(SITEDESK_DATA_DIR=str(data_dir), SITEDESK_DATABASE_URL=desk.db.url,
               SITEDESK_RAY_NAMESPACE=desk.deployment.config.namespace,
               SITEDESK_API_TOKEN=token)  # fmt: skip
    runs = [
        subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
        )
        for _ in range(2)
    ]
    numbers = [r.stdout.split("NUMBER ", 1)[-1].strip() for r in runs]
    assert all(n.startswith("TT-") for n in numbers), [(r.stdout, r.stderr[-1500:]) for r in runs]
    assert numbers[0] == numbers[1]  # the same job again opens nothing new
    with desk.db.read() as s:
        assert TicketRepository(s).find(ticket_id_from_number(numbers[0]) or 0) is not None
