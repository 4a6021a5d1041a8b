"""Mailboxes on the host's Dovecot and forwarders on its Postfix.

A mailbox is a line of Dovecot's passwd-file (``Mailbox``: an Argon2id hash, never the password;
its account; its quota); Dovecot reads the file at every log-in. Forwarders are Postfix virtual
aliases made from ``mail/forwarders`` (one ``source destination`` per line). The steps that
turn the files into what the servers use are ``deny_step`` and ``postfix_step``
(``automation.plan.reload_command``). Each change is verified by the servers' own clients
(``automation.clients.imap``): the mailbox logs in with the new password over IMAP, IMAP
reports its quota, Postfix's map resolves the forwarder.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from pydantic import Field, model_validator

from automation import identifiers
from automation.changes.base import (
    SUSPENDED_LIST,
    AccountName,
    ChangeBase,
    EmailAddress,
    Password,
    Workspace,
    read_lines,
    write_lines,
)
from automation.clients import Endpoint, eventually, imap, postfix
from automation.errors import ChangeConflict
from automation.host import HostLayout

MAIL_PASSWD = "mail/passwd"  # noqa: S105 - a path, not a password
MAIL_DENIED = "mail/denied"
FORWARDERS = "mail/forwarders"
MAIL_MAPS = "mail-maps"  # Postfix's compiled maps (automation.plan reload step "postfix")
MAX_QUOTA_MB = 102400


def deny_step() -> tuple[str, ...]:
    """The step that makes Dovecot refuse the log-ins of suspended accounts' mailboxes."""
    return ("maildeny", MAIL_PASSWD, SUSPENDED_LIST, MAIL_DENIED)


def postfix_step() -> tuple[str, ...]:
    """The step that gives Postfix the mailboxes, their domains and the forwarders."""
    return ("postfix", MAIL_PASSWD, FORWARDERS, MAIL_MAPS)


@dataclass
class Mailbox:
    """One line of Dovecot's passwd-file, as GDCAS writes it::

        <address>:{ARGON2ID}<hash>:::<account>:::userdb_quota_rule=*:storage=<MB>M

    (user:password:uid:gid:gecos:home:shell:extra fields; uid, gid and home come from the
    userdb's defaults, the gecos field names the account the mailbox belongs to.)
    """

    address: str
    password: str  # "{ARGON2ID}$argon2id$..."
    account: str
    quota_mb: int | None

    @classmethod
    def parse(cls, line: str) -> Mailbox:
        fields = line.split(":", 7)
        if len(fields) < 8:
            raise ChangeConflict(
                f"{MAIL_PASSWD} on the host: the line of {fields[0]!r} is not one GDCAS "
                "wrote (user:password:::account:::quota); fix it by hand"
            )
        quota = None
        for extra in fields[7].split():
            if extra.startswith(_QUOTA_FIELD) and extra.endswith("M"):
                quota = identifiers.ascii_int(extra[len(_QUOTA_FIELD) : -1])
        return cls(fields[0], fields[1], fields[4], quota)

    def line(self) -> str:
        quota = f"{_QUOTA_FIELD}{self.quota_mb}M" if self.quota_mb else ""
        return f"{self.address}:{self.password}:::{self.account}:::{quota}"


_QUOTA_FIELD = "userdb_quota_rule=*:storage="


def _is_none(value: object) -> bool:
    return value is None


def _false(value: bool) -> bool:
    return not value


def read_mailboxes(text: str | None) -> dict[str, Mailbox]:
    """The mailboxes of a host's passwd-file by address (ChangeConflict for a foreign line)."""
    boxes = [Mailbox.parse(line) for line in (text or "").split("\n") if line]
    return {b.address: b for b in boxes}


def _boxes(ws: Workspace) -> dict[str, Mailbox]:
    ws.layout.service_port("imap")  # a host without Dovecot refuses every mailbox change
    return read_mailboxes(ws.read(MAIL_PASSWD))


def _write(ws: Workspace, boxes: dict[str, Mailbox], *, postfix: bool) -> None:
    write_lines(ws, MAIL_PASSWD, [b.line() for b in boxes.values()], mode=0o600)
    ws.reloads.add(deny_step())
    if postfix:
        ws.reloads.add(postfix_step())


