"""Databases and database users on a host with a real, private MariaDB: what the new user can do
(as its own program would, with PyMySQL over TCP), what it cannot (another statement, another
account's database), a rollback, a resend, a host without MariaDB, and names that never reach
a host."""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pymysql  # type: ignore[import-untyped]
import pytest

from automation.changes import parse_change
from automation.changes.database import DATABASES, DB_USERS, native_hash, sql_path
from automation.clients import Endpoint
from automation.clients.database import (
    connect,
    database_error,
    grants,
    grants_error,
    login_error,
)
from automation.errors import ChangeValidationError
from automation.executor.executor import Executor
from automation.executor.outcome import ChangeOutcome, OutcomeCollector
from automation.executor.request import ChangeRequest
from automation.facts import read_fact
from automation.local_hosts.host import LocalHost
from automation.local_hosts.mariadb import LocalMariaDB
from automation.plan import reload_command
from tests.automation.conftest import change, journal, request
from tests.desk import wait_until
from tests.hosts import lock_free

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def host(hosts_base: Path) -> Iterator[LocalHost]:
    with LocalHost(
        hosts_base, "dbhost", with_named=False, with_nginx=False, services=("database",)
    ) as h:
        yield h


@pytest.fixture(scope="module")
def bare(hosts_base: Path) -> Iterator[LocalHost]:
    """A host that runs no MariaDB (sshd only)."""
    with LocalHost(hosts_base, "nodbhost", with_named=False, with_nginx=False) as h:
        yield h


@pytest.fixture
def collector() -> OutcomeCollector:
    return OutcomeCollector()


@pytest.fixture
def executor(host: LocalHost, collector: OutcomeCollector) -> Iterator[Executor]:
    ex = Executor(collector, exec_timeout=10.0, connect_timeout=2.0, backoff_max=0.5)
    ex.add_host(host.spec())
    yield ex
    ex.close()


def mariadb(host: LocalHost) -> LocalMariaDB:
    service = host.services["database"]
    assert isinstance(service, LocalMariaDB)
    return service


def admin(host: LocalHost, sql: str) -> list[str]:
    """What MariaDB's administrator (root over the socket) reads: one line a row."""
    out = subprocess.run(
        [*mariadb(host).client_argv(), "-N", "-B", "-r", "-e", sql],
        capture_output=True, text=True, check=True, timeout=20,
    ).stdout  # fmt: skip
    return [line for line in out.splitlines() if line]


def endpoint(host: LocalHost) -> Endpoint:
    """The host's services as the executor's clients reach them; its shell is this machine's
    (the local host's tools run here), as the executor's is the host's over SSH."""

    def shell(script: str) -> tuple[int, str]:
        done = subprocess.run(["sh", "-c", script], capture_output=True, text=True, timeout=20)
        return done.returncode, done.stdout + done.stderr

    return Endpoint("127.0.0.1", host.layout(), shell=shell)


def apply(ex: Executor, col: OutcomeCollector, reqs: list[ChangeRequest]) -> list[ChangeOutcome]:
    ex.submit_many(reqs)
    got = col.wait([r.change_id for r in reqs], timeout=60)
    return [got[r.change_id] for r in reqs]


def database(account: str, name: str) -> Any:
    return change("database_create", account=account, name=name)


def user(account: str, db: str, name: str, privileges: list[str], password: str = PASSWORD) -> Any:
    return change("database_user_create", account=account, database=db, username=name,
                  password=password, privileges=privileges)  # fmt: skip


def refused(exc: pytest.ExceptionInfo[pymysql.err.MySQLError]) -> int:
    return int(exc.value.args[0])


