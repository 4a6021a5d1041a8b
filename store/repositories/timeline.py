"""The account timeline and the outbox row that goes with each entry, with its audience."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, cast

from sqlalchemy import JSON, Table, func, insert, select
from sqlalchemy.orm import Session

from store.models import OutboxEvent, TimelineEntry
from store.models.outbox import Audience
from store.repositories.base import Repository

TIMELINE = cast(Table, TimelineEntry.__table__)
OUTBOX = cast(Table, OutboxEvent.__table__)


Rows = list[dict[str, Any]]


def allocate_ids(session: Session, tables: list[Table], n: int) -> list[list[int]]:
    """`n` new ids for each table, in one query, so that rows can be inserted with their ids
    and rows that refer to them sent along in the same round trip.

    PostgreSQL: drawn from the tables' sequences (ids of a rolled-back unit of work are
    skipped, as with any sequence). SQLite: the next free rowids, which no one else can take
    meanwhile, because a write transaction there holds the database's write lock from its
    start (BEGIN IMMEDIATE, see store.db)."""
    if n <= 0:
        return [[] for _ in tables]
    if session.get_bind().dialect.name == "postgresql":
        seqs = [func.nextval(func.pg_get_serial_sequence(t.name, "id")) for t in tables]
        rows = session.execute(select(*seqs).select_from(func.generate_series(1, n))).all()
        return [[int(r[k]) for r in rows] for k in range(len(tables))]
    out = []
    for t in tables:
        top = int(session.scalar(select(func.coalesce(func.max(t.c.id), 0))) or 0)
        out.append(list(range(top + 1, top + 1 + n)))
    return out


def insert_all(session: Session, batches: list[tuple[Table, Rows]]) -> None:
    """Insert many rows into several tables, in order; every row of a table has the same keys.

    PostgreSQL: every statement goes out in one pipeline, so the whole lot costs one round
    trip and none of the per-row parameter processing of the ORM. SQLite: one executemany
    per table (in process: nothing to save)."""
    batches = [(t, rows) for t, rows in batches if rows]
    if not batches:
        return
    if session.get_bind().dialect.name != "postgresql":
        for table, rows in batches:
            session.execute(insert(table), rows)
        return
    import psycopg
    from psycopg import sql
    from psycopg.types.json import Jsonb

    from store.errors import IntegrityViolation

    raw = session.connection().connection.driver_connection
    assert raw is not None
    try:
        with raw.pipeline(), raw.cursor() as cur:
            for table, rows in batches:
                cols = list(rows[0])
                as_json = [isinstance(table.c[c].type, JSON) for c in cols]
                stmt = sql.SQL("INSERT INTO {} ({}) VALUES ({})").format(
                    sql.Identifier(table.name),
                    sql.SQL(", ").join(map(sql.Identifier, cols)),
                    sql.SQL(", ").join([sql.Placeholder()] * len(cols)),
                )
                cur.executemany(
                    stmt,
                    [
                        tuple(
                            Jsonb(row[c]) if j and row[c] is not None else row[c]
                            for c, j in zip(cols, as_json, strict=True)
                        )
                        for row in rows
                    ],
                )
    except (psycopg.IntegrityError, psycopg.DataError) as exc:  # as `Database.write` does
        raise IntegrityViolation(str(exc).strip().splitlines()[0]) from exc


def entry_audience(
    account_id: int,
    visibility: str,
    *,
    tiers: Sequence[int | None] = (),
    agents: Sequence[int | None] = (),
) -> Audience:
    """Who hears an entry: admins; the account's customers when it is public; the agents
    watching these tiers' queues and these agents, as the writer names them."""
    return Audience.of(account_id, public=visibility == "public", tiers=tiers, agents=agents)


@dataclass(frozen=True)
class NewEntry:
    """One timeline entry for `append_many`; `tiers` and `agents`: the staff who hear it
    besides admins (see `entry_audience`)."""

    account_id: int
    kind: str
    summary: str
    ticket_id: int | None = None
    change_id: str | None = None
    actor: str | None = None
    visibility: str = "public"
    data: dict[str, Any] = field(default_factory=dict)
    publish: bool = True
    tiers: tuple[int | None, ...] = ()
    agents: tuple[int | None, ...] = ()

    @property
    def audience(self) -> Audience:
        return entry_audience(
            self.account_id, self.visibility, tiers=self.tiers, agents=self.agents
        )