def _existing(ws: Workspace, address: str) -> tuple[dict[str, Mailbox], Mailbox]:
    boxes = _boxes(ws)
    if address not in boxes:
        raise ChangeConflict(f"there is no mailbox {address}")
    return boxes, boxes[address]


class _MailChange(ChangeBase):
    address: EmailAddress

    def target(self) -> str:
        return "mail"

    def reads(self) -> list[str]:
        return [MAIL_PASSWD]

    def services(self, layout: HostLayout) -> set[tuple[str, ...]]:
        layout.service_port("imap")
        return {deny_step()}

    def observes(self) -> tuple[str, ...]:
        return ("mailbox", self.address)

    def _login(self, at: Endpoint) -> str | None:
        """An IMAP log-in with the new password; without the password at hand (a change the
        executor found in the SCDB on its own, not handed over with its request), that
        Dovecot knows the mailbox."""
        if not self.secret_known("password"):
            if eventually(lambda: imap.user_exists(at, self.address), bool):
                return None
            return f"Dovecot does not know {self.address}"
        password = self.password.get_secret_value()  # type: ignore[attr-defined]
        error = eventually(lambda: imap.login_error(at, self.address, password), _is_none)
        return None if error is None else f"IMAP log-in of {self.address} refused: {error}"


class MailboxCreate(_MailChange):
    kind: Literal["mailbox_create"] = "mailbox_create"
    verified_by: ClassVar[str] = (
        "the mail server lets the mailbox log in with its password and reports its quota"
    )
    password: Password
    quota_mb: int = Field(default=1024, ge=1, le=MAX_QUOTA_MB)
    account: AccountName | None = Field(
        default=None, description="the account the mailbox belongs to (its suspension locks it)"
    )
    secret_fields = ("password",)

    def apply(self, ws: Workspace) -> None:
        boxes = _boxes(ws)
        if self.address in boxes:
            raise ChangeConflict(f"mailbox {self.address} already exists")
        password = f"{{ARGON2ID}}{self.secret_hash('password')}"
        boxes[self.address] = Mailbox(self.address, password, self.account or "", self.quota_mb)
        _write(ws, boxes, postfix=True)

    def services(self, layout: HostLayout) -> set[tuple[str, ...]]:
        return super().services(layout) | {postfix_step()}

    def check_by_client(self, at: Endpoint) -> str | None:
        if problem := self._login(at):
            return problem
        want = self.quota_mb * 1024
        if not self.secret_known("password"):
            kib = eventually(lambda: imap.admin_quota_kib(at, self.address), want.__eq__)
            return None if kib == want else f"Dovecot reports {kib} KiB, not {want} KiB"
        got = imap.quota(at, self.address, self.password.get_secret_value())
        if got is None or got.limit_kib != want:
            return f"IMAP reports a quota of {got and got.limit_kib} KiB, not {want} KiB"
        return None

    def describe(self) -> str:
        return f"create mailbox {self.address} ({self.quota_mb} MB, password set)"


class MailboxDelete(_MailChange):
    """Remove the mailbox's log-in; its mail is kept on disk for recovery."""

    kind: Literal["mailbox_delete"] = "mailbox_delete"
    verified_by: ClassVar[str] = "the mail server no longer knows the mailbox"

    def apply(self, ws: Workspace) -> None:
        boxes, _ = _existing(ws, self.address)
        del boxes[self.address]
        _write(ws, boxes, postfix=True)

    def services(self, layout: HostLayout) -> set[tuple[str, ...]]:
        return super().services(layout) | {postfix_step()}

    def check_by_client(self, at: Endpoint) -> str | None:
        if eventually(lambda: imap.user_exists(at, self.address), _false):
            return f"Dovecot still knows {self.address}"
        return None


class MailboxPassword(_MailChange):
    kind: Literal["mailbox_password"] = "mailbox_password"
    verified_by: ClassVar[str] = "the mailbox accepts the new password"
    password: Password
    secret_fields = ("password",)

    def apply(self, ws: Workspace) -> None:
        boxes, box = _existing(ws, self.address)
        box.password = f"{{ARGON2ID}}{self.secret_hash('password')}"
        _write(ws, boxes, postfix=False)

    def check_by_client(self, at: Endpoint) -> str | None:
        return self._login(at)

    def describe(self) -> str:
        return f"set the password of mailbox {self.address}"