def test_a_user_does_what_it_was_granted_on_its_database_and_nothing_else(
    host: LocalHost, executor: Executor, collector: OutcomeCollector
) -> None:
    # shop_x_y, as a GRANT pattern, would also match account shopxx's shopxx_y ('_' is a
    # wildcard there): the grant must name it literally.
    made = apply(executor, collector, [
        request(host, database("shop", "shop_x_y")),
        request(host, user("shop", "shop_x_y", "shop_app", ["SELECT", "INSERT"])),
        request(host, database("shopxx", "shopxx_y")),
    ])  # fmt: skip
    assert [o.status for o in made] == ["applied"] * 3, [o.error for o in made]
    # What the customer made with a user of their own (GDCAS grants no CREATE here).
    admin(host, "CREATE TABLE shop_x_y.items (id INT PRIMARY KEY, name VARCHAR(20))")
    admin(host, "CREATE TABLE shopxx_y.secrets (s VARCHAR(20)); "
                "INSERT INTO shopxx_y.secrets VALUES ('theirs')")  # fmt: skip
    at = endpoint(host)
    conn = connect(at, "shop_app", PASSWORD, "shop_x_y")
    try:
        with conn.cursor() as cur:
            cur.execute("INSERT INTO items VALUES (1, 'lamp')")
            conn.commit()
            cur.execute("SELECT name FROM items")
            assert cur.fetchall() == (("lamp",),)
            for denied in ("DELETE FROM items", "DROP TABLE items", "DROP DATABASE shop_x_y",
                           "CREATE TABLE more (a INT)", "SELECT * FROM shopxx_y.secrets",
                           "USE shopxx_y", "SELECT user FROM mysql.user"):  # fmt: skip
                with pytest.raises(pymysql.err.MySQLError) as exc:
                    cur.execute(denied)
                assert refused(exc) in (1044, 1142), denied  # access denied, database / table
            cur.execute("SHOW DATABASES")
            assert {row[0] for row in cur.fetchall()} == {"information_schema", "shop_x_y"}
    finally:
        conn.close()
    assert admin(host, "SELECT COUNT(*) FROM shop_x_y.items") == ["1"]
    lines = grants(at, "shop_app", PASSWORD)
    assert lines[1:] == ["GRANT SELECT, INSERT ON `shop\\_x\\_y`.* TO `shop_app`@`%`"]
    assert grants_error(at, "shop_app", PASSWORD, "shop_x_y", ("INSERT", "SELECT")) is None
    assert "not DELETE" in (grants_error(at, "shop_app", PASSWORD, "shop_x_y", ("DELETE",)) or "")
    assert login_error(at, "shop_app", "wrong horse battery") is not None
    assert database_error(at, "shop_x_y") is None
    assert "does not list the database shop_nothere" in (database_error(at, "shop_nothere") or "")
    # The host has hashes only; the facts read back what MariaDB was made to hold.
    for rel in (DB_USERS, sql_path("shop")):
        text = (host.root / rel).read_text()
        assert PASSWORD not in text and native_hash(PASSWORD) in text
        assert (host.root / rel).stat().st_mode & 0o777 == 0o600
    files = {p: (host.root / p).read_text() for p in (DATABASES, DB_USERS)}
    assert read_fact("databases", "shop", files) == [
        {"database": "shop_x_y", "users": [{"username": "shop_app",
                                            "privileges": ["INSERT", "SELECT"]}]}
    ]  # fmt: skip
    assert read_fact("databases", "shopxx", files) == [{"database": "shopxx_y", "users": []}]


def test_the_sql_step_run_again_changes_nothing_and_puts_back_a_hand_made_grant(
    host: LocalHost, executor: Executor, collector: OutcomeCollector
) -> None:
    made = apply(executor, collector, [
        request(host, database("rerun", "rerun_db")),
        request(host, user("rerun", "rerun_db", "rerun_app", ["SELECT"])),
    ])  # fmt: skip
    assert [o.status for o in made] == ["applied"] * 2
    step = reload_command(host.layout(), ("sql", sql_path("rerun")))

    def state() -> list[str]:
        return admin(host, "SHOW GRANTS FOR `rerun_app`@`%`") + admin(
            host, "SELECT kind, name FROM gdcas.owned WHERE account = 'rerun' ORDER BY 1, 2"
        )

    before = state()
    for _ in range(2):
        subprocess.run(["sh", "-c", step], check=True, capture_output=True, timeout=20)
        assert state() == before
    # An administrator's extra grant by hand: the account's next change takes it back.
    admin(host, "GRANT DELETE, DROP ON *.* TO `rerun_app`@`%`")
    assert (
        apply(executor, collector, [request(host, database("rerun", "rerun_two"))])[0].status
        == "applied"
    )
    assert admin(host, "SHOW GRANTS FOR `rerun_app`@`%`") == before[:2]


