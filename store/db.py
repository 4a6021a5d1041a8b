"""Engines, sessions and the unit of work. Same code on SQLite (embedded) and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine, create_engine, event, make_url, text
from sqlalchemy.exc import DataError, IntegrityError, OperationalError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.orm.exc import StaleDataError

from store.errors import (
    ConflictError,
    DatabaseUnreachableError,
    IntegrityViolation,
    NotMigratedError,
)
from store.files import private_file

MIGRATIONS = Path(__file__).parent / "migrations"


def redact(url: str) -> str:
    """The URL with any password hidden, for messages and logs."""
    return make_url(url).render_as_string(hide_password=True)


def _sqlite_engine(url: str, *, immediate: bool, pool_size: int) -> Engine:
    """An SQLite engine in WAL mode with foreign keys on.

    Writers open with BEGIN IMMEDIATE so that two writers queue on the lock (busy_timeout)
    instead of one failing when it upgrades a read snapshot to a write.
    """
    parsed = make_url(url)
    if parsed.database and parsed.database != ":memory:":
        path = Path(parsed.database)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Password hashes and pending TLS keys live here: 0600 before SQLite opens it (its
        # -wal and -shm files take the database file's mode).
        private_file(path)
        for side in ("-wal", "-shm"):
            extra = path.with_name(path.name + side)
            if extra.exists():
                extra.chmod(0o600)
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        connect_args={"timeout": 30, "check_same_thread": False},
    )

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        cur.execute("PRAGMA synchronous=NORMAL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute("PRAGMA busy_timeout=30000")
        cur.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN IMMEDIATE" if immediate else "BEGIN")

    return engine


class Database:
    """The SCDB connection: `read()` for queries, `write()` for a unit of work that commits."""

    def __init__(self, url: str, *, pool_size: int = 10, echo: bool = False) -> None:
        self.url = url
        self.dialect = make_url(url).get_backend_name()
        if self.dialect == "sqlite":
            self.engine = _sqlite_engine(url, immediate=False, pool_size=pool_size)
            self.write_engine = _sqlite_engine(url, immediate=True, pool_size=pool_size)
        else:
            self.engine = create_engine(
                url, pool_size=pool_size, max_overflow=pool_size, pool_pre_ping=True, echo=echo
            )
            self.write_engine = self.engine
        self._reader = sessionmaker(self.engine, expire_on_commit=False)
        self._writer = sessionmaker(self.write_engine, expire_on_commit=False)

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @contextmanager
    def read(self) -> Iterator[Session]:
        with self._reader() as session:
            yield session

    @contextmanager
    def write(self) -> Iterator[Session]:
        """A unit of work: commits when the block ends, rolls back when it raises.

        Constraint violations come out as `IntegrityViolation`, lost optimistic-lock races as
        `ConflictError`, so callers never see driver exceptions.
        """
        session = self._writer()
        try:
            yield session
            session.commit()
        except IntegrityError as exc:
            session.rollback()
            raise IntegrityViolation(_integrity_message(exc)) from exc
        except DataError as exc:
            session.rollback()
            raise IntegrityViolation(
                f"a value is too long or malformed ({_first_line(exc.orig)})"
            ) from exc
        except StaleDataError as exc:
            session.rollback()
            raise ConflictError("the record was changed by someone else; try again") from exc
        except BaseException:
            session.rollback()
            raise
        finally:
            session.close()

    def ping(self) -> None:
        """Raise DatabaseUnreachableError unless the server answers."""
        try:
            with self.engine.connect() as conn:
                conn.execute(text("SELECT 1"))
        except OperationalError as exc:
            raise DatabaseUnreachableError(redact(self.url), _first_line(exc.orig)) from exc

    # -- migrations -------------------------------------------------------------------------
    def alembic_config(self) -> Config:
        cfg = Config()
        cfg.set_main_option("script_location", str(MIGRATIONS))
        return cfg

    def head_revision(self) -> str | None:
        return ScriptDirectory.from_config(self.alembic_config()).get_current_head()

    def current_revision(self) -> str | None:
        self.ping()
        with self.engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()

    def upgrade(self, revision: str = "head") -> None:
        from alembic import command

        self.ping()
        self._migrate(command.upgrade, revision)

    def downgrade(self, revision: str) -> None:
        from alembic import command

        self._migrate(command.downgrade, revision)

    def _migrate(self, step: Any, revision: str) -> None:
        """Run an Alembic command in one transaction. SQLite alters a table by rebuilding it
        (batch mode), and with foreign keys on, dropping the old table fails while other rows
        refer to it: they are off for the migration (it can only be set outside a
        transaction) and every reference is checked before the commit instead."""
        cfg = self.alembic_config()
        with self.write_engine.connect() as conn:
            raw = conn.connection.driver_connection if self.is_sqlite else None
            if raw is not None:
                raw.execute("PRAGMA foreign_keys=OFF")
            try:
                with conn.begin():
                    cfg.attributes["connection"] = conn
                    step(cfg, revision)
                    if raw is not None:
                        broken = conn.exec_driver_sql("PRAGMA foreign_key_check").all()
                        if broken:
                            raise IntegrityViolation(
                                f"the migration left rows referring to missing ones: {broken[:5]}"
                            )
            finally:
                if raw is not None:
                    raw.execute("PRAGMA foreign_keys=ON")

    def check_migrated(self) -> None:
        """Raise NotMigratedError unless the schema is at the code's head revision."""
        current, head = self.current_revision(), self.head_revision()
        if current != head:
            raise NotMigratedError(redact(self.url), current, head)

    def dispose(self) -> None:
        self.engine.dispose()
        if self.write_engine is not self.engine:
            self.write_engine.dispose()


def _first_line(exc: object) -> str:
    return (str(exc).strip().splitlines() or ["unknown error"])[0]


def _integrity_message(exc: IntegrityError) -> str:
    msg = _first_line(exc.orig)
    lowered = msg.lower()
    if "foreign key" in lowered:
        return f"a referenced record does not exist ({msg})"
    if "unique" in lowered or "duplicate" in lowered:
        return f"a record with the same key already exists ({msg})"
    if "check" in lowered:
        return f"a value is outside what is allowed ({msg})"
    if "not null" in lowered or "null value" in lowered:
        return f"a required value is missing ({msg})"
    return msg