class MailboxQuota(_MailChange):
    kind: Literal["mailbox_quota"] = "mailbox_quota"
    verified_by: ClassVar[str] = "the mail server reports the new quota"
    quota_mb: int = Field(ge=1, le=MAX_QUOTA_MB)

    def apply(self, ws: Workspace) -> None:
        boxes, box = _existing(ws, self.address)
        box.quota_mb = self.quota_mb
        _write(ws, boxes, postfix=False)

    def check_by_client(self, at: Endpoint) -> str | None:
        want = self.quota_mb * 1024
        got = eventually(lambda: imap.admin_quota_kib(at, self.address), want.__eq__)
        return None if got == want else f"Dovecot reports a quota of {got} KiB, not {want} KiB"


class _ForwarderChange(ChangeBase):
    source: EmailAddress
    destination: EmailAddress

    @model_validator(mode="after")
    def _not_self(self) -> _ForwarderChange:
        if self.source == self.destination:
            raise ValueError("a forwarder cannot point to its own address (loop)")
        return self

    def target(self) -> str:
        return "mail"

    def reads(self) -> list[str]:
        return [FORWARDERS, MAIL_PASSWD]

    def services(self, layout: HostLayout) -> set[tuple[str, ...]]:
        layout.service_port("smtp")  # a host without Postfix refuses forwarders
        return {postfix_step()}

    def observes(self) -> tuple[str, ...]:
        return ("forwarders",)  # the check compares the whole forwarders file with Postfix

    def check_by_client(self, at: Endpoint) -> str | None:
        lay = at.layout
        return postfix.aliases_error(
            at, lay.path(FORWARDERS), lay.path(f"{MAIL_MAPS}/virtual"), self.source
        )


def _edges(ws: Workspace) -> set[tuple[str, str]]:
    out = set()
    for line in read_lines(ws, FORWARDERS):
        src, dst = line.split(" ", 1)
        out.add((src, dst))
    return out


def served_forwarders(domain: str, text: str | None) -> list[dict[str, str]]:
    """The forwarders of `domain` in the host's forwarders file (shared by every tenant of the
    host: only the lines whose source is at `domain`)."""
    domain = domain.lower()
    out = []
    for line in (text or "").split("\n"):
        src, _, dst = line.partition(" ")
        if dst and src.rsplit("@", 1)[-1].lower() == domain:
            out.append({"source": src, "destination": dst})
    return sorted(out, key=lambda f: (f["source"], f["destination"]))


def _write_edges(ws: Workspace, edges: set[tuple[str, str]]) -> None:
    ws.layout.service_port("smtp")
    write_lines(ws, FORWARDERS, [f"{s} {d}" for s, d in edges])
    ws.reloads.add(postfix_step())


class MailForwarderAdd(_ForwarderChange):
    kind: Literal["mail_forwarder_add"] = "mail_forwarder_add"
    verified_by: ClassVar[str] = "the mail server forwards mail for the address"

    def apply(self, ws: Workspace) -> None:
        edges = _edges(ws) | {(self.source, self.destination)}
        graph: dict[str, set[str]] = {}
        for s, d in edges:
            graph.setdefault(s, set()).add(d)
        # A loop exists if the source is reachable again from the destination.
        path, todo, seen = {self.destination: [self.destination]}, [self.destination], set()
        while todo:
            node = todo.pop()
            if node == self.source:
                chain = " -> ".join([self.source, *path[node]])
                raise ChangeConflict(f"forwarder would create a mail loop: {chain}")
            if node in seen:
                continue
            seen.add(node)
            for nxt in graph.get(node, ()):
                path.setdefault(nxt, [*path[node], nxt])
                todo.append(nxt)
        _write_edges(ws, edges)


class MailForwarderDelete(_ForwarderChange):
    kind: Literal["mail_forwarder_delete"] = "mail_forwarder_delete"
    verified_by: ClassVar[str] = "the mail server no longer forwards mail for the address"

    def apply(self, ws: Workspace) -> None:
        edges = _edges(ws)
        if (self.source, self.destination) not in edges:
            raise ChangeConflict(f"there is no forwarder {self.source} -> {self.destination}")
        _write_edges(ws, edges - {(self.source, self.destination)})