def test_a_failed_verification_rolls_the_user_back(host: LocalHost) -> None:
    col = OutcomeCollector()
    doomed = request(host, user("roll", "roll_db", "roll_app", ["SELECT"]))
    doomed_db = request(host, database("roll", "roll_more"))
    bad = {doomed.change_id, doomed_db.change_id}
    ex = Executor(col, exec_timeout=10.0,
                  verify_hook=lambda r: "forced" if r.change_id in bad else None)  # fmt: skip
    ex.add_host(host.spec())
    try:
        first = apply(ex, col, [request(host, database("roll", "roll_db"))])
        assert first[0].status == "applied"
        [out] = apply(ex, col, [doomed])
        [out_db] = apply(ex, col, [doomed_db])
    finally:
        ex.close()
    # A database made and taken back (it held nothing yet): MariaDB has it no more.
    assert out_db.status == "rolled_back"
    assert admin(host, "SHOW DATABASES LIKE 'roll\\_more'") == []
    assert "roll_more" not in (host.root / DATABASES).read_text()
    assert out.status == "rolled_back" and "forced" in (out.error or "")
    assert login_error(endpoint(host), "roll_app", PASSWORD) is not None
    assert admin(host, "SELECT COUNT(*) FROM mysql.user WHERE User = 'roll_app'") == ["0"]
    assert "roll_app" not in (host.root / DB_USERS).read_text()
    assert (journal(host) / doomed.change_id).read_text().startswith("rolled_back")
    assert admin(host, "SHOW DATABASES LIKE 'roll\\_db'") == ["roll_db"]  # the kept change


def test_the_same_change_sent_twice_applies_once(
    host: LocalHost, executor: Executor, collector: OutcomeCollector
) -> None:
    apply(executor, collector, [request(host, database("twice", "twice_db"))])
    req = request(host, user("twice", "twice_db", "twice_app", ["SELECT", "UPDATE"]))
    assert apply(executor, collector, [req])[0].status == "applied"
    collector.outcomes.clear()
    assert apply(executor, collector, [req])[0].status == "already_applied"
    assert admin(host, "SELECT COUNT(*) FROM mysql.user WHERE User = 'twice_app'") == ["1"]
    assert (host.root / DB_USERS).read_text().count("twice_app:") == 1


class HeldClient:
    """The host's ``mariadb`` client wrapped so that, while ``hold()`` is on, a script stops
    right before it: the change's files are in place and journaled, MariaDB not told yet."""

    def __init__(self, directory: Path, host: LocalHost) -> None:
        self.flag, self.reached = directory / "hold-sql", directory / "reached-sql"
        self.command = directory / "held-mariadb"
        self.command.write_text(
            "#!/bin/sh\n"
            f"if [ -e {self.flag} ]; then touch {self.reached}\n"
            f"  while [ -e {self.flag} ]; do sleep 0.01; done\nfi\n"
            'exec mariadb "$@"\n'
        )
        self.command.chmod(0o755)
        argv = mariadb(host).client_argv()
        self.layout = host.layout().model_copy(update={"mariadb": (str(self.command), *argv[1:])})
        self.spec = host.spec().model_copy(update={"layout": self.layout})


