"""Databases and database users in the host's MariaDB, with an allow-list of privileges.

GDCAS's files are the source of truth: ``db/databases`` (``<database> <account>`` a line) and
``db/users`` (``<user>:<password hash>:<database>:<PRIV,...>``, root's alone, 0600). From them
each change writes the account's SQL file, ``db/<account>.sql`` (``sql_path``), which the
``("sql", path)`` reload step of ``automation.plan`` runs as MariaDB's administrator on the
host (``HostLayout.mariadb``). The file states the account's whole state, so it may be run any
number of times (the step is run again after an interrupted attempt, and after a rollback with
the file as it was): it creates what is missing, sets each user's password hash, gives each
user exactly its listed privileges on its one database (revoked and granted again only when
MariaDB's own account of them differs), drops the users the files no longer list, and ends by
checking all of that in MariaDB, failing the step if anything differs.

What MariaDB has that belongs to an account is recorded in MariaDB itself (``gdcas.owned``),
not guessed from the name: ``acme_shop_x`` may be account ``acme``'s or ``acme_shop``'s. A
database or user MariaDB already has that GDCAS did not make for this account is never taken
over (the step fails and says so). A database the files no longer list (a rolled-back create)
is dropped only while it holds no tables, views, routines or events: a convergence never
destroys data. (The first database of an account, rolled back, leaves the SQL file absent, so
nothing runs; it stays, empty and granted to no one, until the account's next database change.)

Passwords reach the host only as MariaDB's ``mysql_native_password`` hash, ``*`` + the upper
hex of SHA1(SHA1(password)), in ``db/users`` and the SQL file, given to MariaDB by ``IDENTIFIED
BY PASSWORD``. It is a weak, unsalted hash, but it is the only stored form of MariaDB 10.11's
built-in plugins that can be made here without the plain password on the host: ``ed25519`` is
a plugin each host would have to load, with an unsalted stored form no library here computes;
there is no Argon2 plugin, and ``parsec`` (salted) arrives only with MariaDB 11.6.

In a ``GRANT ... ON `db`.*`` MariaDB reads ``_`` as a wildcard (``bob_x_y`` also matches
account ``bobxx``'s ``bobxx_y``), so grants name the database with ``\\_``.
"""

# The SQL here is made of constant fragments and names that passed identifiers.db_name (or
# identifiers.account) again where they are put in: _lit, _ident, _grant_db. The file is run
# by the mariadb client on the host; there are no bound parameters to use there.
# ruff: noqa: S608

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import ClassVar, Literal

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator

from automation import identifiers
from automation.changes.base import (
    AccountName,
    ChangeBase,
    DbName,
    Password,
    Workspace,
    read_lines,
    write_lines,
)
from automation.clients import Endpoint
from automation.clients.database import database_error, grants_error
from automation.errors import ChangeConflict
from automation.host import HostLayout

DATABASES = "db/databases"
DB_USERS = "db/users"
ALLOWED_PRIVILEGES = frozenset(
    {
        "SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "INDEX", "ALTER",
        "CREATE TEMPORARY TABLES", "LOCK TABLES", "EXECUTE", "CREATE VIEW", "SHOW VIEW",
        "CREATE ROUTINE", "ALTER ROUTINE", "TRIGGER", "REFERENCES", "EVENT",
    }
)  # fmt: skip
USER_HOST = "%"  # who may connect is up to where the host's MariaDB listens
_NATIVE_HASH = re.compile(r"\*[0-9A-F]{40}", re.ASCII)


def sql_path(account: str) -> str:
    """The account's SQL file on the host (``account`` a validated account name)."""
    return f"db/{identifiers.account(account)}.sql"


def sql_step(account: str) -> tuple[str, ...]:
    """The reload step that makes MariaDB hold what the files say of ``account``."""
    return ("sql", sql_path(account))


def native_hash(password: str) -> str:
    """MariaDB's ``mysql_native_password`` stored form of a password (``PASSWORD('...')``)."""
    inner = hashlib.sha1(password.encode(), usedforsecurity=False).digest()
    return "*" + hashlib.sha1(inner, usedforsecurity=False).hexdigest().upper()


def _owned(account: str, name: str, what: str) -> None:
    if not name.startswith(f"{account}_"):
        raise ValueError(f"{what} {name!r}: must start with the account prefix '{account}_'")


# --- what the files say -----------------------------------------------------------------------


