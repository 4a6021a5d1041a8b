"""The Python API for batch jobs: what the HTTP API does one at a time, in bulk.

    from gateway.batch import Sitedesk
    desk = Sitedesk.connect(token)   # an API token with the batch scope; joins the cluster
    report = desk.open_tickets([TicketRequest(account_id=1, subject=..., body=...)], job="jan")
    desk.escalate(["TT-000042"], reason="...", job="jan-esc")
    print(report.summary())

Every item carries an idempotency key made of the job name and the item's position, so running
the same job again after a crash applies nothing twice: finished items answer as before.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, Field
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from actors.config import ActorConfig
from actors.directory import Directory
from actors.errors import DeskError, as_raised
from actors.principal import Principal
from actors.tickets.commands import Close, Escalate, Handover, Resolve, TicketCommand
from actors.tickets.dto import NewTicket
from cluster.calls import call
from cluster.settings import ClusterSettings
from gateway.auth import principal_of
from store.db import Database
from store.models.base import utcnow
from store.models.enums import Channel, Priority, TokenScope, UserRole
from store.models.ticket import ticket_id_from_number
from store.read.tickets import TicketRead
from store.repositories import (
    AuditRepository,
    TicketRepository,
    TimelineRepository,
    TokenRepository,
    UserRepository,
)
from store.settings import StoreSettings

IN_FLIGHT = 64


class TicketRequest(BaseModel):
    account_id: int
    subject: str = Field(min_length=1, max_length=300)
    body: str = Field(min_length=1)
    channel: Channel = Channel.api
    priority: Priority | None = None
    category: str | None = None


@dataclass
class ItemResult:
    item: Any
    ok: bool
    result: Any = None
    error: str | None = None


@dataclass
class BatchReport:
    action: str
    items: list[ItemResult] = field(default_factory=list)

    @property
    def succeeded(self) -> list[ItemResult]:
        return [i for i in self.items if i.ok]

    @property
    def failed(self) -> list[ItemResult]:
        return [i for i in self.items if not i.ok]

    def summary(self) -> str:
        lines = [f"{self.action}: {len(self.succeeded)} done, {len(self.failed)} failed"]
        lines += [f"  {i.item}: {i.error}" for i in self.failed]
        return "\n".join(lines)


class Sitedesk:
    """A batch session acting as one staff user (recorded as the author of every step)."""

    def __init__(self, db: Database, directory: Directory, principal: Principal) -> None:
        self.db = db
        self.directory = directory
        self.principal = principal
        self.progress = True

    @classmethod
    def connect(
        cls,
        token: str | None = None,
        *,
        ray_address: str | None = None,
        database_url: str | None = None,
    ) -> Sitedesk:
        """Join the running cluster (SITEDESK_RAY_ADDRESS, or the local one `sitedesk up`
        started) and the SCDB (SITEDESK_DATABASE_URL or the embedded default), acting as the
        staff user whose API token with the `batch` scope this is (`token`, else
        SITEDESK_API_TOKEN; `sitedesk token create --scope batch` issues one)."""
        from cluster.ray_runtime import join_ray

        token = token or os.environ.get("SITEDESK_API_TOKEN")
        if not token:
            raise PermissionError(
                "a batch job needs an API token with the batch scope: pass token= or set "
                "SITEDESK_API_TOKEN (issue one with `sitedesk token create --scope batch`)"
            )
        store, cluster = StoreSettings(), ClusterSettings()
        db = Database(database_url or store.resolved_database_url())
        principal = batch_principal(db, token)  # before joining Ray: a bad token gets nowhere
        join_ray(cluster, ray_address)
        shards = ActorConfig(database_url="-", redis_url="-").session_shards
        return cls(db, Directory(cluster.ray_namespace, shards), principal)

    # -- the bulk operations --------------------------------------------------------------
    def open_tickets(self, requests: Sequence[TicketRequest], *, job: str) -> BatchReport:
        """Open many tickets (e.g. to notify every account of a maintenance window)."""

        async def one(i: int, req: TicketRequest) -> TicketRead:
            item = NewTicket(
                **req.model_dump(),
                requester=self.principal,
                idempotency_key=f"batch:{job}:open:{i}",
                request_hash=hashlib.sha256(req.model_dump_json().encode()).hexdigest(),
            )
            result: TicketRead = await call(self.directory.intake().create, item)
            return result

        return self._run("open tickets", list(enumerate(requests)), one)

    def escalate(self, numbers: Sequence[str], *, reason: str, job: str) -> BatchReport:
        return self._operate("escalate", numbers, job, Escalate(reason=reason))

    def reassign(self, numbers: Sequence[str], *, agent_id: int, job: str) -> BatchReport:
        return self._operate("handover", numbers, job, Handover(agent_id=agent_id))

    def resolve(self, numbers: Sequence[str], *, job: str, note: str | None = None) -> BatchReport:
        return self._operate("resolve", numbers, job, Resolve(note=note))

    def close(self, numbers: Sequence[str], *, job: str) -> BatchReport:
        return self._operate("close", numbers, job, Close())

    def timelines(self, account_ids: Iterable[int], *, limit: int = 100) -> dict[int, list[Any]]:
        """The newest `limit` timeline entries of each account, internal ones included."""
        with self.db.read() as s:
            repo = TimelineRepository(s)
            return {
                a: [(e.id, e.kind, e.summary, e.created_at) for e in repo.page(
                    a, limit=limit, include_internal=True)]
                for a in account_ids
            }  # fmt: skip

    # -- machinery ------------------------------------------------------------------------
    def _operate(
        self, op: str, numbers: Sequence[str], job: str, command: TicketCommand
    ) -> BatchReport:
        with self.db.read() as s:
            repo = TicketRepository(s)
            where: dict[str, tuple[int, int] | None] = {}
            for n in numbers:
                tid = ticket_id_from_number(n)
                t = repo.find(tid) if tid is not None else None
                where[n] = (t.id, t.account_id) if t is not None else None

        digest = hashlib.sha256(command.model_dump_json().encode()).hexdigest()

        async def one(i: int, number: str) -> TicketRead:
            found = where[number]
            if found is None:
                raise LookupError(f"ticket {number} not found")
            ticket_id, account_id = found
            sessions = self.directory.sessions_for(account_id)
            key = f"batch:{job}:{op}:{number}"
            outcome = await call(
                sessions.operate, account_id, ticket_id, command, self.principal, key, digest
            )
            result: TicketRead = outcome.ticket
            return result

        return self._run(op, list(enumerate(numbers)), one)

    def _run(
        self, action: str, items: list[tuple[int, Any]], one: Callable[[int, Any], Awaitable[Any]]
    ) -> BatchReport:
        report = BatchReport(action, [ItemResult(item, False) for _, item in items])

        async def main(progress: Progress | None, task: Any) -> None:
            gate = asyncio.Semaphore(IN_FLIGHT)

            async def run(pos: int, i: int, item: Any) -> None:
                async with gate:
                    try:
                        report.items[pos] = ItemResult(item, True, await one(i, item))
                    except DeskError as exc:
                        report.items[pos] = ItemResult(item, False, error=as_raised(exc).message)
                    except LookupError as exc:
                        report.items[pos] = ItemResult(item, False, error=str(exc))
                    except Exception as exc:  # keep going: the report names what failed
                        report.items[pos] = ItemResult(item, False, error=repr(exc))
                if progress is not None:
                    progress.advance(task)

            await asyncio.gather(*(run(p, i, item) for p, (i, item) in enumerate(items)))

        if not self.progress:
            asyncio.run(main(None, None))
            return report
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                   TimeRemainingColumn())  # fmt: skip
        with Progress(*columns, transient=False) as progress:
            task = progress.add_task(action, total=len(items))
            asyncio.run(main(progress, task))
        return report


def batch_principal(db: Database, token: str) -> Principal:
    """The staff user an API token with the `batch` scope belongs to; PermissionError for a
    token that is unknown, expired, revoked, without that scope, or a customer's."""
    with db.write() as s:
        found = TokenRepository(s).resolve(token, scope=TokenScope.batch)
        if found is None:
            raise PermissionError("the API token is not valid for batch jobs (unknown, "
                                  "expired, revoked or without the batch scope)")  # fmt: skip
        row, user = found
        if user.role not in (UserRole.agent, UserRole.admin):
            raise PermissionError("batch jobs run as an agent or an admin, not a customer")
        row.last_used_at = utcnow()
        AuditRepository(s).record(
            actor_label=user.email, actor_user_id=user.id, action="batch.connect",
            object_type="api_token", object_id=row.id, data={"token_prefix": row.prefix},
        )  # fmt: skip
        email = user.email
    return staff_principal(db, email)


def staff_principal(db: Database, email: str) -> Principal:
    """The Principal of an active agent or admin, looked up by e-mail (the platform's own
    jobs; callers from outside prove who they are with a token: `batch_principal`)."""
    with db.read() as s:
        user = UserRepository(s).by_email(email)
        if user is None or not user.is_active or user.role not in ("agent", "admin"):
            raise LookupError(f"{email} is not an active agent or admin")
        return principal_of(s, user)