def test_a_user_create_resent_after_the_connection_was_lost_exists_once(
    host: LocalHost, tmp_path: Path
) -> None:
    held = HeldClient(tmp_path, host)
    col = OutcomeCollector()
    ex = Executor(col, exec_timeout=5.0, connect_timeout=1.0, backoff_max=0.3)
    ex.add_host(held.spec)
    try:
        apply(ex, col, [request(host, database("lost", "lost_db"))])
        req = request(host, user("lost", "lost_db", "lost_app", ["SELECT", "INSERT"]))
        held.flag.touch()
        ex.submit(req)
        wait_until(held.reached.exists, what="the script waiting before MariaDB is told")
        # The connection is cut there, with the script: journaled, MariaDB never told.
        host.stop_ssh()
        assert (journal(host) / req.change_id).read_text().startswith("applied")
        assert admin(host, "SELECT COUNT(*) FROM mysql.user WHERE User = 'lost_app'") == ["0"]
        held.flag.unlink()
        host.start_ssh()
        out = col.wait([req.change_id], timeout=60)[req.change_id]
        # Its own resend finds it journaled and makes it live (the sql step again), checks it.
        assert out.status == "applied" and out.output.startswith("journal: applied"), out
    finally:
        held.flag.unlink(missing_ok=True)
        if not host.sshd.running:
            host.start_ssh()
        ex.close()
    wait_until(lambda: lock_free(host), what="no script left on the host")
    assert admin(host, "SELECT COUNT(*) FROM mysql.user WHERE User = 'lost_app'") == ["1"]
    at = endpoint(host)
    assert grants_error(at, "lost_app", PASSWORD, "lost_db", ("INSERT", "SELECT")) is None
    # The same request sent once more, by a new executor: once, still.
    col2 = OutcomeCollector()
    ex2 = Executor(col2, exec_timeout=10.0)
    ex2.add_host(host.spec())
    try:
        assert apply(ex2, col2, [req])[0].status == "already_applied"
    finally:
        ex2.close()
    assert admin(host, "SELECT COUNT(*) FROM mysql.user WHERE User = 'lost_app'") == ["1"]


def test_a_host_without_mariadb_refuses_database_changes(bare: LocalHost) -> None:
    col = OutcomeCollector()
    ex = Executor(col, exec_timeout=10.0)
    ex.add_host(bare.spec())
    try:
        outs = apply(
            ex,
            col,
            [
                request(bare, database("nodb", "nodb_main")),
                request(bare, user("nodb", "nodb_main", "nodb_app", ["SELECT"])),
            ],
        )
    finally:
        ex.close()
    for out in outs:
        assert out.status == "failed"
        assert "runs no database (MariaDB) server" in (out.error or ""), out.error
    assert not (bare.root / "db").exists()


@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("database_create", {"account": "shop", "name": "shop_a`b"}),
        ("database_create", {"account": "shop", "name": "shop_a'; DROP DATABASE mysql; -- "}),
        ("database_create", {"account": "shop", "name": 'shop_a"b'}),
        ("database_create", {"account": "shop", "name": "shop_\u0430"}),  # Cyrillic a
        ("database_create", {"account": "shop", "name": "shop_\uff41"}),  # fullwidth a
        ("database_create", {"account": "shop", "name": "shop_\u212a"}),  # KELVIN SIGN
        ("database_create", {"account": "shop", "name": "shop_a\n"}),
        ("database_create", {"account": "shop", "name": "SHOP_A"}),
        ("database_create", {"account": "shop", "name": "shop_" + "a" * 28}),  # 33 characters
        ("database_create", {"account": "shop", "name": "shopxx_y"}),  # another's prefix
        ("database_create", {"account": "shop`", "name": "shop`_a"}),
        ("database_user_create", {"username": "shop_u`@`%"}),
        ("database_user_create", {"username": "other_u"}),
        ("database_user_create", {"username": "shop_\u0131"}),  # dotless i
        ("database_user_create", {"database": "shopxx_y"}),
        ("database_user_create", {"database": "shop_x_y`.* TO x; --"}),
        ("database_user_create", {"privileges": ["ALL PRIVILEGES"]}),
        ("database_user_create", {"privileges": ["GRANT OPTION"]}),
        ("database_user_create", {"privileges": ["SUPER"]}),
        ("database_user_create", {"privileges": ["FILE"]}),
        ("database_user_create", {"privileges": ["SELECT, FILE"]}),
        ("database_user_create", {"privileges": ["SELECT ON *.* TO x; --"]}),
        ("database_user_create", {"privileges": []}),
    ],
)
def test_hostile_names_are_refused_before_anything_reaches_the_host(
    kind: str, params: dict[str, Any]
) -> None:
    base = {"account": "shop", "database": "shop_x_y", "username": "shop_u",
            "password": PASSWORD, "privileges": ["SELECT"]}  # fmt: skip
    full = {**base, **params} if kind == "database_user_create" else params
    with pytest.raises(ChangeValidationError):
        parse_change(kind, full)  # no change object: there is nothing to send