@dataclass(frozen=True)
class DbUser:
    name: str
    password_hash: str  # mysql_native_password
    database: str
    privileges: tuple[str, ...]  # sorted, each in ALLOWED_PRIVILEGES


def _privileges(text: str) -> tuple[str, ...]:
    privs = tuple(sorted(set(text.split(","))))
    if not privs or any(p not in ALLOWED_PRIVILEGES for p in privs):
        raise ValueError(f"privileges {text!r} are not GDCAS's")
    return privs


def databases_of(ws_lines: list[str]) -> dict[str, str]:
    """``db/databases`` as database -> account, each name checked again (the file is read back
    from the host and its names go into SQL)."""
    out: dict[str, str] = {}
    for line in ws_lines:
        name, _, account = line.partition(" ")
        try:
            out[identifiers.db_name(name)] = identifiers.account(account)
        except ValueError:
            raise ChangeConflict(f"{DATABASES}: line {line[:80]!r} is not GDCAS's") from None
    return out


def users_of(ws_lines: list[str]) -> dict[str, DbUser]:
    """``db/users`` by user name, each field checked again (see ``databases_of``)."""
    out: dict[str, DbUser] = {}
    for line in ws_lines:
        fields = line.split(":")
        try:
            if len(fields) != 4 or not identifiers.fullmatch(_NATIVE_HASH, fields[1]):
                raise ValueError(line)
            user = DbUser(
                identifiers.db_name(fields[0]),
                fields[1],
                identifiers.db_name(fields[2]),
                _privileges(fields[3]),
            )
        except ValueError:
            raise ChangeConflict(
                f"{DB_USERS}: the line of {fields[0][:40]!r} is not GDCAS's "
                "(a MariaDB password hash is needed: set the user's password again)"
            ) from None
        out[user.name] = user
    return out


def user_line(user: DbUser) -> str:
    return f"{user.name}:{user.password_hash}:{user.database}:{','.join(user.privileges)}"


# --- the SQL that makes MariaDB hold it -------------------------------------------------------


def _lit(name: str) -> str:
    """A validated name as an SQL string literal (its characters need no escaping)."""
    return f"'{identifiers.db_name(name)}'"


def _ident(name: str) -> str:
    return f"`{identifiers.db_name(name)}`"


def _grant_db(name: str) -> str:
    """The database as a GRANT names it: ``_`` escaped, else it matches any one character."""
    return "`" + identifiers.db_name(name).replace("_", "\\_") + "`"


def _account_of_user(name: str) -> str:
    return f"{_ident(name)}@'{USER_HOST}'"


def _in(column: str, names: list[str]) -> str:
    return f"{column} IN ({', '.join(_lit(n) for n in names)})" if names else "FALSE"


def _grants_now(user: str) -> str:
    """An SQL expression: every privilege MariaDB has for the user, at every level, as text."""
    grantee = f"'''{identifiers.db_name(user)}''@''{USER_HOST}'''"
    who = f"User = {_lit(user)} AND Host = '{USER_HOST}'"
    schema = (
        "SELECT GROUP_CONCAT(CONCAT(TABLE_SCHEMA, ':', PRIVILEGE_TYPE, ':', IS_GRANTABLE) "
        "ORDER BY BINARY PRIVILEGE_TYPE SEPARATOR ',') "
        f"FROM information_schema.SCHEMA_PRIVILEGES WHERE GRANTEE = {grantee}"
    )
    glob = (
        "SELECT GROUP_CONCAT(CONCAT(PRIVILEGE_TYPE, ':', IS_GRANTABLE) "
        "ORDER BY BINARY PRIVILEGE_TYPE SEPARATOR ',') "
        f"FROM information_schema.USER_PRIVILEGES WHERE GRANTEE = {grantee}"
    )
    counts = [
        f"(SELECT COUNT(*) FROM information_schema.TABLE_PRIVILEGES WHERE GRANTEE = {grantee})",
        f"(SELECT COUNT(*) FROM information_schema.COLUMN_PRIVILEGES WHERE GRANTEE = {grantee})",
        f"(SELECT COUNT(*) FROM mysql.procs_priv WHERE {who})",
        f"(SELECT COUNT(*) FROM mysql.roles_mapping WHERE {who})",
        f"(SELECT COUNT(*) FROM mysql.proxies_priv WHERE {who})",
    ]
    return f"CONCAT_WS('|', IFNULL(({schema}), ''), IFNULL(({glob}), ''), {', '.join(counts)})"


