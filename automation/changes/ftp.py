"""FTP accounts: GDCAS's own passwd file of virtual users, made live as pure-ftpd's PureDB.

``ftp/passwd`` (root's alone, 0600) is the source GDCAS edits, one line a user:
``user:{ARGON2ID}<argon2id hash>:<account>:<absolute home>``; the home is the account's home
(``home/<account>``) or a directory below it. The reload step (``db_step``, run by
``plan.reload_command``) builds pure-ftpd's passwd format and its PureDB from it on the host:
each user gets the Unix uid/gid of its account (the account name is the host's Unix user), is
chrooted to its home, and is left out while its account is listed in ``accounts/suspended``.

pure-ftpd (built with libsodium, as Debian's 1.0.50 is) verifies the Argon2id hashes as they
are: the plain password never reaches the host.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import AfterValidator, PrivateAttr, SecretStr

from automation import identifiers
from automation.changes.base import (
    SUSPENDED_LIST,
    AccountName,
    ChangeBase,
    Password,
    RelPath,
    Workspace,
    keyed_lines,
    read_lines,
    write_lines,
)
from automation.clients import Endpoint
from automation.clients.ftp import login_error, refusal_error
from automation.errors import ChangeConflict
from automation.host import HOMES, HostLayout

FTP_PASSWD = "ftp/passwd"  # noqa: S105 - a path, not a password
FTP_PDB_SOURCE = "ftp/pureftpd.passwd"  # pure-ftpd's own format, built by the reload
FTP_PDB = "ftp/pureftpd.pdb"  # what pure-ftpd reads at each log-in (-l puredb:...)
FtpUser = Annotated[str, AfterValidator(identifiers.ftp_user)]

VERIFIED_BY = (
    "the FTP server accepts the new password and lists the account's home "
    "(while the account is suspended: it refuses the log-in)"
)


def db_step() -> tuple[str, ...]:
    """The reload step that builds the host's PureDB from ``ftp/passwd`` (every path it uses,
    relative to the root): the FTP changes and the account suspension add it."""
    return ("ftpdb", FTP_PASSWD, SUSPENDED_LIST, HOMES, FTP_PDB_SOURCE, FTP_PDB)


class _FtpChange(ChangeBase):
    """What both FTP kinds share: the FTP server's reload, and its client's check. (The fields
    are each kind's own, in the order its form shows them.)"""

    secret_fields = ("password",)
    verified_by: ClassVar[str] = VERIFIED_BY
    # Whether the account was suspended when the change was applied: its log-ins are refused
    # then (the reload leaves its users out), and the client check expects just that.
    _suspended: bool = PrivateAttr(default=False)

    def target(self) -> str:
        return "ftp"

    def observes(self) -> tuple[str, ...]:
        return ("ftp", str(getattr(self, "username", "")))

    def reads(self) -> list[str]:
        return [FTP_PASSWD, SUSPENDED_LIST]

    def services(self, layout: HostLayout) -> set[tuple[str, ...]]:
        layout.service_port("ftp")
        return {db_step()}

    def _live(self, ws: Workspace, account: str) -> None:
        self._suspended = account in read_lines(ws, SUSPENDED_LIST)
        ws.reloads.add(db_step())

    def _check_login(self, at: Endpoint, username: str, password: SecretStr) -> str | None:
        if not self.secret_known("password"):
            # Found in the SCDB by the executor on its own (not handed over with the request):
            # no password at hand to log in with; the reload's own check built the database.
            return None
        secret = password.get_secret_value()
        if self._suspended:
            problem = refusal_error(at, username, secret)
            return problem and f"the account is suspended, but {problem}"
        return login_error(at, username, secret)


class FtpAccountCreate(_FtpChange):
    kind: Literal["ftp_account_create"] = "ftp_account_create"
    account: AccountName
    username: FtpUser
    password: Password
    directory: RelPath | None = None

    def apply(self, ws: Workspace) -> None:
        ws.layout.service_port("ftp")
        entries = keyed_lines(read_lines(ws, FTP_PASSWD))
        self._live(ws, self.account)
        if self.username in entries:
            raise ChangeConflict(f"FTP user {self.username} already exists")
        home = f"{HOMES}/{self.account}" + (f"/{self.directory}" if self.directory else "")
        entries[self.username] = (
            f"{self.username}:{{ARGON2ID}}{self.secret_hash('password')}:"
            f"{self.account}:{ws.layout.path(home)}"
        )
        write_lines(ws, FTP_PASSWD, list(entries.values()), mode=0o600)
        if self.directory:
            # Made as the home's owner (plan.py). The home itself must be there already, the
            # account's own: the reload refuses a user whose account's home is not.
            ws.dirs.add(home)

    def check_by_client(self, at: Endpoint) -> str | None:
        return self._check_login(at, self.username, self.password)

    def describe(self) -> str:
        return f"create FTP user {self.username} for account {self.account} (password set)"


class FtpPassword(_FtpChange):
    kind: Literal["ftp_password"] = "ftp_password"
    username: FtpUser
    password: Password

    def apply(self, ws: Workspace) -> None:
        ws.layout.service_port("ftp")
        entries = keyed_lines(read_lines(ws, FTP_PASSWD))
        if self.username not in entries:
            raise ChangeConflict(f"there is no FTP user {self.username}")
        fields = entries[self.username].split(":")
        self._live(ws, fields[2])
        fields[1] = f"{{ARGON2ID}}{self.secret_hash('password')}"
        entries[self.username] = ":".join(fields)
        write_lines(ws, FTP_PASSWD, list(entries.values()), mode=0o600)

    def check_by_client(self, at: Endpoint) -> str | None:
        return self._check_login(at, self.username, self.password)

    def describe(self) -> str:
        return f"set the password of FTP user {self.username}"
