"""Mailboxes (passwd-style file with Argon2id hashes, Maildir per box) and mail forwarders."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from automation.changes.base import (
    ChangeBase,
    EmailAddress,
    Password,
    Workspace,
    keyed_lines,
    read_lines,
    write_lines,
)
from automation.errors import ChangeConflict

MAIL_PASSWD = "mail/passwd"  # noqa: S105 - a path, not a password
FORWARDERS = "mail/forwarders"
MAX_QUOTA_MB = 102400


def maildir(address: str) -> str:
    local, domain = address.split("@")
    return f"mail/{domain}/{local}"


def _entry(ws: Workspace, address: str) -> tuple[dict[str, str], list[str]]:
    entries = keyed_lines(read_lines(ws, MAIL_PASSWD))
    if address not in entries:
        raise ChangeConflict(f"there is no mailbox {address}")
    return entries, entries[address].split(":")


class _MailChange(ChangeBase):
    address: EmailAddress

    def target(self) -> str:
        return "mail"

    def reads(self) -> list[str]:
        return [MAIL_PASSWD]


class MailboxCreate(_MailChange):
    kind: Literal["mailbox_create"] = "mailbox_create"
    password: Password
    quota_mb: int = Field(default=1024, ge=1, le=MAX_QUOTA_MB)
    secret_fields = ("password",)

    def apply(self, ws: Workspace) -> None:
        entries = keyed_lines(read_lines(ws, MAIL_PASSWD))
        if self.address in entries:
            raise ChangeConflict(f"mailbox {self.address} already exists")
        entries[self.address] = (
            f"{self.address}:{{ARGON2ID}}{self.secret_hash('password')}:{self.quota_mb}"
        )
        write_lines(ws, MAIL_PASSWD, list(entries.values()), mode=0o600)
        for sub in ("cur", "new", "tmp"):
            ws.dirs.add(f"{maildir(self.address)}/{sub}")

    def describe(self) -> str:
        return f"create mailbox {self.address} ({self.quota_mb} MB, password set)"


class MailboxDelete(_MailChange):
    """Remove the mailbox login; its Maildir is kept on disk for recovery."""

    kind: Literal["mailbox_delete"] = "mailbox_delete"

    def apply(self, ws: Workspace) -> None:
        entries, _ = _entry(ws, self.address)
        del entries[self.address]
        write_lines(ws, MAIL_PASSWD, list(entries.values()), mode=0o600)


class MailboxPassword(_MailChange):
    kind: Literal["mailbox_password"] = "mailbox_password"
    password: Password
    secret_fields = ("password",)

    def apply(self, ws: Workspace) -> None:
        entries, fields = _entry(ws, self.address)
        fields[1] = f"{{ARGON2ID}}{self.secret_hash('password')}"
        entries[self.address] = ":".join(fields)
        write_lines(ws, MAIL_PASSWD, list(entries.values()), mode=0o600)

    def describe(self) -> str:
        return f"set the password of mailbox {self.address}"


class MailboxQuota(_MailChange):
    kind: Literal["mailbox_quota"] = "mailbox_quota"
    quota_mb: int = Field(ge=1, le=MAX_QUOTA_MB)

    def apply(self, ws: Workspace) -> None:
        entries, fields = _entry(ws, self.address)
        fields[2] = str(self.quota_mb)
        entries[self.address] = ":".join(fields)
        write_lines(ws, MAIL_PASSWD, list(entries.values()), mode=0o600)


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
        return [FORWARDERS]


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
    write_lines(ws, FORWARDERS, [f"{s} {d}" for s, d in edges])


class MailForwarderAdd(_ForwarderChange):
    kind: Literal["mail_forwarder_add"] = "mail_forwarder_add"

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

    def apply(self, ws: Workspace) -> None:
        edges = _edges(ws)
        if (self.source, self.destination) not in edges:
            raise ChangeConflict(f"there is no forwarder {self.source} -> {self.destination}")
        _write_edges(ws, edges - {(self.source, self.destination)})
