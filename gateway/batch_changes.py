"""The Python API for bulk changes: one change kind applied to many services, with a report.

    from gateway.batch import Sitedesk
    from gateway.batch_changes import apply_to_services
    desk = Sitedesk.connect(token)  # an API token with the batch scope
    report = apply_to_services(desk, "mailbox_quota", mailbox_ids, {"quota_mb": 4096},
                               job="quota-2025-06")
    print(report.summary())

Each item is requested like `POST /api/v1/changes`, through its account's lane actor (same
validation and access rules, acting as the batch's staff user), with an idempotency key made of
the job name and the service id, so re-running a job after a crash requests nothing twice; the
lanes hand the changes to the executors, and the call waits until every change has settled on
its host.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import ray
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from actors.changes.dto import NewChange
from actors.errors import DeskError, InvalidChange
from gateway.batch import Sitedesk
from store.models import Service
from store.read.changes import PENDING, ChangeDetail, ChangeReads
from store.repositories import AccountRepository

Params = dict[str, Any] | Callable[[Service], dict[str, Any]]
POLL_SECONDS = 0.25
IN_FLIGHT = 64  # requests waiting on the lanes at once


@dataclass
class ChangeItem:
    """What happened to one service of the batch."""

    service_id: int
    service: str
    change_id: str | None = None
    status: str = "not requested"
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "applied"


@dataclass
class ChangeBatchReport:
    kind: str
    job: str
    items: list[ChangeItem] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def applied(self) -> list[ChangeItem]:
        return [i for i in self.items if i.ok]

    @property
    def failed(self) -> list[ChangeItem]:
        return [i for i in self.items if not i.ok]

    def summary(self) -> str:
        lines = [
            f"{self.kind} ({self.job}): {len(self.applied)} applied, {len(self.failed)} not, "
            f"in {self.seconds:.1f}s"
        ]
        lines += [f"  {i.service} [{i.service_id}]: {i.status}: {i.error}" for i in self.failed]
        return "\n".join(lines)

    def table(self) -> Table:
        """The per-item report as a rich table."""
        t = Table(title=f"{self.kind} - {self.job}")
        for col in ("service", "id", "change", "status", "error"):
            t.add_column(col)
        for i in self.items:
            style = "green" if i.ok else "red"
            t.add_row(i.service, str(i.service_id), i.change_id or "-",
                      f"[{style}]{i.status}[/]", i.error or "")  # fmt: skip
        return t


def apply_to_services(
    desk: Sitedesk,
    kind: str,
    service_ids: Sequence[int],
    params: Params,
    *,
    job: str,
    ticket: str | None = None,
    timeout: float = 600.0,
    progress: bool = True,
    console: Console | None = None,
) -> ChangeBatchReport:
    """Apply a change of `kind` to each service and wait until every one has settled.

    `params` is the same for every service, or a function of the service (its fields such as
    the mailbox address or the zone may be left out: they are taken from the service). Agents
    name the ticket the job belongs to; administrators may leave it out.
    """
    started = time.monotonic()
    reads = ChangeReads(desk.db)
    with desk.db.read() as s:
        accounts = AccountRepository(s)
        rows = {i: accounts.service(i) for i in service_ids}
    report = ChangeBatchReport(kind, job)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())  # fmt: skip
    bar = Progress(*columns, console=console, transient=False, disable=not progress)
    with bar:
        asked = bar.add_task(f"{kind}: requesting", total=len(service_ids))
        waiting: list[tuple[ChangeItem, Any]] = []
        for sid in service_ids:
            row = rows[sid]
            item = ChangeItem(service_id=sid, service=row.name if row else "?")
            report.items.append(item)
            if row is None:
                item.status, item.error = "refused", f"service {sid} not found"
                bar.advance(asked)
                continue
            p = params(row) if callable(params) else dict(params)
            digest = hashlib.sha256(
                json.dumps([kind, sid, p, ticket], sort_keys=True, default=str).encode()
            ).hexdigest()
            lane = desk.directory.sessions_for(row.account_id)
            new = NewChange(service_id=sid, kind=kind, params=p, ticket=ticket)
            ref = lane.request_change.remote(
                row.account_id, desk.principal, new, f"batch:{job}:{kind}:{sid}", digest
            )
            waiting.append((item, ref))
            if len(waiting) >= IN_FLIGHT:
                _answered(waiting, bar, asked)
        _answered(waiting, bar, asked)
        applying = bar.add_task(f"{kind}: applying", total=len(service_ids))
        _wait(reads, report, bar, applying, started + timeout)
    report.seconds = time.monotonic() - started
    return report


def _answered(waiting: list[tuple[ChangeItem, Any]], bar: Progress, task: Any) -> None:
    """Fill in each item from its lane's answer, then empty `waiting`."""
    for item, ref in waiting:
        try:
            detail: ChangeDetail = ray.get(ref)
            item.change_id, item.status, item.error = detail.id, detail.status, detail.error
        except DeskError as exc:
            err = _raised(exc)
            if isinstance(err, InvalidChange):
                item.status, item.error = "invalid", "; ".join(err.errors)
            else:
                item.status, item.error = "refused", err.message
        bar.advance(task)
    waiting.clear()


def _raised(exc: DeskError) -> DeskError:
    """The error as the lane raised it (Ray hands back a wrapper; the original is `cause`)."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, DeskError) else exc


def _wait(
    reads: ChangeReads,
    report: ChangeBatchReport,
    bar: Progress,
    task: Any,
    deadline: float,
) -> None:
    waiting = {i.change_id: i for i in report.items if i.change_id}
    bar.advance(task, len(report.items) - len(waiting))
    while True:
        for change_id, item in list(waiting.items()):
            if item.status not in PENDING:
                waiting.pop(change_id)
                bar.advance(task)
                continue
            got = reads.get(change_id)
            if got is None:  # not possible for a change this job requested; never wait on it
                waiting.pop(change_id)
                continue
            item.status, item.error = got.status, got.error
            if got.status not in PENDING:
                waiting.pop(change_id)
                bar.advance(task)
        if not waiting:
            return
        if time.monotonic() > deadline:
            for item in waiting.values():
                item.error = "still pending when the batch stopped waiting"
            return
        time.sleep(POLL_SECONDS)