class TimelineRepository(Repository):
    def append(
        self,
        account_id: int,
        *,
        kind: str,
        summary: str,
        ticket_id: int | None = None,
        change_id: str | None = None,
        actor: str | None = None,
        visibility: str = "public",
        data: dict[str, Any] | None = None,
        publish: bool = True,
        tiers: Sequence[int | None] = (),
        agents: Sequence[int | None] = (),
    ) -> TimelineEntry:
        """Add an entry and, unless told otherwise, announce it through the outbox to the
        audience `entry_audience` makes of its account, visibility, `tiers` and `agents`."""
        entry = TimelineEntry(
            account_id=account_id,
            kind=kind,
            summary=summary,
            ticket_id=ticket_id,
            change_id=change_id,
            actor=actor,
            visibility=visibility,
            data=data or {},
        )
        self.session.add(entry)
        self.session.flush()
        if publish:
            self.session.add(
                OutboxEvent(
                    topic=kind,
                    **OutboxEvent.audience_columns(
                        entry_audience(account_id, visibility, tiers=tiers, agents=agents)
                    ),
                    payload={
                        "timeline_id": entry.id,
                        "kind": kind,
                        "summary": summary,
                        "ticket_id": ticket_id,
                        "change_id": change_id,
                        "actor": actor,
                        "visibility": visibility,
                        "data": data or {},
                        "at": entry.created_at.isoformat(),
                    },
                )
            )
        return entry

    @staticmethod
    def rows_for(
        entries: list[NewEntry], ids: list[int], *, at: datetime
    ) -> list[tuple[Table, Rows]]:
        """The timeline rows (with the given ids) and outbox rows of `entries`, for
        `insert_all`."""
        stamp = at.isoformat()
        rows = [
            {
                "id": entry_id,
                "account_id": e.account_id,
                "kind": e.kind,
                "summary": e.summary,
                "ticket_id": e.ticket_id,
                "change_id": e.change_id,
                "actor": e.actor,
                "visibility": e.visibility,
                "data": e.data,
                "created_at": at,
            }
            for e, entry_id in zip(entries, ids, strict=True)
        ]
        outbox = [
            {
                "topic": e.kind,
                **OutboxEvent.audience_columns(e.audience),
                "payload": {
                    "timeline_id": entry_id,
                    "kind": e.kind,
                    "summary": e.summary,
                    "ticket_id": e.ticket_id,
                    "change_id": e.change_id,
                    "actor": e.actor,
                    "visibility": e.visibility,
                    "data": e.data,
                    "at": stamp,
                },
                "published_at": None,
                "created_at": at,
            }
            for e, entry_id in zip(entries, ids, strict=True)
            if e.publish
        ]
        return [(TIMELINE, rows), (OUTBOX, outbox)]

    def append_many(self, entries: list[NewEntry], *, at: datetime) -> list[int]:
        """`append` for many entries at once, in two round trips (ids, then the rows)."""
        [ids] = allocate_ids(self.session, [TIMELINE], len(entries))
        insert_all(self.session, self.rows_for(entries, ids, at=at))
        return ids

    def latest_id(self, account_id: int) -> int:
        """The id of the account's newest timeline entry (0 when none): moves on every change."""
        q = select(func.max(TimelineEntry.id)).where(TimelineEntry.account_id == account_id)
        return int(self.session.scalar(q) or 0)

    def page(
        self,
        account_id: int,
        *,
        before_id: int | None = None,
        limit: int = 50,
        include_internal: bool = False,
    ) -> list[TimelineEntry]:
        """Newest first; pass the last id seen as `before_id` to get the next page."""
        q = select(TimelineEntry).where(TimelineEntry.account_id == account_id)
        if before_id is not None:
            q = q.where(TimelineEntry.id < before_id)
        if not include_internal:
            q = q.where(TimelineEntry.visibility == "public")
        q = q.order_by(TimelineEntry.id.desc()).limit(limit)
        return list(self.session.scalars(q))
