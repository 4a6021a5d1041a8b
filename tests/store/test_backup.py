"""`sitedesk db backup` and `sitedesk db restore` on both databases: a backup taken while a
writer commits tickets restores into an empty database with every row of the source as of the
backup, and a restore refuses what it must not do (a database in use, a newer schema)."""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from alembic.script import ScriptDirectory
from argon2 import PasswordHasher
from sqlalchemy import inspect, make_url, text
from typer.testing import CliRunner, Result

from gateway.cli import app
from store import passwords
from store.db import Database
from store.demo import DemoHost, load_demo
from store.models import Account, Ticket
from store.models.base import utcnow
from store.models.enums import TokenScope
from store.repositories import (
    AccountRepository,
    AuditRepository,
    ChangeRepository,
    IdempotencyRepository,
    InboundMailRepository,
    MessageRepository,
    SearchRepository,
    SuppressionRepository,
    TicketEventRepository,
    TicketRepository,
    TimelineRepository,
    TokenRepository,
    UserRepository,
)
from store.repositories.delivery import DeliveryRepository
from store.repositories.message import NewAttachment
from store.search import parse_query
from tests.conftest import PostgresServer, new_database_url

BACKENDS = pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
PASSWORD = "hunter2-not-for-logs"  # in the PostgreSQL URLs (the test server trusts anyone)
BINARY = bytes(range(256)) * 3 + b"\x00\xff\x00"  # every byte value, NULs and all
runner = CliRunner()


def database_url(backend: str, postgres: PostgresServer, sqlite_dir: Path) -> str:
    url = new_database_url(backend, postgres, sqlite_dir)
    if backend == "postgresql":
        url = make_url(url).set(password=PASSWORD).render_as_string(hide_password=False)
    return url


def sitedesk(args: list[str], url: str, data_dir: Path) -> Result:
    env = {"SITEDESK_DATABASE_URL": url, "SITEDESK_DATA_DIR": str(data_dir), "COLUMNS": "200"}
    result = runner.invoke(app, args, env=env)
    assert PASSWORD not in result.output + result.stderr
    assert "Traceback" not in result.output + result.stderr, result.stderr
    return result