def _grants_wanted(user: DbUser) -> str:
    """What ``_grants_now`` reads when the user has exactly its privileges on its database."""
    db = user.database.replace("_", "\\_")
    schema = ",".join(f"{db}:{p}:NO" for p in sorted(user.privileges))
    return "'" + "|".join([schema.replace("\\", "\\\\"), "USAGE:NO", "0", "0", "0", "0", "0"]) + "'"


def _fail(message: str) -> str:
    # Messages are made of validated names and our own words: no quote to escape.
    assert "'" not in message and "\\" not in message
    return f"SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'GDCAS: {message}';"


def account_sql(account: str, databases: list[str], users: list[DbUser]) -> str:
    """The SQL file that makes MariaDB hold exactly ``databases`` and ``users`` of ``account``
    (see the module docstring); every name in it is validated again here."""
    account = identifiers.account(account)
    acct = f"'{account}'"
    dbs, names = sorted(databases), sorted(u.name for u in users)
    w: list[str] = []
    a = w.append
    a(
        f"-- GDCAS: what MariaDB holds for account {account}, made from {DATABASES} and "
        f"{DB_USERS}.\n-- Generated at each change (do not edit); run whole, any number of "
        "times, by the host's sql step.\n"
    )
    # The session's own mode: the literals below mean what they say whatever the server's.
    a("SET SESSION sql_mode = 'STRICT_ALL_TABLES,NO_ENGINE_SUBSTITUTION';\n")
    a("CREATE DATABASE IF NOT EXISTS `gdcas`;\n")
    a(
        "CREATE TABLE IF NOT EXISTS `gdcas`.`owned` (kind VARCHAR(8) NOT NULL, "
        "name VARCHAR(64) NOT NULL, account VARCHAR(32) NOT NULL, PRIMARY KEY (kind, name)) "
        "ENGINE=InnoDB;\n"
    )
    a("DELIMITER //\nBEGIN NOT ATOMIC\n")
    a("  DECLARE done INT DEFAULT FALSE;\n  DECLARE k VARCHAR(8);\n  DECLARE n VARCHAR(64);\n")
    a(
        "  DECLARE gone CURSOR FOR SELECT kind, name FROM `gdcas`.`owned` "
        f"WHERE account = {acct} AND NOT ((kind = 'database' AND {_in('name', dbs)}) "
        f"OR (kind = 'user' AND {_in('name', names)}));\n"
    )
    a("  DECLARE CONTINUE HANDLER FOR NOT FOUND SET done = TRUE;\n")
    a("  -- Nothing is taken over: a name MariaDB has that GDCAS did not make for this account.\n")
    exists = {
        "database": "SELECT 1 FROM information_schema.SCHEMATA WHERE SCHEMA_NAME = {}",
        "user": "SELECT 1 FROM mysql.user WHERE User = {}",  # at any host: none is ours
    }
    for kind, listed in (("database", dbs), ("user", names)):
        for name in listed:
            owner = f"SELECT account FROM `gdcas`.`owned` WHERE kind = '{kind}' AND name = "
            owner += _lit(name)
            there = exists[kind].format(_lit(name))
            a(f"  IF IFNULL(({owner}), {acct}) <> {acct}\n")
            a(f"     OR (EXISTS ({there}) AND NOT EXISTS ({owner})) THEN\n")
            taken = f"MariaDB has a {kind} {name} that GDCAS did not make for {account}"
            a(f"    {_fail(taken)}\n  END IF;\n")
    # Recorded before it is made: a run cut in between leaves a record, never an orphan.
    rows = [f"('database', {_lit(d)}, {acct})" for d in dbs]
    rows += [f"('user', {_lit(u)}, {acct})" for u in names]
    if rows:
        a(f"  INSERT IGNORE INTO `gdcas`.`owned` (kind, name, account) VALUES {', '.join(rows)};\n")
    for db in dbs:
        a(f"  CREATE DATABASE IF NOT EXISTS {_ident(db)};\n")
    ordered = sorted(users, key=lambda u: u.name)
    for u in ordered:
        who, pw = _account_of_user(u.name), f"'{u.password_hash}'"
        assert identifiers.fullmatch(_NATIVE_HASH, u.password_hash)
        a(f"  CREATE USER IF NOT EXISTS {who} IDENTIFIED BY PASSWORD {pw};\n")
        a(f"  ALTER USER {who} IDENTIFIED BY PASSWORD {pw};\n")
        privs = ", ".join(_privileges(",".join(u.privileges)))
        a(f"  IF {_grants_now(u.name)} <> {_grants_wanted(u)} THEN\n")
        a(f"    REVOKE ALL PRIVILEGES, GRANT OPTION FROM {who};\n")
        a(f"    GRANT {privs} ON {_grant_db(u.database)}.* TO {who};\n")
        a("  END IF;\n")
    a("  -- What the account had and the files no longer list: its users go; its databases go\n")
    a("  -- only while they hold nothing (no convergence destroys data).\n")
    a("  OPEN gone;\n  drop_loop: LOOP\n    FETCH gone INTO k, n;\n")
    a("    IF done THEN LEAVE drop_loop; END IF;\n")
    a("    IF k = 'user' THEN\n")
    a(f"      EXECUTE IMMEDIATE CONCAT('DROP USER IF EXISTS ', QUOTE(n), '@''{USER_HOST}''');\n")
    a("      DELETE FROM `gdcas`.`owned` WHERE kind = 'user' AND name = n;\n")
    a(
        "    ELSEIF NOT EXISTS (SELECT 1 FROM information_schema.TABLES WHERE TABLE_SCHEMA = n)\n"
        "      AND NOT EXISTS (SELECT 1 FROM information_schema.ROUTINES "
        "WHERE ROUTINE_SCHEMA = n)\n"
        "      AND NOT EXISTS (SELECT 1 FROM information_schema.EVENTS "
        "WHERE EVENT_SCHEMA = n) THEN\n"
    )
    a("      EXECUTE IMMEDIATE CONCAT('DROP DATABASE IF EXISTS `', REPLACE(n, '`', '``'), '`');\n")
    a("      DELETE FROM `gdcas`.`owned` WHERE kind = 'database' AND name = n;\n")
    a("    END IF;\n  END LOOP;\n  CLOSE gone;\n")
    a("  -- MariaDB now holds what the files say, or the step fails.\n")
    for db in dbs:
        there = exists["database"].format(_lit(db))
        a(f"  IF NOT EXISTS ({there}) THEN\n    {_fail(f'database {db} is missing')}\n")
        a("  END IF;\n")
    for u in ordered:
        login = (
            f"SELECT 1 FROM mysql.user WHERE User = {_lit(u.name)} AND Host = '{USER_HOST}' "
            f"AND plugin = 'mysql_native_password' AND authentication_string = "
            f"'{u.password_hash}'"
        )
        a(f"  IF NOT EXISTS ({login}) OR {_grants_now(u.name)} <> {_grants_wanted(u)}")
        a(f" THEN\n    {_fail(f'user {u.name} is not as the files say')}\n  END IF;\n")
    a("END //\nDELIMITER ;\n")
    return "".join(w)


