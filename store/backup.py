"""Backups of the SCDB with the database's own tools, taken while the platform runs, and their
restore into an empty database (or, asked with `force`, in place of everything in one).

PostgreSQL: `pg_dump -Fc` (a custom-format archive of one snapshot: a consistent copy while
writers go on) and `pg_restore`, whose script `psql` runs in one transaction: a restore is all
or nothing, and a forced one drops the old objects in that same transaction. SQLite: the online
backup API (`sqlite3.Connection.backup`) copies the whole file in one step under one read
transaction, which WAL lets writers work beside. A backup file is written 0600 under a
temporary name and only then linked to its name, so a failed backup leaves no file behind.

The schema revision (Alembic) travels inside the backup: one older than the code's is restored
and then upgraded (`sitedesk db upgrade`); one the code does not know (a newer release's) is
refused before anything is touched. Passwords never reach a command line (libpq reads
PGPASSWORD from the environment of the tool) nor a message.
"""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
from contextlib import closing
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import IO

from alembic.script import ScriptDirectory
from alembic.util import CommandError
from sqlalchemy import make_url, text

from store.db import Database, redact
from store.errors import StoreError
from store.files import PRIVATE_FILE_MODE, private_dir, private_file

PG_MAGIC = b"PGDMP"  # the first bytes of a pg_dump custom-format archive
SQLITE_MAGIC = b"SQLite format 3\x00"
SUFFIXES = {"postgresql": "pgdump", "sqlite": "sqlite3"}
INSTALL_CLIENT = "install the PostgreSQL client (Debian: apt-get install postgresql-client)"
_VERSION = re.compile(r"\(PostgreSQL\)\s+(\d+)(?:\.(\d+))?")
# Every user object of the database, dropped (in the restore's transaction) before a forced
# restore: relations, then functions and types; what an extension owns goes with it.
_DROP_EVERYTHING = """
DO $sitedesk$
DECLARE r record;
BEGIN
  FOR r IN
    SELECT format('DROP %s IF EXISTS %I.%I CASCADE',
                  CASE c.relkind WHEN 'v' THEN 'VIEW' WHEN 'm' THEN 'MATERIALIZED VIEW'
                                 WHEN 'S' THEN 'SEQUENCE' WHEN 'f' THEN 'FOREIGN TABLE'
                                 ELSE 'TABLE' END, n.nspname, c.relname) AS stmt
      FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE c.relkind IN ('r', 'p', 'v', 'm', 'S', 'f')
       AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_class'::regclass
                        AND d.objid = c.oid AND d.deptype = 'e')
  LOOP EXECUTE r.stmt; END LOOP;
  FOR r IN
    SELECT format('DROP ROUTINE IF EXISTS %s CASCADE', p.oid::regprocedure) AS stmt
      FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
     WHERE n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_proc'::regclass
                        AND d.objid = p.oid AND d.deptype = 'e')
  LOOP EXECUTE r.stmt; END LOOP;
  FOR r IN
    SELECT format('DROP TYPE IF EXISTS %I.%I CASCADE', n.nspname, t.typname) AS stmt
      FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
     WHERE t.typtype IN ('e', 'd', 'r', 'm') AND t.typelem = 0
       AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
       AND NOT EXISTS (SELECT 1 FROM pg_depend d WHERE d.classid = 'pg_type'::regclass
                        AND d.objid = t.oid AND d.deptype = 'e')
  LOOP EXECUTE r.stmt; END LOOP;
END
$sitedesk$;
"""
_USER_RELATIONS = """
SELECT count(*) FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
 WHERE c.relkind IN ('r', 'p', 'v', 'm', 'f')
   AND n.nspname <> 'information_schema' AND n.nspname NOT LIKE 'pg\\_%'
"""


class BackupRefused(StoreError):
    """A backup or restore that must not run as asked (nothing was touched): why, and what to do."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class BackupFailed(StoreError):
    """A database tool failed (its own words, without secrets)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class RevisionState(StrEnum):
    current = "current"  # the code's head
    older = "older"  # an earlier revision of this code: restore, then `sitedesk db upgrade`


@dataclass(frozen=True)
class Backup:
    path: Path
    dialect: str
    revision: str
    size: int
    tool: str  # what made it: "pg_dump 15.20", "SQLite 3.40.1 backup API"


@dataclass(frozen=True)
class Restored:
    path: Path
    dialect: str
    revision: str  # the backup's (and now the database's) schema revision
    head: str  # the code's
    replaced: bool  # the database had objects, dropped on request (`force`)

    @property
    def needs_upgrade(self) -> bool:
        return self.revision != self.head


