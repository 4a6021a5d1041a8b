"""An upgrade keeps every row: data written at each older schema revision (the previous
release's among them) is still there at head with every value, and the columns a migration
added hold their defaults (or what the migration documents it fills in).

The rows are made at each revision for real: the schema of that revision is reflected from the
database (MetaData.reflect) and every table gets rows, in foreign-key order, with a value of
each column's type (the allowed values of CHECK ... IN lists, small numbers for the range
checks). So the test needs no old code and follows new migrations by itself; a migration that
fills a new column from old data is listed in BACKFILLS."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    Column,
    Connection,
    Date,
    DateTime,
    Float,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Table,
    UniqueConstraint,
    literal_column,
    select,
)

from store.db import Database
from store.models import Base, Ticket
from store.repositories import SearchRepository
from store.search import parse_query
from tests.conftest import PostgresServer, new_database_url

ROWS = 2  # per table and revision
Row = dict[str, Any]
Expected = dict[str, dict[tuple[Any, ...], Row]]  # table: primary key: the row as stored
# New columns a migration fills from the rows already there (the others get their default).
BACKFILLS: dict[tuple[str, str], Callable[[Row], Any]] = {
    # 0003: the audience rows had before, from the payload's keys (these payloads name no
    # tier, agent or visibility: public when on an account)
    ("outbox_events", "public"): lambda row: row["account_id"] is not None,
    ("outbox_events", "tiers"): lambda row: [],
    ("outbox_events", "agents"): lambda row: [],
    # 0007: the rows already there count as looked at by the mail planner
    ("outbox_events", "mailed_at"): lambda row: row["created_at"],
}
_SQLITE_IN = re.compile(r"^\(?(\w+) IN \((.*)\)\)?$")
_PG_IN = re.compile(r"^\(?\(?(\w+)\)?::text = ANY \(\(?ARRAY\[(.*)\]\)?::text\[\]\)\)?$")


def chain(db: Database) -> list[str]:
    """Every revision from the first to head, in order."""
    script = ScriptDirectory.from_config(db.alembic_config())
    return [r.revision for r in reversed(list(script.walk_revisions()))]


def reflect(db: Database, conn: Connection) -> MetaData:
    def ours(name: str, _md: MetaData) -> bool:  # not the migrations' bookkeeping, nor
        # SQLite's full-text index (its own virtual and shadow tables)
        return name != "alembic_version" and not (db.is_sqlite and name.startswith("search_"))

    md = MetaData()
    md.reflect(conn, only=ours)
    return md


def allowed_values(table: Table) -> dict[str, list[str]]:
    """The values CHECK (column IN (...)) allows, by column."""
    out: dict[str, list[str]] = {}
    for con in table.constraints:
        if isinstance(con, CheckConstraint):
            sql = " ".join(str(con.sqltext).split())
            found = _SQLITE_IN.match(sql) or _PG_IN.match(sql)
            if found:
                out[found.group(1)] = re.findall(r"'([^']*)'", found.group(2))
    return out


def unique_columns(table: Table) -> set[str]:
    out = {c.name for c in table.columns if c.unique}
    for con in table.constraints:
        if isinstance(con, UniqueConstraint) and len(con.columns) == 1:
            out |= {c.name for c in con.columns}
    for index in table.indexes:
        if index.unique and len(index.columns) == 1:
            out |= {c.name for c in index.columns}
    return out


def generated(table: Table, col: Column[Any]) -> bool:
    """Filled by the database: a computed column or a single integer primary key."""
    pk = list(table.primary_key.columns)
    auto = len(pk) == 1 and pk[0] is col and isinstance(col.type, Integer)
    return auto or col.computed is not None


def value_of(col: Column[Any], n: int, aware: bool) -> Any:
    t = col.type
    if isinstance(t, Boolean):
        return n % 2 == 0
    if isinstance(t, Integer):
        return 1 + n % 3  # inside every range check (tiers 1-3, ports, percentages)
    if isinstance(t, DateTime):
        at = datetime(2026, 1, 2, 3, 4, 5, 123456) + timedelta(minutes=n, microseconds=n)
        return at.replace(tzinfo=UTC) if aware and t.timezone else at
    if isinstance(t, Date):
        return date(2030, 1, 1) + timedelta(days=n)
    if isinstance(t, JSON):
        return {"row": n, "text": "ünïcödé ✓", "list": [1, "two", None]}
    if isinstance(t, LargeBinary):
        return bytes(range(256)) + n.to_bytes(4, "big")
    if isinstance(t, Float | Numeric):
        return n + 0.5
    if isinstance(t, String):  # String, Text, VARCHAR: the row's number first stays unique
        text = f"r{n} {col.name} of {col.table.name} ünïcödé ✓"
        return text[: t.length] if t.length else text
    raise AssertionError(f"no test value for {col.table.name}.{col.name} ({t!r}): add one")


def fill(conn: Connection, md: MetaData, batch: int, expected: Expected) -> None:
    """ROWS new rows in every table of the schema the database is at now; each row as it
    was stored is added to `expected`."""
    made: dict[str, list[Row]] = {}
    for table in md.sorted_tables:
        allowed, unique = allowed_values(table), unique_columns(table)
        made[table.name] = []
        for i in range(ROWS):
            n = batch * ROWS + i
            row: Row = {}
            for col in table.columns:
                if generated(table, col):
                    continue
                if col.foreign_keys:
                    parent = next(iter(col.foreign_keys)).column
                    rows = made.get(parent.table.name)
                    row[col.name] = rows[i % len(rows)][parent.name] if rows else None
                elif col.name in allowed and col.name in unique:
                    taken = set(conn.scalars(select(col)))
                    free = [v for v in allowed[col.name] if v not in taken]
                    row[col.name] = free[0] if free else None
                elif col.name in allowed:
                    row[col.name] = allowed[col.name][0]  # the first: coupled checks hold
                else:
                    row[col.name] = value_of(col, n, aware=conn.dialect.name != "sqlite")
            if any(row[c] is None for c in row if not table.c[c].nullable):
                continue  # no parent row, or every allowed value of a unique column used
            stored = dict(conn.execute(table.insert().values(row).returning(*table.columns))
                          .mappings().one())  # fmt: skip
            assert {c: stored[c] for c in row} == row, table.name
            made[table.name].append(stored)
            expected.setdefault(table.name, {})[key_of(table, stored)] = stored
    if batch == 0:
        assert [t for t, rows in made.items() if not rows] == [], "tables left empty"


def key_of(table: Table, row: Row) -> tuple[Any, ...]:
    return tuple(row[c.name] for c in table.primary_key.columns)


def check(conn: Connection, md: MetaData, expected: Expected) -> None:
    """Every row made so far is there with its values; columns new since it was made hold
    their default (or what BACKFILLS says the migration put there)."""
    for name, rows in expected.items():
        assert name in md.tables, f"the table {name} is gone with its rows"
        table = md.tables[name]
        now = {key_of(table, r): dict(r) for r in conn.execute(select(table)).mappings()}
        for key, row in rows.items():
            got = now.get(key)
            assert got is not None, f"{name} row {key} is gone"
            assert set(row) - set(got) == set(), f"{name}: columns dropped with their values"
            for column in set(got) - set(row):
                col = table.c[column]  # a computed column is the database's own reading
                row[column] = got[column] if col.computed else new_value(conn, col, row)
            assert got == row, f"{name} row {key}"


def new_value(conn: Connection, col: Column[Any], row: Row) -> Any:
    if (col.table.name, col.name) in BACKFILLS:
        return BACKFILLS[(col.table.name, col.name)](row)
    default = col.server_default
    if default is None:
        assert col.nullable, (
            f"{col.table.name}.{col.name} is new, NOT NULL and has no default: its migration "
            f"fills it from the old rows; say how in BACKFILLS"
        )
        return None
    sql = str(default.arg)  # type: ignore[attr-defined]
    return conn.execute(select(literal_column(sql, type_=col.type))).scalar_one()


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_rows_written_at_every_older_revision_survive_the_upgrade_to_head(
    backend: str, postgres: PostgresServer, sqlite_dir: Path
) -> None:
    db = Database(new_database_url(backend, postgres, sqlite_dir))
    revisions = chain(db)
    assert revisions[-1] == db.head_revision() and len(revisions) >= 2
    expected: Expected = {}
    # At each revision before head (the previous release's last among them), rows in every
    # table; each step up checks every row made so far, the last one at head.
    db.upgrade(revisions[0])
    for batch, following in enumerate(revisions[1:]):
        with db.write_engine.begin() as conn:
            md = reflect(db, conn)
            check(conn, md, expected)
            fill(conn, md, batch, expected)
        db.upgrade(following)
    with db.engine.connect() as conn:
        check(conn, reflect(db, conn), expected)
    db.check_migrated()
    assert set(Base.metadata.tables) <= set(expected), "every table of the models had rows"

    # The code of head reads the old rows and finds them: through the models (their types)
    # and the search index built by its migration.
    with db.read() as s:
        for mapper in Base.registry.mappers:
            s.scalars(select(mapper.class_)).all()
        subject = next(iter(expected["tickets"].values()))["subject"]
        found = SearchRepository(s).tickets(parse_query(subject.split(" ")[0] + " subject"),
                                            account_id=None, include_internal=True, offset=0,
                                            limit=5)  # fmt: skip
        assert [s.get(Ticket, m.ticket_id).subject for m in found] == [subject]  # type: ignore[union-attr]
    db.dispose()
