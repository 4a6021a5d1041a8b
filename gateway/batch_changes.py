"""The Python API for bulk changes: one change kind applied to many services, with a report.

    from gateway.batch import Sitedesk
    from gateway.batch_changes import apply_to_services
    desk = Sitedesk.connect(token)  # an API token with the batch scope
    report = apply_to_services(desk, "mailbox_quota", mailbox_ids, {"quota_mb": 4096},
                               job="quota-2025-06")
    print(report.summary())

Each item is requested like `POST /api/v1/changes` (same validation and access rules, acting
as the batch's staff user) with an idempotency key made of the job name and the service id, so
re-running a job after a crash requests nothing twice; the change ids go to the executors in one
call per shard, and the call waits until every change has settled on its host.
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
from actors.changes.executor import executor_name
from actors.changes.requests import ChangeService
from actors.config import ActorConfig
from actors.errors import DeskError, InvalidChange
from gateway.batch import Sitedesk
from store.models import Service
from store.repositories import AccountRepository

Params = dict[str, Any] | Callable[[Service], dict[str, Any]]
POLL_SECONDS = 0.25


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
    config = ActorConfig(database_url=desk.db.url, redis_url="-")
    service = ChangeService(desk.db, config)
    with desk.db.read() as s:
        accounts = AccountRepository(s)
        rows = {i: accounts.service(i) for i in service_ids}
    report = ChangeBatchReport(kind, job)
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TimeElapsedColumn())  # fmt: skip
    bar = Progress(*columns, console=console, transient=False, disable=not progress)
    with bar:
        asked = bar.add_task(f"{kind}: requesting", total=len(service_ids))
        by_host: dict[int, list[str]] = {}
        for sid in service_ids:
            row = rows[sid]
            item = ChangeItem(service_id=sid, service=row.name if row else "?")
            report.items.append(item)
            try:
                if row is None:
                    raise LookupError(f"service {sid} not found")
                p = params(row) if callable(params) else dict(params)
                digest = hashlib.sha256(
                    json.dumps([kind, sid, p, ticket], sort_keys=True, default=str).encode()
                ).hexdigest()
                detail = service.create(
                    desk.principal,
                    NewChange(service_id=sid, kind=kind, params=p, ticket=ticket),
                    key=f"batch:{job}:{kind}:{sid}",
                    request_hash=digest,
                )
                item.change_id, item.status, item.error = detail.id, detail.status, detail.error
                if detail.status in ("queued", "applying") and detail.host_id is not None:
                    by_host.setdefault(detail.host_id, []).append(detail.id)
            except InvalidChange as exc:
                item.status, item.error = "invalid", "; ".join(exc.errors)
            except (DeskError, LookupError) as exc:
                item.status, item.error = "refused", str(exc)
            bar.advance(asked)
        _hand_over(desk, by_host)
        applying = bar.add_task(f"{kind}: applying", total=len(service_ids))
        _wait(desk, service, report, bar, applying, started + timeout)
    report.seconds = time.monotonic() - started
    return report


def _hand_over(desk: Sitedesk, by_host: dict[int, list[str]]) -> None:
    """One submit per executor shard; a lost one is harmless (the executors sweep the SCDB)."""
    by_shard: dict[str, list[str]] = {}
    for host_id, ids in by_host.items():
        by_shard.setdefault(executor_name(host_id), []).extend(ids)
    refs = [desk.directory.get(name).submit.remote(ids) for name, ids in by_shard.items()]
    if refs:
        ray.get(refs)


def _wait(
    desk: Sitedesk,
    service: ChangeService,
    report: ChangeBatchReport,
    bar: Progress,
    task: Any,
    deadline: float,
) -> None:
    waiting = {i.change_id: i for i in report.items if i.change_id}
    bar.advance(task, len(report.items) - len(waiting))
    while True:
        for change_id, item in list(waiting.items()):
            if item.status not in ("queued", "applying"):
                waiting.pop(change_id)
                bar.advance(task)
                continue
            got = service.get(change_id, desk.principal)
            item.status, item.error = got.status, got.error
            if got.status not in ("queued", "applying"):
                waiting.pop(change_id)
                bar.advance(task)
        if not waiting:
            return
        if time.monotonic() > deadline:
            for item in waiting.values():
                item.error = "still pending when the batch stopped waiting"
            return
        time.sleep(POLL_SECONDS)
