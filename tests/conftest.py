"""Shared fixtures: real databases (SQLite and PostgreSQL), real Redis, test data factories."""

from __future__ import annotations

import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from store.db import Database
from store.models import Base

POSTGRES_ADMIN_URL = os.environ.get(
    "SITEDESK_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
REDIS_URL = os.environ.get("SITEDESK_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
# The desk's mail in the tests: the key of its signed Message-IDs, and the addresses it takes.
MAIL_SECRET = bytes.fromhex("5eed" * 16)
MAIL_ADDRESSES = {"support@sitedesk.test": "general", "billing@sitedesk.test": "billing"}
AUTO_REPLIES_PER_HOUR = 3  # the desk's cap on auto-replies to one address, in the tests


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Browser tests run against the SQLite desk only: a page reads the same API on either
    database, and the API tests, which run on both, are where the databases differ. A browser
    test costs tens of seconds; twice would take the suite past its time."""
    keep, dropped = [], []
    for item in items:
        params = getattr(item, "callspec", None)
        backend = params.params.get("desk_session") if params is not None else None
        on_postgres = backend == "postgresql"
        (dropped if item.get_closest_marker("browser") and on_postgres else keep).append(item)
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = keep


class PostgresServer:
    """Creates throw-away databases on the test PostgreSQL server."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = admin_url
        self.engine = create_engine(admin_url, isolation_level="AUTOCOMMIT")
        self.created: list[str] = []

    def new_database(self) -> str:
        name = f"sitedesk_test_{secrets.token_hex(4)}"
        with self.engine.connect() as conn:
            conn.execute(text(f'CREATE DATABASE "{name}"'))
        self.created.append(name)
        return make_url(self.admin_url).set(database=name).render_as_string(hide_password=False)

    def drop_all(self) -> None:
        with self.engine.connect() as conn:
            for name in self.created:
                conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        self.engine.dispose()


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer(POSTGRES_ADMIN_URL)
    try:
        with server.engine.connect() as conn:
            conn.execute(text("SELECT 1"))
    except Exception as exc:
        pytest.fail(f"PostgreSQL is not reachable at {POSTGRES_ADMIN_URL}: {exc}")
    yield server
    server.drop_all()


@pytest.fixture(scope="session")
def sqlite_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("sqlite")


def new_database_url(kind: str, postgres: PostgresServer, sqlite_dir: Path) -> str:
    if kind == "postgresql":
        return postgres.new_database()
    return f"sqlite:///{sqlite_dir / f'{secrets.token_hex(4)}.db'}"


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def migrated_db(
    request: pytest.FixtureRequest, postgres: PostgresServer, sqlite_dir: Path
) -> Iterator[Database]:
    """One migrated database per backend for the whole session."""
    db = Database(new_database_url(request.param, postgres, sqlite_dir))
    db.upgrade()
    yield db
    db.dispose()


@pytest.fixture
def db(migrated_db: Database) -> Database:
    """The backend's database, emptied before the test."""
    tables = [t.name for t in reversed(Base.metadata.sorted_tables)]
    with migrated_db.write() as s:
        if migrated_db.is_sqlite:
            for name in tables:
                s.execute(text(f'DELETE FROM "{name}"'))
        else:
            s.execute(text("TRUNCATE " + ", ".join(f'"{n}"' for n in tables) + " RESTART IDENTITY"))
    return migrated_db


@pytest.fixture(scope="session")
def hosts_base() -> Iterator[Path]:
    """Where the session's managed hosts live: a directory every user may search but not list
    (nginx's unprivileged workers and a customer's own login must reach the host roots;
    pytest's own temporary directories are root's alone)."""
    base = Path(tempfile.mkdtemp(prefix="gdcas-hosts-"))
    base.chmod(0o711)
    yield base
    shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="session", autouse=True)
def unix_users_removed() -> Iterator[None]:
    """The accounts' Unix users tests/hosts.py `unix_user` made are removed, with their
    crontabs, when the session ends (after every host stopped: this fixture comes first)."""
    yield
    from tests.hosts import remove_unix_users

    remove_unix_users()


@pytest.fixture
def fresh_db_url(request: pytest.FixtureRequest, postgres: PostgresServer, sqlite_dir: Path) -> str:
    """An empty, unmigrated database of the backend named by the test's `backend` param."""
    return new_database_url(request.param, postgres, sqlite_dir)


# -- the running desk (Ray actors + gateway) -------------------------------------------------
@pytest.fixture(scope="session")
def ray_session(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """The session's one local Ray, started the way `sitedesk up` starts it: private, loopback
    only, token auth on."""
    from cluster.ray_runtime import start_ray, stop_ray
    from cluster.settings import ClusterSettings

    start_ray(
        ClusterSettings(
            data_dir=tmp_path_factory.mktemp("ray-data"),
            ray_address=None,
            ray_token_file=None,
            ray_namespace="sitedesk-tests",
            ray_dashboard=False,
            ray_object_store_mb=128,
        )
    )
    try:
        yield
    finally:
        stop_ray()


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
def desk_session(
    request: pytest.FixtureRequest, ray_session: None, postgres: PostgresServer, sqlite_dir: Path
) -> Iterator[Any]:
    """The desk on each backend in turn: SQLite (the embedded default `./scripts/up` ships)
    and PostgreSQL. One deployment at a time, each in its own Ray namespace on the session's
    Ray; pytest runs every desk test of one backend before it moves to the next."""
    from actors.config import ActorConfig
    from actors.mail.settings import MailSettings
    from automation.loopback import free_port
    from cluster.deploy import deploy
    from gateway.platform import Platform
    from gateway.settings import GatewaySettings
    from gateway.smtp import SmtpIntake
    from tests.desk import Desk, LiveServer, seed_sla
    from tests.smtp_sink import SmtpSink

    backend = str(request.param)
    url = new_database_url(backend, postgres, sqlite_dir)
    db = Database(url)
    db.upgrade()
    seed_sla(db)
    namespace = f"sitedesk-tests-{backend}"
    # The desk's outgoing mail goes through a relay: a real SMTP server the tests read back.
    outgoing = SmtpSink().start()
    mail = MailSettings(
        mail_secret=MAIL_SECRET.hex(),
        mail_addresses=MAIL_ADDRESSES,
        mail_from="support@sitedesk.test",
        mail_domain="sitedesk.test",
        smtp_relay=f"smtp://127.0.0.1:{outgoing.port}",
        mail_retry_seconds=0.5,
        mail_auto_replies_per_hour=AUTO_REPLIES_PER_HOUR,
    )
    config = ActorConfig(database_url=url, redis_url=REDIS_URL, namespace=namespace, mail=mail)
    deployment = deploy(config, manual_clock=True)
    # The tests drive the desk far faster than a customer would (and poll it): its API rate
    # limits are high; tests/gateway/test_rate_limits.py meets them on gateways of its own.
    limits = GatewaySettings(requests_per_minute=100_000, tickets_per_minute=10_000,
                             changes_per_minute=10_000, dry_runs_per_minute=10_000)  # fmt: skip
    platform = Platform(db=db, redis_url=REDIS_URL, directory=deployment.directory, config=config,
                        settings=limits)  # fmt: skip
    server = LiveServer(platform).start()
    smtp = SmtpIntake(deployment.directory, mail, port=free_port()).start()
    try:
        yield Desk(
            db=db,
            base_url=f"http://127.0.0.1:{server.port}",
            deployment=deployment,
            smtp_port=smtp.port,
            outgoing=outgoing,
        )
    finally:
        smtp.stop()
        outgoing.stop()
        server.stop()
        deployment.stop()
        db.dispose()


@pytest.fixture
def desk(desk_session: Any) -> Iterator[Any]:
    """The session's desk; what a test leaves open or online is put away when it ends."""
    yield desk_session
    desk_session.reset()