# -- a company with a history ----------------------------------------------------------------
def fill_company(db: Database, tmp: Path) -> None:
    """The demo company, then tickets with messages (files among them), events and changes,
    mail in and out, a suppression, tokens, audit entries and a stored idempotent answer:
    every table of the schema gets rows, each column with values of its kind."""
    host = DemoHost(name="web1", address="127.0.0.1", ssh_port=2222,
                    host_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIBackupTestKey host",
                    credentials_ref=str(tmp / "web1.key"),
                    services_meta={"imap_port": 1143, "https_port": 8443})  # fmt: skip
    load_demo(db, tmp / "demo-logins.json", hosts=[host])
    with db.write() as s:
        accounts = list(s.query(Account).order_by(Account.id))
        agent = UserRepository(s).by_email("alice@sitedesk.demo")
        assert agent is not None
        messages, events = MessageRepository(s), TicketEventRepository(s)
        for n, acct in enumerate(accounts):
            contact = AccountRepository(s).contacts(acct.id)[0]
            service = AccountRepository(s).services(acct.id)[0]
            customer = UserRepository(s).by_email(contact.email)
            assert customer is not None
            ticket = TicketRepository(s).create(
                account_id=acct.id, subject=f"Mailbox full at {acct.name} — größer? ✉",
                channel="email", category="email", priority=("urgent", "high", "low")[n % 3],
                contact_id=contact.id, requester_user_id=customer.id,
                first_response_due=utcnow() + timedelta(minutes=30, microseconds=123457),
            )  # fmt: skip
            raw = f"From: {contact.email}\r\nSubject: full\r\n\r\nIt is full.\r\n".encode()
            inbound, _ = InboundMailRepository(s).store({
                "dedupe_key": f"<full-{n}@customer.test>", "message_id": f"<m-{n}@customer.test>",
                "envelope_from": contact.email, "envelope_to": ["support@sitedesk.demo"],
                "from_address": contact.email, "subject": "full", "size": len(raw),
                "sha256": hashlib.sha256(raw).hexdigest(), "raw": raw + BINARY,
                "created_at": utcnow(), "flags": {"defects": [], "loop": None},
                "category": "email", "ticket_id": ticket.id, "contact_id": contact.id,
            })  # fmt: skip
            first = messages.add_message(
                ticket, direction="inbound", channel="email", author_name=contact.name,
                body="Our mailbox says it is full.\n\n" + "Line of a long mail. " * 400,
                email_message_id=f"<full-{n}@customer.test>", inbound_mail_id=inbound.id,
                headers={"subject": "full", "x-test": ["a", "b"]},
                attachments=[NewAttachment("quota.png", "image/png", BINARY)],
            )  # fmt: skip
            messages.add_message(
                ticket, direction="internal", channel="portal", visibility="internal",
                author_name=agent.display_name, author_user_id=agent.id,
                body="Quota is 1 GiB; raising it needs a change.",
            )  # fmt: skip
            events.add_event(ticket, "assigned", summary=f"{ticket.number} to Alice",
                             actor_user_id=agent.id, actor_label=agent.display_name,
                             data={"first_message": first.id}, also_tiers=[1])  # fmt: skip
            change = ChangeRepository(s).create(
                account_id=acct.id, kind="mailbox_quota", source="agent", service_id=service.id,
                ticket_id=ticket.id, host_id=service.host_id, requested_by_user_id=agent.id,
                params={"mailbox": f"info@{acct.code.lower()}.test", "quota_mb": 2048},
            )  # fmt: skip
            ChangeRepository(s).add_attempt(change.id, outcome="failed", output="", error="timeout")
            ChangeRepository(s).add_attempt(change.id, outcome="applied", output="quota 2048")
            TimelineRepository(s).append(acct.id, kind="change.applied", summary="Quota raised",
                                         ticket_id=ticket.id, change_id=change.id,
                                         actor="GDCAS", data={"quota_mb": 2048})  # fmt: skip
            DeliveryRepository(s).plan([{
                "source": f"outbox:{n}:to:{contact.email}", "ticket_id": ticket.id,
                "kind": "customer", "recipient": contact.email, "subject": "[TT] Quota raised",
                "message_id": f"<tt-{n}@sitedesk.demo>", "raw": b"Subject: raised\r\n\r\nok\r\n",
            }])  # fmt: skip
            SuppressionRepository(s).suppress(f"gone-{n}@customer.test", status_code="5.1.1",
                                              diagnostic="no such user",
                                              inbound_mail_id=inbound.id)  # fmt: skip
            TokenRepository(s).issue(customer.id, name="shop sync", ttl=timedelta(days=30),
                                     scopes=[TokenScope.api])  # fmt: skip
            AuditRepository(s).record(actor_label="cli", action="token.create",
                                      object_type="api_token", object_id=n, ip="192.0.2.7",
                                      account_id=acct.id, data={"n": n})  # fmt: skip
            answer = {"number": ticket.number, "files": [first.id]}
            IdempotencyRepository(s).put(customer.id, f"key-{n}", request_hash="ab" * 32,
                                         status_code=201, response=answer)  # fmt: skip


def table_names(db: Database) -> list[str]:
    """Every table of the schema but SQLite's full-text index and its shadow tables (their
    pages move as the index merges; the restored index is checked by a search instead)."""
    names = inspect(db.engine).get_table_names()
    return sorted(n for n in names if not (db.is_sqlite and n.startswith("search_")))


def snapshot(db: Database) -> dict[str, dict[tuple[Any, ...], tuple[Any, ...]]]:
    """Every row of every table, all columns as the driver reads them, by primary key."""
    out: dict[str, dict[tuple[Any, ...], tuple[Any, ...]]] = {}
    insp = inspect(db.engine)
    with db.engine.connect() as conn:
        for name in table_names(db):
            columns = [c["name"] for c in insp.get_columns(name)]
            key = insp.get_pk_constraint(name)["constrained_columns"] or columns
            at = [columns.index(k) for k in key]
            rows = conn.execute(text(f'SELECT * FROM "{name}"')).all()
            out[name] = {tuple(r[i] for i in at): tuple(r) for r in rows}
    return out