def default_backup_path(data_dir: Path, dialect: str, now: datetime | None = None) -> Path:
    """`<data dir>/backups/sitedesk-<UTC time>.<pgdump|sqlite3>` (the directory 0700)."""
    stamp = (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")
    return private_dir(data_dir / "backups") / f"sitedesk-{stamp}.{SUFFIXES.get(dialect, 'bak')}"


def backup(db: Database, path: Path) -> Backup:
    """Write a backup of `db` to `path` (which must not exist yet), while others write on."""
    if path.exists():
        raise BackupRefused(f"{path} exists already: choose a new file for the backup")
    if not path.parent.is_dir():
        raise BackupRefused(f"the directory {path.parent} does not exist")
    pg_dump = _usable_pg_dump(db) if db.dialect == "postgresql" else None
    if db.current_revision() is None:
        raise BackupRefused(
            f"the database {redact(db.url)} has no Sitedesk schema: there is nothing to back up"
        )
    tmp = path.with_name(f".{path.name}.partial")
    tmp.unlink(missing_ok=True)
    try:
        tool = _pg_dump(db, tmp, *pg_dump) if pg_dump else _sqlite_backup(db, tmp)
        revision = backup_revision(tmp, db.dialect)  # the snapshot's own, not the one before
        os.link(tmp, path)  # never over a file that appeared meanwhile
    finally:
        tmp.unlink(missing_ok=True)
    return Backup(path, db.dialect, revision, path.stat().st_size, tool)


def restore(db: Database, path: Path, *, force: bool = False) -> Restored:
    """Restore the backup at `path` into `db`: an empty database, or with `force` one whose
    every object is replaced. Refused (nothing touched) for a backup of the other database
    kind, of a schema revision this code does not know, or a database that is not empty."""
    kind = backup_kind(path)
    if kind != db.dialect:
        raise BackupRefused(
            f"{path} is a {kind} backup and the database {redact(db.url)} is {db.dialect}: "
            f"a backup restores into the kind of database it was taken from"
        )
    revision = backup_revision(path, kind)
    head = db.head_revision() or ""
    revision_state(revision, db)
    if db.dialect == "postgresql":
        replaced = _pg_restore(db, path, force=force)
    else:
        replaced = _sqlite_restore(db, path, force=force)
    after = db.current_revision()
    if after != revision:
        raise BackupFailed(f"the restored database is at revision {after}, the backup {revision}")
    return Restored(path, db.dialect, revision, head, replaced)


def revision_state(revision: str, db: Database) -> RevisionState:
    """Where a backup's schema revision stands against the code's; a revision the code does
    not know (a newer release's) is refused."""
    head = db.head_revision()
    if revision == head:
        return RevisionState.current
    script = ScriptDirectory.from_config(db.alembic_config())
    try:
        known = script.get_revision(revision) is not None
    except CommandError:
        known = False
    if not known:
        raise BackupRefused(
            f"the backup's schema is at revision {revision}, which this code does not know "
            f"(its newest is {head}): it was made by a newer Sitedesk; restore it with that "
            f"release, or upgrade this one first"
        )
    return RevisionState.older


def backup_kind(path: Path) -> str:
    """`postgresql` or `sqlite`, by the file's first bytes."""
    try:
        with path.open("rb") as f:
            head = f.read(len(SQLITE_MAGIC))
    except FileNotFoundError:
        raise BackupRefused(f"no backup at {path}") from None
    except OSError as exc:
        raise BackupRefused(f"cannot read {path}: {exc.strerror}") from exc
    if head.startswith(PG_MAGIC):
        return "postgresql"
    if head == SQLITE_MAGIC:
        return "sqlite"
    raise BackupRefused(
        f"{path} is not a Sitedesk backup (neither a pg_dump archive nor an SQLite database)"
    )


def backup_revision(path: Path, kind: str) -> str:
    """The schema revision recorded in the backup (its alembic_version row)."""
    if kind == "postgresql":
        args = ["--data-only", "--table=alembic_version", "--file=-", str(path)]
        script = _run([_tool("pg_restore"), *args], what=f"pg_restore could not read {path}")
        lines = script.splitlines()
        start = next((i for i, x in enumerate(lines) if x.startswith("COPY ")), None)
        rows = lines[start + 1 : lines.index("\\.", start)] if start is not None else []
    else:
        try:
            with closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as c:
                check = c.execute("PRAGMA quick_check").fetchone()
                if check is None or check[0] != "ok":
                    raise BackupRefused(f"{path} is damaged (SQLite: {check})")
                rows = [r[0] for r in c.execute("SELECT version_num FROM alembic_version")]
        except sqlite3.DatabaseError as exc:
            raise BackupRefused(f"{path} is no readable Sitedesk backup ({exc})") from exc
    if len(rows) != 1:
        raise BackupRefused(f"{path} holds no Sitedesk schema revision (alembic_version)")
    return rows[0].strip()


# -- PostgreSQL ------------------------------------------------------------------------------
def _tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        raise BackupFailed(f"{name} is not on PATH: {INSTALL_CLIENT}")
    return found


def _libpq(db: Database) -> tuple[str, dict[str, str]]:
    """The connection for libpq's tools: a URI without the password, and the environment
    that carries it (so it shows in no process list)."""
    url = make_url(db.url)
    env = dict(os.environ, PGAPPNAME="sitedesk-backup")
    env.setdefault("PGCONNECT_TIMEOUT", "10")
    if url.password:
        env["PGPASSWORD"] = str(url.password)
    uri = url.set(drivername="postgresql", password=None).render_as_string(hide_password=False)
    return uri, env


def _major(version_text: str) -> tuple[int, str]:
    found = _VERSION.search(version_text)
    if found is None:
        raise BackupFailed(f"cannot tell the PostgreSQL client's version from {version_text!r}")
    full = found.group(1) + (f".{found.group(2)}" if found.group(2) else "")
    return int(found.group(1)), full


def _server_major(db: Database) -> int:
    with db.engine.connect() as conn:
        number = int(conn.execute(text("SHOW server_version_num")).scalar_one())
    return number // 10000 if number >= 100000 else number // 100 // 100


def _usable_pg_dump(db: Database) -> tuple[str, str]:
    """pg_dump and its version, refused when older than the server (it cannot dump one)."""
    pg_dump = _tool("pg_dump")
    client, full = _major(_run([pg_dump, "--version"], what="pg_dump --version failed"))
    server = _server_major(db)
    if client < server:
        raise BackupRefused(
            f"pg_dump is version {full} and the server of {redact(db.url)} runs PostgreSQL "
            f"{server}: pg_dump cannot dump a newer server; install postgresql-client-{server} "
            f"(or put its pg_dump first on PATH)"
        )
    return pg_dump, full


def _pg_dump(db: Database, tmp: Path, pg_dump: str, full: str) -> str:
    uri, env = _libpq(db)
    private_file(tmp)
    with tmp.open("wb") as out:
        _run([pg_dump, "--format=custom", "--no-password", "--lock-wait-timeout=60s",
              f"--dbname={uri}"], what=f"pg_dump of {redact(db.url)} failed", stdout=out,
             env=env, secret=env.get("PGPASSWORD"))  # fmt: skip
        out.flush()
        os.fsync(out.fileno())
    return f"pg_dump {full}"


def _pg_restore(db: Database, path: Path, *, force: bool) -> bool:
    pg_restore, psql = _tool("pg_restore"), _tool("psql")
    uri, env = _libpq(db)
    secret = env.get("PGPASSWORD")
    db.dispose()  # our own idle connections are no other session
    with db.engine.connect() as conn:
        objects = int(conn.execute(text(_USER_RELATIONS)).scalar_one())
        others = int(conn.execute(text(
            "SELECT count(*) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )).scalar_one())  # fmt: skip
    db.dispose()
    if objects and not force:
        raise _not_empty(db, f"{objects} tables")
    if objects and others:
        raise BackupRefused(
            f"{others} other session(s) are connected to {redact(db.url)}: stop the platform "
            f"(and any other client) before replacing its database"
        )
    # Everything in the archive but the comments on extensions, which only an extension's
    # owner may set (the desk's user need not own pg_trgm).
    listing = _run([pg_restore, "--list", str(path)], what=f"pg_restore could not read {path}")
    keep = [x for x in listing.splitlines() if " COMMENT - EXTENSION " not in x]
    with tempfile.TemporaryDirectory(prefix="sitedesk-restore-") as work:
        items = Path(work) / "items"
        items.write_text("\n".join(keep) + "\n")
        with tempfile.TemporaryFile() as script_err, tempfile.TemporaryFile() as psql_err:
            script = subprocess.Popen(
                [pg_restore, "--no-owner", "--no-privileges", "--exit-on-error",
                 f"--use-list={items}", "--file=-", str(path)],
                stdout=subprocess.PIPE, stderr=script_err,
            )  # fmt: skip
            applying = subprocess.Popen(
                [psql, "--no-psqlrc", "--quiet", "--no-password", "--set=ON_ERROR_STOP=1",
                 "--file=-", f"--dbname={uri}"],
                stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=psql_err, env=env,
            )  # fmt: skip
            _feed(
                script,
                applying,
                first=b"BEGIN;\n" + (_DROP_EVERYTHING.encode() if objects else b""),
            )
            psql_err.seek(0)
            script_err.seek(0)
            why = (psql_err.read() or script_err.read()).decode(errors="replace")
    if applying.returncode != 0 or script.returncode != 0:
        raise BackupFailed(
            f"the restore into {redact(db.url)} failed and changed nothing (it runs in one "
            f"transaction): {_last_lines(_scrub(why, secret))}"
        )
    return bool(objects)


# -- SQLite ----------------------------------------------------------------------------------
def _sqlite_path(db: Database) -> Path:
    name = make_url(db.url).database
    if not name or name == ":memory:":
        raise BackupRefused("an in-memory SQLite database has no backup")
    return Path(name)


def _sqlite_backup(db: Database, tmp: Path) -> str:
    source = _sqlite_path(db)
    private_file(tmp)
    with (
        closing(sqlite3.connect(source, timeout=30)) as src,
        closing(sqlite3.connect(tmp)) as dst,
    ):
        # One step (pages=-1): the whole file under one read transaction of the source, a
        # consistent snapshot while WAL lets the platform's writers go on.
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")  # one self-contained file
    with tmp.open("rb+") as f:
        os.fsync(f.fileno())
    return f"SQLite {sqlite3.sqlite_version} backup API"


def _sqlite_restore(db: Database, path: Path, *, force: bool) -> bool:
    target = _sqlite_path(db)
    db.dispose()
    tables = 0
    if target.exists() and target.stat().st_size > 0:
        with closing(sqlite3.connect(target, timeout=30)) as conn:
            tables = int(conn.execute(
                "SELECT count(*) FROM sqlite_master WHERE type IN ('table', 'view') "
                "AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\'"
            ).fetchone()[0])  # fmt: skip
    if tables and not force:
        raise _not_empty(db, f"{tables} tables")
    target.parent.mkdir(parents=True, exist_ok=True)
    private_file(target)
    with (
        closing(sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)) as src,
        closing(sqlite3.connect(target, timeout=30)) as dst,
    ):
        # The destination is written in one transaction: all of the backup, or nothing.
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=WAL")
    for side in ("-wal", "-shm"):
        extra = target.with_name(target.name + side)
        if extra.exists():
            extra.chmod(PRIVATE_FILE_MODE)
    return bool(tables)


# -- helpers ---------------------------------------------------------------------------------
def _not_empty(db: Database, what: str) -> BackupRefused:
    try:
        at = db.current_revision() or "no Sitedesk schema"
    except StoreError:
        at = "unknown revision"
    db.dispose()
    return BackupRefused(
        f"the database {redact(db.url)} is not empty ({what}, {at}): restore into an empty "
        f"database, or pass --force to replace everything in it (stop the platform first)"
    )


def _run(
    args: list[str],
    *,
    what: str,
    stdout: IO[bytes] | None = None,
    env: dict[str, str] | None = None,
    secret: str | None = None,
) -> str:
    """Run a database tool; its stdout as text (unless redirected), or BackupFailed with what
    it said."""
    try:
        done = subprocess.run(
            args,
            stdout=stdout if stdout is not None else subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
            check=False,
        )
    except OSError as exc:
        raise BackupFailed(f"{what}: {exc.strerror}") from exc
    if done.returncode != 0:
        why = _scrub(done.stderr.decode(errors="replace"), secret)
        hint = f"; {INSTALL_CLIENT} of a newer version" if "unsupported version" in why else ""
        raise BackupFailed(f"{what}: {_last_lines(why)}{hint}")
    return done.stdout.decode(errors="replace") if stdout is None else ""


def _feed(
    script: subprocess.Popen[bytes], applying: subprocess.Popen[bytes], *, first: bytes
) -> None:
    """Stream pg_restore's script into psql inside one transaction, committed only when
    pg_restore read the whole archive: a failure anywhere leaves the database as it was."""
    assert script.stdout is not None and applying.stdin is not None
    try:
        applying.stdin.write(first)
        while chunk := script.stdout.read(1 << 16):
            applying.stdin.write(chunk)
        if script.wait() == 0:
            applying.stdin.write(b"COMMIT;\n")
        applying.stdin.close()  # without COMMIT the server rolls the transaction back
    except BrokenPipeError:  # psql stopped at an error: its words say why
        pass
    finally:
        script.stdout.close()
        if script.poll() is None:
            script.kill()
        script.wait()
        applying.wait()


def _scrub(message: str, secret: str | None) -> str:
    return message.replace(secret, "***") if secret else message


def _last_lines(message: str, n: int = 3) -> str:
    lines = [x.strip() for x in message.strip().splitlines() if x.strip()]
    return " / ".join(lines[-n:]) or "no message"