# --- the change kinds -------------------------------------------------------------------------


class _DatabaseChange(ChangeBase):
    """What both kinds share: the account's SQL file, rewritten whole from the files, and the
    reload step that runs it."""

    account: AccountName
    # Every user's hash the change's files carry (theirs too: db/users is the host's), so that
    # a dry run shows none of them.
    _seen_hashes: list[str] = PrivateAttr(default_factory=list)

    def target(self) -> str:
        return "db"

    def secret_hashes(self) -> list[str]:
        return [*super().secret_hashes(), *self._seen_hashes]

    def reads(self) -> list[str]:
        return [DATABASES, DB_USERS, sql_path(self.account)]

    def services(self, layout: HostLayout) -> set[tuple[str, ...]]:
        layout.service_port("database")
        return {sql_step(self.account)}

    def _refuse_other_accounts_names(self, dbs: dict[str, str], name: str) -> None:
        """A name that also starts with a longer account's prefix (``acme_shop_x`` for account
        ``acme`` while there is an account ``acme_shop``) would read as that account's."""
        for other in sorted({a for a in dbs.values() if a != self.account}):
            if name.startswith(f"{other}_"):
                raise ChangeConflict(
                    f"{name} starts with the prefix of account {other}: choose another name"
                )

    def _write_sql(self, ws: Workspace, dbs: dict[str, str], users: dict[str, DbUser]) -> None:
        self._seen_hashes = sorted({u.password_hash for u in users.values()})
        mine = [d for d, a in dbs.items() if a == self.account]
        their_users = [u for u in users.values() if dbs.get(u.database) == self.account]
        ws.write(sql_path(self.account), account_sql(self.account, mine, their_users), mode=0o600)
        ws.reloads |= self.services(ws.layout)