class Writer(threading.Thread):
    """Commits ticket after ticket (each with its first message) until told to stop."""

    def __init__(self, url: str, account_id: int) -> None:
        super().__init__(daemon=True)
        self.db, self.account_id = Database(url, pool_size=1), account_id
        self.committed: list[int] = []  # ticket ids, in commit order
        self.more = threading.Condition()
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            while not self.stop.is_set():
                with self.db.write() as s:
                    t = TicketRepository(s).create(
                        account_id=self.account_id, subject="Writer's ticket", channel="api"
                    )
                    MessageRepository(s).add_message(t, direction="inbound", channel="api",
                                                     body="written during the backup",
                                                     author_name="writer")  # fmt: skip
                    ticket_id = t.id
                with self.more:
                    self.committed.append(ticket_id)
                    self.more.notify_all()
        except BaseException as exc:
            self.error = exc
            with self.more:
                self.more.notify_all()

    def wait_for(self, count: int) -> list[int]:
        with self.more:
            assert self.more.wait_for(lambda: len(self.committed) >= count or self.error, 60)
            assert self.error is None, self.error
            return list(self.committed)

    def finish(self) -> list[int]:
        self.stop.set()
        self.join(60)
        assert self.error is None, self.error
        self.db.dispose()
        return list(self.committed)


# -- the tests -------------------------------------------------------------------------------
@BACKENDS
def test_a_backup_taken_while_a_writer_commits_restores_every_row(
    backend: str,
    postgres: PostgresServer,
    sqlite_dir: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The demo's log-ins hashed with argon2id's cheapest parameters: real hashes, at a
    # fraction of the time (what is tested is that they come back, not their strength).
    monkeypatch.setattr(passwords, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024,
                                                             parallelism=1))  # fmt: skip
    source_url, target_url = (database_url(backend, postgres, sqlite_dir) for _ in range(2))
    source = Database(source_url)
    source.upgrade()
    fill_company(source, tmp_path)
    rows = snapshot(source)
    assert [t for t in rows if not rows[t]] == []  # every table has rows
    with source.read() as s:
        account_id = s.query(Account.id).order_by(Account.id).limit(1).scalar()

    writer = Writer(source_url, account_id)
    writer.start()
    before = writer.wait_for(3)  # committed before the backup began: all must come back
    path = tmp_path / "out" / "company.backup"
    path.parent.mkdir()
    made = sitedesk(["db", "backup", str(path)], source_url, tmp_path / "data")
    during = writer.wait_for(0)
    written = writer.finish()
    assert made.exit_code == 0, made.stderr
    assert len(during) > len(before), "the writer committed while the backup ran"
    assert f"(schema {source.head_revision()})" in made.output
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert os.listdir(path.parent) == ["company.backup"]  # no temporary file left

    restored = sitedesk(["db", "restore", str(path)], target_url, tmp_path / "data")
    assert restored.exit_code == 0, restored.stderr
    assert "sitedesk db upgrade" not in restored.output  # the same schema: nothing to do
    target = Database(target_url)
    target.check_migrated()

    source_rows, target_rows = snapshot(source), snapshot(target)
    assert set(target_rows) == set(source_rows)
    later = set(written) - set(before)  # may be absent: committed after the backup began
    for table, got in target_rows.items():
        have = source_rows[table]
        assert {k: v for k, v in got.items() if have.get(k) != v} == {}, table
        missing = [have[k] for k in have.keys() - got.keys()]
        if table == "tickets":
            assert {k[0] for k in have.keys() - got.keys()} <= later
        elif table == "messages":
            columns = [c["name"] for c in inspect(source.engine).get_columns(table)]
            assert {r[columns.index("ticket_id")] for r in missing} <= later
        else:
            assert missing == [], table
    # One snapshot: the writer's tickets that came back are the first ones it committed,
    # each with the message of its transaction.
    back = [t for t in written if (t,) in target_rows["tickets"]]
    assert back == written[: len(back)] and len(back) >= len(before)
    with target.read() as s:
        assert {m.ticket_id for t in back for m in MessageRepository(s).messages(
            t, include_internal=True)} == set(back)  # fmt: skip

    # The restored desk works on: a new ticket takes a new id, search finds old ones.
    with target.write() as s:
        fresh = TicketRepository(s).create(account_id=account_id, subject="After", channel="api")
        fresh_id = fresh.id
    assert fresh_id > max(k[0] for k in target_rows["tickets"])
    with target.read() as s:
        found = SearchRepository(s).tickets(parse_query("mailbox full"), account_id=None,
                                            include_internal=True, offset=0, limit=10)  # fmt: skip
        subjects = {s.get(Ticket, m.ticket_id).subject for m in found}  # type: ignore[union-attr]
    assert len(found) == 3 and all(x.startswith("Mailbox full") for x in subjects)

    # A database with data is not restored over without --force ...
    target.dispose()
    refused = sitedesk(["db", "restore", str(path)], target_url, tmp_path / "data")
    assert refused.exit_code == 2
    assert "is not empty" in refused.stderr and "--force" in refused.stderr
    with target.read() as s:
        assert s.get(Ticket, fresh_id) is not None
    # ... and with it, everything in it is the backup's again.
    target.dispose()
    forced = sitedesk(["db", "restore", "--force", str(path)], target_url, tmp_path / "data")
    assert forced.exit_code == 0, forced.stderr
    assert "replaced everything in" in forced.output
    assert snapshot(target) == target_rows

    # A backup of a schema this code does not know (a newer release's) is refused untouched.
    with source.write() as s:
        s.execute(text("UPDATE alembic_version SET version_num = '9999_future'"))
    newer = tmp_path / "newer.backup"
    assert sitedesk(["db", "backup", str(newer)], source_url, tmp_path / "data").exit_code == 0
    target.dispose()
    refused = sitedesk(["db", "restore", "--force", str(newer)], target_url, tmp_path / "data")
    assert refused.exit_code == 2
    assert "9999_future" in refused.stderr and "newer Sitedesk" in refused.stderr
    assert snapshot(target) == target_rows
    source.dispose()
    target.dispose()


