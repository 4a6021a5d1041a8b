"""Databases and database users, with an allow-list of privileges.

The host keeps the registry (``db/databases``, ``db/users``) and the SQL to run against the
database server (``db/<name>.sql``); there is no database server on the local test hosts.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator, model_validator

from automation.changes.base import (
    AccountName,
    ChangeBase,
    DbName,
    Password,
    Workspace,
    keyed_lines,
    read_lines,
    write_lines,
)
from automation.errors import ChangeConflict

DATABASES = "db/databases"
DB_USERS = "db/users"
ALLOWED_PRIVILEGES = frozenset(
    {
        "SELECT", "INSERT", "UPDATE", "DELETE", "CREATE", "DROP", "INDEX", "ALTER",
        "CREATE TEMPORARY TABLES", "LOCK TABLES", "EXECUTE", "CREATE VIEW", "SHOW VIEW",
        "CREATE ROUTINE", "ALTER ROUTINE", "TRIGGER", "REFERENCES", "EVENT",
    }
)  # fmt: skip


def _owned(account: str, name: str, what: str) -> None:
    if not name.startswith(f"{account}_"):
        raise ValueError(f"{what} {name!r}: must start with the account prefix '{account}_'")


class DatabaseCreate(ChangeBase):
    kind: Literal["database_create"] = "database_create"
    account: AccountName
    name: DbName

    @model_validator(mode="after")
    def _prefix(self) -> DatabaseCreate:
        _owned(self.account, self.name, "database")
        return self

    def target(self) -> str:
        return "db"

    def reads(self) -> list[str]:
        return [DATABASES]

    def apply(self, ws: Workspace) -> None:
        entries = keyed_lines(read_lines(ws, DATABASES), " ")
        if self.name in entries:
            raise ChangeConflict(f"database {self.name} already exists")
        entries[self.name] = f"{self.name} {self.account}"
        write_lines(ws, DATABASES, list(entries.values()))


class DatabaseUserCreate(ChangeBase):
    kind: Literal["database_user_create"] = "database_user_create"
    account: AccountName
    database: DbName
    username: DbName
    password: Password
    privileges: tuple[str, ...] = Field(min_length=1, max_length=len(ALLOWED_PRIVILEGES))
    secret_fields = ("password",)

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

    def target(self) -> str:
        return "db"

    def reads(self) -> list[str]:
        return [DATABASES, DB_USERS]

    def apply(self, ws: Workspace) -> None:
        dbs = keyed_lines(read_lines(ws, DATABASES), " ")
        if self.database not in dbs or dbs[self.database].split(" ")[1] != self.account:
            raise ChangeConflict(f"account {self.account} has no database {self.database}")
        users = keyed_lines(read_lines(ws, DB_USERS))
        if self.username in users:
            raise ChangeConflict(f"database user {self.username} already exists")
        users[self.username] = (
            f"{self.username}:{{ARGON2ID}}{self.secret_hash('password')}:"
            f"{self.database}:{','.join(self.privileges)}"
        )
        write_lines(ws, DB_USERS, list(users.values()), mode=0o600)

    def describe(self) -> str:
        return (
            f"create database user {self.username} on {self.database} with "
            f"{', '.join(self.privileges)} (password set)"
        )
