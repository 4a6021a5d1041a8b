"""Full-text search of tickets and accounts (store/read/search.py), kept by the database itself
in the transaction of every write, so that no write path has to know about it.

PostgreSQL: tickets' subjects and messages' bodies get a generated `search_vector` (tsvector,
`english`; a body's first 100,000 characters, which keeps every vector under tsvector's 1 MB)
with a GIN index; accounts' code and name, contacts' name, e-mail and phone, and services' names
get pg_trgm GIN indexes for substrings. SQLite: FTS5 tables `search_tickets` and
`search_messages` (external content: they index the rows of tickets and messages in place,
porter stemming) and `search_accounts` (trigram: one row per account field, its rowid the
source row's id * 8 + the field's number), each kept by triggers on its tables.

Every object is named `search_...`: the models do not describe them (store/search.py tells
Alembic's comparison so). On SQLite a later migration that rebuilds one of these tables in
batch mode drops its triggers with it and must create them again (tests/store/test_search.py
checks that they are there at head). Existing rows are indexed here.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-10 09:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# -- PostgreSQL -----------------------------------------------------------------------------
PG_TRIGRAM = {  # index name: (table, column)
    "search_accounts_code": ("accounts", "code"),
    "search_accounts_name": ("accounts", "name"),
    "search_contacts_name": ("contacts", "name"),
    "search_contacts_email": ("contacts", "email"),
    "search_contacts_phone": ("contacts", "phone"),
    "search_services_name": ("services", "name"),
}
PG_VECTORS = {  # table: the text it indexes
    "tickets": "subject",
    "messages": "left(body, 100000)",
}

# -- SQLite ---------------------------------------------------------------------------------
STEMMED = "porter unicode61 remove_diacritics 2"
# (field, its number in the rowid, the column of the source row)
ACCOUNT_FIELDS = [("code", 0, "code"), ("name", 1, "name")]
CONTACT_FIELDS = [("contact_name", 2, "name"), ("email", 3, "email"), ("phone", 4, "phone")]
SERVICE_FIELDS = [("service", 5, "name")]


def _external(table: str, column: str) -> list[str]:
    """An FTS5 table indexing `table.column` in place, and the triggers that keep it."""
    fts = f"search_{table}"
    add = f"INSERT INTO {fts}(rowid, {column}) VALUES (new.id, new.{column});"  # noqa: S608 - names from this file
    drop = f"INSERT INTO {fts}({fts}, rowid, {column}) VALUES ('delete', old.id, old.{column});"  # noqa: S608
    return [
        f"CREATE VIRTUAL TABLE {fts} USING fts5({column}, content='{table}', "
        f"content_rowid='id', tokenize='{STEMMED}')",
        f"CREATE TRIGGER {fts}_insert AFTER INSERT ON {table} BEGIN {add} END",
        f"CREATE TRIGGER {fts}_delete AFTER DELETE ON {table} BEGIN {drop} END",
        f"CREATE TRIGGER {fts}_update AFTER UPDATE OF {column} ON {table} BEGIN {drop} {add} END",
        f"INSERT INTO {fts}({fts}) VALUES ('rebuild')",  # noqa: S608
    ]


def _field_rows(fields: list[tuple[str, int, str]], account: str, when: str, row: str) -> str:
    """A SELECT of the search_accounts rows of one source row: `row` is `new.` in a trigger,
    or a table's name when indexing the rows it has; `when` a condition on the row."""
    prefix, source = ("new.", "") if row == "new." else ("", f" FROM {row}")
    return " UNION ALL ".join(
        f"SELECT {prefix}id * 8 + {number}, {prefix}{column}, {prefix}{account}, '{field}'"
        f"{source} WHERE {prefix}{column} IS NOT NULL{when.format(p=prefix)}"
        for field, number, column in fields
    )


def _fields(table: str, fields: list[tuple[str, int, str]], account: str, when: str) -> list[str]:
    """The triggers that keep a table's rows in search_accounts, and its rows indexed now."""
    columns = sorted({c for _, _, c in fields} | {account} - {"id"})
    rowids = ", ".join(f"old.id * 8 + {n}" for _, n, _ in fields)
    drop = f"DELETE FROM search_accounts WHERE rowid IN ({rowids});"  # noqa: S608
    insert = "INSERT INTO search_accounts(rowid, value, account_id, field) "
    add = insert + _field_rows(fields, account, when, "new.") + ";"
    name = f"search_accounts_{table}"
    return [
        f"CREATE TRIGGER {name}_insert AFTER INSERT ON {table} BEGIN {add} END",
        f"CREATE TRIGGER {name}_delete AFTER DELETE ON {table} BEGIN {drop} END",
        f"CREATE TRIGGER {name}_update AFTER UPDATE OF {', '.join(columns)} ON {table} "
        f"BEGIN {drop} {add} END",
        insert + _field_rows(fields, account, when, table),
    ]


SQLITE_TRIGGERS = [
    f"search_{t}_{w}" for t in ("tickets", "messages") for w in ("insert", "delete", "update")
] + [
    f"search_accounts_{t}_{w}"
    for t in ("accounts", "contacts", "services")
    for w in ("insert", "delete", "update")
]


def upgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
        for table, source in PG_VECTORS.items():
            op.execute(
                f"ALTER TABLE {table} ADD COLUMN search_vector tsvector GENERATED ALWAYS AS "
                f"(to_tsvector('english'::regconfig, {source})) STORED"
            )
            op.execute(f"CREATE INDEX search_{table}_vector ON {table} USING gin (search_vector)")
        for index, (table, column) in PG_TRIGRAM.items():
            op.execute(f"CREATE INDEX {index} ON {table} USING gin ({column} gin_trgm_ops)")
        return
    statements = _external("tickets", "subject") + _external("messages", "body")
    statements.append(
        "CREATE VIRTUAL TABLE search_accounts USING fts5("
        "value, account_id UNINDEXED, field UNINDEXED, tokenize='trigram')"
    )
    statements += _fields("accounts", ACCOUNT_FIELDS, "id", "")
    # A contact on no account yet (a sender waiting to be linked) is found once it is linked.
    statements += _fields(
        "contacts", CONTACT_FIELDS, "account_id", " AND {p}account_id IS NOT NULL"
    )
    statements += _fields("services", SERVICE_FIELDS, "account_id", "")
    for statement in statements:
        op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for index in PG_TRIGRAM:
            op.execute(f"DROP INDEX IF EXISTS {index}")
        for table in PG_VECTORS:
            op.execute(f"DROP INDEX IF EXISTS search_{table}_vector")
            op.execute(f"ALTER TABLE {table} DROP COLUMN IF EXISTS search_vector")
        # pg_trgm stays: it may have been there before, other objects may use it, and dropping
        # it takes its owner, which the desk's database user need not be.
        return
    for trigger in SQLITE_TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}")
    for table in ("search_tickets", "search_messages", "search_accounts"):
        op.execute(f"DROP TABLE IF EXISTS {table}")
