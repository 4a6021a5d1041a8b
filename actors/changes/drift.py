"""Drift between the SCDB and a managed host: the mailboxes, FTP accounts and databases the SCDB
says a host has, against what the host's files say (read through the same SSH layer,
`automation.facts`). Something the SCDB has and the host does not is a customer told of a
service that is not there; something the host has and the SCDB does not is a service nobody
bills or supports."""

from __future__ import annotations

from pydantic import BaseModel, Field

from automation.changes.database import DATABASES, DB_USERS
from automation.changes.ftp import FTP_PASSWD
from automation.changes.mailbox import MAIL_PASSWD
from automation.facts import databases, ftp_accounts, mailboxes
from store.models import Account, Service

# The host files the report reads (one round trip).
DRIFT_PATHS = [MAIL_PASSWD, FTP_PASSWD, DATABASES, DB_USERS]


class Missing(BaseModel):
    service_id: int
    account_id: int
    kind: str
    name: str


class Unknown(BaseModel):
    kind: str
    name: str = Field(description="The mailbox address, FTP user or database the host has.")
    account: str | None = Field(description="The account it looks like it belongs to.")


class Drift(BaseModel):
    host: str
    checked: int = Field(description="Mailbox, FTP and database services of the SCDB here.")
    missing_on_host: list[Missing]
    unknown_to_scdb: list[Unknown]


def compare(host: str, services: list[tuple[Service, Account]],
            files: dict[str, str | None]) -> Drift:  # fmt: skip
    """The drift of one host: `services` are the SCDB's on it, `files` the host's."""
    boxes = [(sv, a) for sv, a in services if sv.kind == "mailbox"]
    ftps = [(sv, a) for sv, a in services if sv.kind == "ftp_account"]
    dbs = [(sv, a) for sv, a in services if sv.kind == "database"]
    domains = {d for sv, a in services if (d := _domain(sv.name))}
    users = {a.unix_user: a for _, a in services}
    on_host_boxes = {m["address"].lower() for d in domains for m in mailboxes(d, files)}
    on_host_ftp = {f["username"]: user for user in users for f in ftp_accounts(user, files)}
    on_host_dbs = {d["database"]: user for user in users for d in databases(user, files)}
    missing = [
        Missing(service_id=sv.id, account_id=a.id, kind=sv.kind, name=sv.name)
        for sv, a in boxes if sv.name.lower() not in on_host_boxes
    ] + [
        Missing(service_id=sv.id, account_id=a.id, kind=sv.kind, name=sv.name)
        for sv, a in ftps if sv.name not in on_host_ftp
    ] + [
        Missing(service_id=sv.id, account_id=a.id, kind=sv.kind, name=sv.name)
        for sv, a in dbs if sv.name not in on_host_dbs
    ]  # fmt: skip
    known_boxes = {sv.name.lower() for sv, _ in boxes}
    known_ftp = {sv.name for sv, _ in ftps}
    owner = {_domain(sv.name): a.code for sv, a in services}
    unknown = [
        Unknown(kind="mailbox", name=b, account=owner.get(_domain(b)))
        for b in sorted(on_host_boxes - known_boxes)
    ] + [
        Unknown(kind="ftp_account", name=u, account=users[on_host_ftp[u]].code)
        for u in sorted(set(on_host_ftp) - known_ftp)
    ] + [
        Unknown(kind="database", name=d, account=users[on_host_dbs[d]].code)
        for d in sorted(set(on_host_dbs) - {sv.name for sv, _ in dbs})
    ]  # fmt: skip
    return Drift(host=host, checked=len(boxes) + len(ftps) + len(dbs), missing_on_host=missing,
                 unknown_to_scdb=unknown)  # fmt: skip


def _domain(name: str) -> str:
    """The domain a service name stands for (a mailbox's part after '@'), lower case; '' for
    names that are no domain (an FTP user)."""
    domain = name.rsplit("@", 1)[-1].lower()
    return domain if "." in domain else ""
