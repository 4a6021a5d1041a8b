"""FTP accounts: a pure-ftpd-style passwd file (Argon2id hashes), home inside the account's."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator

from automation import identifiers
from automation.changes.base import (
    AccountName,
    ChangeBase,
    Password,
    RelPath,
    Workspace,
    keyed_lines,
    read_lines,
    write_lines,
)
from automation.errors import ChangeConflict

FTP_PASSWD = "ftp/passwd"  # noqa: S105 - a path, not a password
FtpUser = Annotated[str, AfterValidator(identifiers.ftp_user)]


class FtpAccountCreate(ChangeBase):
    kind: Literal["ftp_account_create"] = "ftp_account_create"
    account: AccountName
    username: FtpUser
    password: Password
    directory: RelPath | None = None
    secret_fields = ("password",)

    def target(self) -> str:
        return "ftp"

    def reads(self) -> list[str]:
        return [FTP_PASSWD]

    def apply(self, ws: Workspace) -> None:
        entries = keyed_lines(read_lines(ws, FTP_PASSWD))
        if self.username in entries:
            raise ChangeConflict(f"FTP user {self.username} already exists")
        home = f"home/{self.account}" + (f"/{self.directory}" if self.directory else "")
        entries[self.username] = (
            f"{self.username}:{{ARGON2ID}}{self.secret_hash('password')}:"
            f"{self.account}:{ws.layout.path(home)}"
        )
        write_lines(ws, FTP_PASSWD, list(entries.values()), mode=0o600)
        ws.dirs.add(home)

    def describe(self) -> str:
        return f"create FTP user {self.username} for account {self.account} (password set)"


class FtpPassword(ChangeBase):
    kind: Literal["ftp_password"] = "ftp_password"
    username: FtpUser
    password: Password
    secret_fields = ("password",)

    def target(self) -> str:
        return "ftp"

    def reads(self) -> list[str]:
        return [FTP_PASSWD]

    def apply(self, ws: Workspace) -> None:
        entries = keyed_lines(read_lines(ws, FTP_PASSWD))
        if self.username not in entries:
            raise ChangeConflict(f"there is no FTP user {self.username}")
        fields = entries[self.username].split(":")
        fields[1] = f"{{ARGON2ID}}{self.secret_hash('password')}"
        entries[self.username] = ":".join(fields)
        write_lines(ws, FTP_PASSWD, list(entries.values()), mode=0o600)

    def describe(self) -> str:
        return f"set the password of FTP user {self.username}"