@BACKENDS
def test_a_backup_of_the_previous_schema_is_restored_then_upgraded(
    backend: str, postgres: PostgresServer, sqlite_dir: Path, tmp_path: Path
) -> None:
    source_url, target_url = (database_url(backend, postgres, sqlite_dir) for _ in range(2))
    source = Database(source_url)
    head = source.head_revision()
    prior = ScriptDirectory.from_config(source.alembic_config()).get_revision(head).down_revision
    assert isinstance(prior, str)
    source.upgrade(prior)
    source.dispose()
    path = tmp_path / "previous.backup"
    assert sitedesk(["db", "backup", str(path)], source_url, tmp_path / "data").exit_code == 0

    restored = sitedesk(["db", "restore", str(path)], target_url, tmp_path / "data")
    assert restored.exit_code == 0, restored.stderr
    assert f"the backup's schema is {prior}, this code needs {head}" in restored.output
    assert "run `sitedesk db upgrade`" in restored.output
    upgraded = sitedesk(["db", "upgrade"], target_url, tmp_path / "data")
    assert upgraded.exit_code == 0, upgraded.stderr
    assert Database(target_url).current_revision() == head


def test_a_pg_dump_older_than_the_server_is_refused_with_what_to_install(
    postgres: PostgresServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = make_url(postgres.admin_url).set(password=PASSWORD)  # only asked for its version
    with postgres.engine.connect() as conn:
        server = int(conn.execute(text("SHOW server_version_num")).scalar_one()) // 10000
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    fake = bin_dir / "pg_dump"  # an older client first on PATH, as a stale install leaves it
    fake.write_text(f"#!/bin/sh\necho 'pg_dump (PostgreSQL) {server - 1}.3'\n")
    fake.chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    path = tmp_path / "old.backup"
    result = sitedesk(["db", "backup", str(path)],
                      url.render_as_string(hide_password=False), tmp_path / "data")  # fmt: skip
    assert result.exit_code == 2
    assert f"pg_dump is version {server - 1}.3" in result.stderr
    assert f"install postgresql-client-{server}" in result.stderr
    assert not path.exists()


@BACKENDS
def test_a_file_that_is_no_backup_of_this_database_is_refused(
    backend: str, postgres: PostgresServer, tmp_path: Path
) -> None:
    # Refused before any connection: the database need not even exist.
    pg = make_url(postgres.admin_url).set(database="sitedesk_test_never_made", password=PASSWORD)
    url = pg.render_as_string(hide_password=False) if backend == "postgresql" else (
        f"sqlite:///{tmp_path / 'never-made.db'}")  # fmt: skip
    junk = tmp_path / "notes.txt"
    junk.write_text("not a backup")
    result = sitedesk(["db", "restore", str(junk)], url, tmp_path / "data")
    assert result.exit_code == 2 and "is not a Sitedesk backup" in result.stderr
    other = tmp_path / "other.backup"  # an archive of the other kind of database
    other.write_bytes(b"SQLite format 3\x00" if backend == "postgresql" else b"PGDMP\x01\x0e")
    result = sitedesk(["db", "restore", str(other)], url, tmp_path / "data")
    assert result.exit_code == 2
    assert "restores into the kind of database it was taken from" in result.stderr
