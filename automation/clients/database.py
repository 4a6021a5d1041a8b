"""MariaDB as a customer's program sees it: does the user log in over the network, and what does
``SHOW GRANTS`` say it may do (PyMySQL, the host's address and ``database_port``); and, for
what only MariaDB's administrator sees (does a database exist), its own client on the host."""

from __future__ import annotations

import re
import shlex

import pymysql  # type: ignore[import-untyped]

from automation import identifiers
from automation.clients import TIMEOUT, Endpoint

# SHOW GRANTS lines: "GRANT <privileges> ON <what> TO <user>[ IDENTIFIED BY ...][ WITH ...]"
_GRANT = re.compile(r"GRANT (?P<privs>.+?) ON (?P<on>\S+) TO (?P<to>\S+)(?P<rest>.*)")
_HASH = re.compile(r" IDENTIFIED (?:BY PASSWORD|VIA \S+ USING) '[^']*'")  # never in a reason


def connect(
    at: Endpoint, user: str, password: str, database: str | None = None
) -> pymysql.Connection:
    """A TCP connection as ``user`` (the caller closes it); pymysql errors as they come."""
    return pymysql.connect(
        host=at.address,
        port=at.port("database"),
        user=user,
        password=password,
        database=database,
        connect_timeout=TIMEOUT,
        read_timeout=TIMEOUT,
        write_timeout=TIMEOUT,
        charset="utf8mb4",
    )


def login_error(at: Endpoint, user: str, password: str) -> str | None:
    """None when ``user`` logs in with ``password``; otherwise MariaDB's answer."""
    try:
        connect(at, user, password).close()
    except pymysql.err.MySQLError as exc:
        return _text(at, exc)
    return None


def grants(at: Endpoint, user: str, password: str) -> list[str]:
    """The user's own ``SHOW GRANTS``, as it sees it after logging in."""
    conn = connect(at, user, password)
    try:
        with conn.cursor() as cur:
            cur.execute("SHOW GRANTS")
            return [str(row[0]) for row in cur.fetchall()]
    finally:
        conn.close()


def admin_grants(at: Endpoint, user: str) -> list[str]:
    """``SHOW GRANTS FOR`` the user, asked by root over the host's socket (no password of the
    user needed); ``user`` is a validated name. Empty when MariaDB has no such user."""
    sql = f"SHOW GRANTS FOR '{user}'@'%'"
    status, out = at.run(f"{shlex.join([*at.layout.mariadb, '-N', '-B', '-e', sql])} 2>/dev/null")
    return [line for line in out.splitlines() if line] if status == 0 else []


def grants_error(
    at: Endpoint,
    user: str,
    password: str | None,
    database: str,
    privileges: tuple[str, ...],
) -> str | None:
    """None when ``user`` logs in and holds exactly ``privileges`` on ``database`` and nothing
    else (no other database, no table or global privilege, no grant option); else what differs.
    (``database`` is a validated name: in a grant MariaDB shows it with ``_`` escaped.)"""
    if password is None:  # no password at hand: root asks on the host instead of a log-in
        lines = admin_grants(at, user)
        if not lines:
            return f"MariaDB has no user {user}"
    else:
        try:
            lines = grants(at, user, password)
        except pymysql.err.MySQLError as exc:
            return _text(at, exc)
    on = "`" + database.replace("_", "\\_") + "`.*"
    seen: set[str] | None = None
    others = []
    for line in lines:
        m = _GRANT.fullmatch(line)
        if m is None:
            others.append(line)
        elif m["on"] == "*.*" and m["privs"] == "USAGE" and "WITH" not in m["rest"]:
            continue  # the log-in itself
        elif m["on"] == on and seen is None and not m["rest"].strip():
            seen = {p.strip() for p in m["privs"].split(",")}
        else:
            others.append(line)
    if others:
        shown = [_HASH.sub("", line) for line in others]
        return f"MariaDB gives {user} more than was granted: {'; '.join(shown)}"
    if seen != set(privileges):
        has = ", ".join(sorted(seen)) if seen else "nothing"
        return f"MariaDB gives {user} {has} on {database}, not {', '.join(sorted(privileges))}"
    return None


def database_error(at: Endpoint, database: str) -> str | None:
    """None when MariaDB lists ``database`` (a validated name), asked on the host by its own
    client as MariaDB's administrator (``HostLayout.mariadb``: root over the socket; no
    network log-in may see every database); otherwise what it answered."""
    name = identifiers.db_name(database)  # [a-z0-9_] only: nothing to escape in the literal
    query = "SELECT SCHEMA_NAME FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = "
    query += f"'{name}'"
    argv = [*at.layout.mariadb, "--skip-print-query-on-error", "-N", "-B", "-e", query]
    status, out = at.run(shlex.join(argv) + " 2>&1")
    if status != 0:
        return f"MariaDB's own client on the host failed: {out.strip()[-300:]}"
    if out.split() != [database]:
        return f"MariaDB on the host does not list the database {database}"
    return None


def _text(at: Endpoint, exc: BaseException) -> str:
    code, message = (*exc.args, None, "")[:2] if exc.args else (None, str(exc))
    if code == 2003:
        return f"MariaDB at {at.address}:{at.port('database')} did not answer: {message}"
    return f"MariaDB refused: {message}" if message else f"MariaDB refused: {exc!r}"