def test_a_name_with_a_longer_accounts_prefix_is_refused(
    host: LocalHost, executor: Executor, collector: OutcomeCollector
) -> None:
    """``acme_eu_extra`` would read as account ``acme_eu``'s: account ``acme`` may not make it
    once ``acme_eu`` has a database here (nothing is written, MariaDB untouched)."""
    assert (
        apply(executor, collector, [request(host, database("acme_eu", "acme_eu_main"))])[0].status
        == "applied"
    )
    before = (host.root / DATABASES).read_text()
    req = request(host, database("acme", "acme_eu_extra"))
    [out] = apply(executor, collector, [req])
    assert out.status == "failed" and "prefix of account acme_eu" in (out.error or "")
    assert (host.root / DATABASES).read_text() == before
    assert not (journal(host) / req.change_id).exists()
    assert admin(host, "SHOW DATABASES LIKE 'acme\\_eu\\_extra'") == []


def test_a_dry_run_shows_no_password_hash_and_applies_nothing(
    host: LocalHost, executor: Executor, collector: OutcomeCollector
) -> None:
    apply(
        executor,
        collector,
        [
            request(host, database("dry", "dry_db")),
            request(host, user("dry", "dry_db", "dry_one", ["SELECT"])),
        ],
    )
    before = (host.root / DB_USERS).read_text()
    plan = executor.dry_run(host.host_id, user("dry", "dry_db", "dry_two", ["SELECT"],
                                               password="another horse battery"))  # fmt: skip
    assert "dry_two" in plan and "IDENTIFIED BY PASSWORD '<redacted>'" in plan
    assert not re.search(r"\*[0-9A-F]{40}", plan)  # neither its own hash nor the others'
    assert "another horse battery" not in plan
    assert (host.root / DB_USERS).read_text() == before
    assert admin(host, "SELECT COUNT(*) FROM mysql.user WHERE User = 'dry_two'") == ["0"]


def test_a_change_rebuilt_from_the_scdb_keeps_its_mariadb_hash() -> None:
    """The SCDB keeps no password, only the change's hash (``actors.changes.stored``): for
    this kind that is the native hash the host needs, so a rebuilt change writes the same."""
    from actors.changes.stored import rebuild_change, stored_params

    made = user("keep", "keep_db", "keep_app", ["SELECT"])
    rebuilt = rebuild_change(made.kind, stored_params(made))
    assert rebuilt.password.get_secret_value() != PASSWORD
    assert rebuilt.secret_hash("password") == native_hash(PASSWORD)


def test_a_database_mariadb_already_has_is_not_taken_over(
    host: LocalHost, executor: Executor, collector: OutcomeCollector
) -> None:
    """MariaDB itself confirms each step (the SQL file checks what it made): a database made
    by hand, not by GDCAS, fails the change, and the files are put back."""
    admin(host, "CREATE DATABASE hand_db")
    req = request(host, database("hand", "hand_db"))
    [out] = apply(executor, collector, [req])
    assert out.status == "failed"
    assert "MariaDB has a database hand_db that GDCAS did not make for hand" in (out.error or "")
    assert "hand_db" not in (host.root / DATABASES).read_text()
    assert not (host.root / sql_path("hand")).exists()
    assert not (journal(host) / req.change_id).exists()