class DatabaseCreate(_DatabaseChange):
    kind: Literal["database_create"] = "database_create"
    name: DbName
    verified_by: ClassVar[str] = (
        "MariaDB on the host lists the new database, asked by its own client as the "
        "database administrator"
    )

    @model_validator(mode="after")
    def _prefix(self) -> DatabaseCreate:
        _owned(self.account, self.name, "database")
        return self

    def apply(self, ws: Workspace) -> None:
        ws.layout.service_port("database")
        dbs = databases_of(read_lines(ws, DATABASES))
        users = users_of(read_lines(ws, DB_USERS))
        if self.name in dbs:
            raise ChangeConflict(f"database {self.name} already exists")
        self._refuse_other_accounts_names(dbs, self.name)
        dbs[self.name] = self.account
        write_lines(ws, DATABASES, [f"{d} {a}" for d, a in dbs.items()])
        self._write_sql(ws, dbs, users)

    def check_by_client(self, at: Endpoint) -> str | None:
        return database_error(at, identifiers.db_name(self.name))

    def describe(self) -> str:
        return f"create database {self.name} for account {self.account}"


class DatabaseUserCreate(_DatabaseChange):
    kind: Literal["database_user_create"] = "database_user_create"
    database: DbName
    username: DbName
    password: Password
    privileges: tuple[str, ...] = Field(min_length=1, max_length=len(ALLOWED_PRIVILEGES))
    secret_fields = ("password",)
    verified_by: ClassVar[str] = (
        "the new user logs in to MariaDB over the network with its password and has exactly "
        "the granted privileges, on that database and no other"
    )

    @field_validator("privileges")
    @classmethod
    def _allowed(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        # ASCII first: str.upper() maps look-alikes onto the allow-list (U+017F LONG S -> 'S').
        bad = [p for p in value if not p.isascii() or p.upper() not in ALLOWED_PRIVILEGES]
        if bad:
            raise ValueError(
                f"privileges {bad} are not allowed; "
                f"allowed: {', '.join(sorted(ALLOWED_PRIVILEGES))}"
            )
        return tuple(sorted({p.upper() for p in value}))

    @model_validator(mode="after")
    def _prefix(self) -> DatabaseUserCreate:
        _owned(self.account, self.database, "database")
        _owned(self.account, self.username, "database user")
        return self

    def secret_hash(self, name: str) -> str:
        """The password's hash is MariaDB's native one (see the module docstring), not the
        Argon2id of the other kinds: it is what the host needs, and so the one kept with a
        stored change (``actors.changes.stored``), redacted from dry runs, and used when the
        change is rebuilt from the SCDB (where the password itself is not kept)."""
        if name != "password":
            return super().secret_hash(name)
        if name not in self._hashes:
            self._hashes[name] = native_hash(self.password.get_secret_value())
        value = self._hashes[name]
        if not identifiers.fullmatch(_NATIVE_HASH, value):
            raise ChangeConflict(
                "this database user change was stored with a password hash MariaDB cannot "
                "use: request it again"
            )
        return value

    def apply(self, ws: Workspace) -> None:
        ws.layout.service_port("database")
        dbs = databases_of(read_lines(ws, DATABASES))
        users = users_of(read_lines(ws, DB_USERS))
        if dbs.get(self.database) != self.account:
            raise ChangeConflict(f"account {self.account} has no database {self.database}")
        if self.username in users:
            raise ChangeConflict(f"database user {self.username} already exists")
        self._refuse_other_accounts_names(dbs, self.username)
        users[self.username] = DbUser(
            self.username, self.secret_hash("password"), self.database, self.privileges
        )
        write_lines(ws, DB_USERS, [user_line(u) for u in users.values()], mode=0o600)
        self._write_sql(ws, dbs, users)

    def check_by_client(self, at: Endpoint) -> str | None:
        secret: SecretStr = self.password
        # Without the password at hand (a change the executor found in the SCDB on its own,
        # not handed over with its request), root reads the grants on the host instead.
        password = secret.get_secret_value() if self.secret_known("password") else None
        return grants_error(at, self.username, password, self.database, self.privileges)

    def describe(self) -> str:
        return (
            f"create database user {self.username} on {self.database} with "
            f"{', '.join(self.privileges)} (password set)"
        )
