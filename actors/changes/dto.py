"""What crosses actor boundaries about changes and hosts: these pydantic models, and the
field types the API schema checks a host with (the same checks GDCAS makes)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field

from actors.text import Params
from actors.tickets.dto import QueuedTicket
from automation.changes import Change
from automation.host import AbsolutePath, HostAddress
from automation.ssh import parse_host_key

ACCEPTED = {"accepted": True}

HOST_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
SSH_USER = r"^[a-z_][a-z0-9_-]{0,31}$"
HOST_ROLE = r"^(shared|web|mail|dns|database|ftp)$"


def _host_key_line(value: str) -> str:
    try:
        parse_host_key(value)
    except ValueError as exc:  # binascii.Error too
        raise ValueError(f"not an OpenSSH public key line: {exc}") from None
    return value


HostKeyLine = Annotated[str, AfterValidator(_host_key_line)]
"""A host's public key as an OpenSSH line (``ssh-ed25519 AAAA... [comment]``). With GDCAS's
HostAddress and AbsolutePath (imported here: the gateway's schema takes all three from this
module, as it imports no automation) it is what NewHost checks."""


# -- what crosses the boundaries ----------------------------------------------------------------
def _change_kind(value: str) -> str:
    if not re.fullmatch(r"[a-z][a-z_]{0,47}", value):
        raise ValueError("a change kind is 1-48 lower-case letters or '_', e.g. dns_record_add")
    return value


class NewChange(BaseModel):
    """What a caller asks for: a change of `kind` with `params` on one of an account's services."""

    service_id: int
    kind: Annotated[str, AfterValidator(lambda v: _change_kind(v))]
    params: Params = Field(default_factory=dict)
    account_id: int | None = None
    ticket: str | None = None  # a ticket number (TT-000123): agents link their changes


class ChangePlan(BaseModel):
    """A dry run: `summary` says in words what would change; `plan` is the exact host script,
    for staff only (it holds other tenants' lines of shared files such as a passwd file)."""

    dry_run: bool = True
    kind: str
    service_id: int
    host: str
    summary: str
    plan: str | None = None


class ServedRecord(BaseModel):
    """A record as the host's name server serves it, in the fields of a dns_record_* change's
    record (``editable``: one a change may name; SOA and NS are the host's)."""

    name: str
    type: str
    ttl: int
    value: str
    priority: int | None = None
    weight: int | None = None
    port: int | None = None
    flags: int | None = None
    tag: str | None = None
    editable: bool


class ServedZone(BaseModel):
    """A zone as its host serves it now (an AXFR from the host's name server), not as the SCDB
    remembers it."""

    service_id: int
    zone: str
    serial: int | None
    records: list[ServedRecord]


class CronEntry(BaseModel):
    name: str
    schedule: str
    command: str


class ServedCron(BaseModel):
    """An account's cron entries as its host has them now."""

    service_id: int
    account: str
    entries: list[CronEntry]


class Forwarder(BaseModel):
    source: str
    destination: str


class ServedForwarders(BaseModel):
    """A domain's mail forwarders as its host has them now."""

    service_id: int
    domain: str
    forwarders: list[Forwarder]


class MailboxFact(BaseModel):
    address: str
    quota_mb: int | None


class ServedMailboxes(BaseModel):
    """A domain's mailboxes and their quotas as its host has them now."""

    service_id: int
    domain: str
    mailboxes: list[MailboxFact]


class FtpFact(BaseModel):
    username: str


class ServedFtpAccounts(BaseModel):
    """An account's FTP users as its host has them now."""

    service_id: int
    accounts: list[FtpFact]


class CertificateFact(BaseModel):
    domain: str
    subject: str | None = None
    issuer: str | None = None
    not_after: str | None = None
    sha256: str | None = None
    problem: str | None = None  # e.g. the file is not a PEM certificate


class ServedCertificate(BaseModel):
    """The certificate installed for a domain as its host has it now (None: none)."""

    service_id: int
    domain: str
    certificate: CertificateFact | None


class NewHost(BaseModel):
    """A managed host to register: how to reach it, the host key to pin, the client key to log
    in with (a path where the executors run) and its file layout."""

    name: str = Field(pattern=HOST_NAME)
    address: HostAddress
    ssh_port: int = Field(default=22, ge=1, le=65535)
    ssh_user: str = Field(default="root", pattern=SSH_USER)
    role: str = Field(default="shared", pattern=HOST_ROLE)
    host_key: HostKeyLine
    credentials_ref: AbsolutePath
    root_dir: AbsolutePath
    layout: dict[str, Any] = Field(default_factory=dict)


@dataclass
class Prepared:
    """A change that passed validation and the access rules, ready to be recorded or planned."""

    account_id: int
    service_id: int
    host_id: int
    host_name: str
    ticket_id: int | None
    change: Change
    source: str


@dataclass
class Recorded:
    """What the actors must hear after outcomes were committed."""

    tickets: list[QueuedTicket] = field(default_factory=list)  # to enqueue in their tiers
    accounts: set[int] = field(default_factory=set)
    settled: list[str] = field(default_factory=list)
