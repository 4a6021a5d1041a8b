"""The change catalog: every kind a host can be asked to apply, validated strictly."""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import Field, TypeAdapter, ValidationError

from automation.changes.base import ChangeBase, ProbeResults, Workspace
from automation.changes.cron import CronAdd, CronRemove
from automation.changes.database import DatabaseCreate, DatabaseUserCreate
from automation.changes.dns import DnsRecord, DnsRecordAdd, DnsRecordDelete, DnsRecordUpdate
from automation.changes.ftp import FtpAccountCreate, FtpPassword
from automation.changes.mailbox import (
    MailboxCreate,
    MailboxDelete,
    MailboxPassword,
    MailboxQuota,
    MailForwarderAdd,
    MailForwarderDelete,
)
from automation.changes.suspend import AccountSuspend, AccountUnsuspend
from automation.changes.tls import TlsInstall
from automation.changes.vhost import VhostCreate, VhostDelete
from automation.errors import ChangeConflict, ChangeValidationError

Change = Annotated[
    DnsRecordAdd
    | DnsRecordUpdate
    | DnsRecordDelete
    | VhostCreate
    | VhostDelete
    | MailboxCreate
    | MailboxDelete
    | MailboxPassword
    | MailboxQuota
    | MailForwarderAdd
    | MailForwarderDelete
    | FtpAccountCreate
    | FtpPassword
    | DatabaseCreate
    | DatabaseUserCreate
    | CronAdd
    | CronRemove
    | TlsInstall
    | AccountSuspend
    | AccountUnsuspend,
    Field(discriminator="kind"),
]

CHANGE_KINDS: dict[str, type[ChangeBase]] = {
    cls.model_fields["kind"].default: cls
    for cls in (
        DnsRecordAdd, DnsRecordUpdate, DnsRecordDelete, VhostCreate, VhostDelete,
        MailboxCreate, MailboxDelete, MailboxPassword, MailboxQuota, MailForwarderAdd,
        MailForwarderDelete, FtpAccountCreate, FtpPassword, DatabaseCreate, DatabaseUserCreate,
        CronAdd, CronRemove, TlsInstall, AccountSuspend, AccountUnsuspend,
    )
}  # fmt: skip

CUSTOMER_SELF_SERVICE_KINDS: frozenset[str] = frozenset(
    {
        "dns_record_add", "dns_record_update", "dns_record_delete",
        "mailbox_password", "mailbox_quota", "mail_forwarder_add", "mail_forwarder_delete",
        "ftp_password", "cron_add", "cron_remove",
    }
)  # fmt: skip

_ADAPTER: TypeAdapter[Change] = TypeAdapter(Change)


def _messages(exc: ValidationError, kind: str) -> list[str]:
    out = []
    for err in exc.errors():
        parts = list(err["loc"])
        if parts and parts[0] == kind:
            parts = parts[1:]
        loc = ".".join(str(p) for p in parts)
        msg = err["msg"].removeprefix("Value error, ")
        out.append(f"{loc}: {msg}" if loc else msg)
    return out


def parse_change(kind: str, params: dict[str, Any]) -> Change:
    """Validate ``params`` as a change of ``kind``; raise ChangeValidationError with messages."""
    cls = CHANGE_KINDS.get(kind)
    if cls is None:
        raise ChangeValidationError(kind, [f"unknown change kind {kind!r}"])
    if not isinstance(params, dict):
        raise ChangeValidationError(kind, ["parameters must be an object"])
    if params.get("kind", kind) != kind:
        raise ChangeValidationError(kind, ["kind in parameters does not match"])
    try:
        payload = json.dumps({**params, "kind": kind})
    except (TypeError, ValueError) as exc:
        raise ChangeValidationError(kind, [f"parameters are not plain JSON data: {exc}"]) from None
    try:
        # Strict JSON-mode validation: no "300" for 300, but arrays may fill tuples.
        return _ADAPTER.validate_json(payload)
    except ValidationError as exc:
        raise ChangeValidationError(kind, _messages(exc, kind)) from None


__all__ = [
    "CHANGE_KINDS",
    "CUSTOMER_SELF_SERVICE_KINDS",
    "AccountSuspend",
    "AccountUnsuspend",
    "Change",
    "ChangeBase",
    "ChangeConflict",
    "ChangeValidationError",
    "CronAdd",
    "CronRemove",
    "DatabaseCreate",
    "DatabaseUserCreate",
    "DnsRecord",
    "DnsRecordAdd",
    "DnsRecordDelete",
    "DnsRecordUpdate",
    "FtpAccountCreate",
    "FtpPassword",
    "MailForwarderAdd",
    "MailForwarderDelete",
    "MailboxCreate",
    "MailboxDelete",
    "MailboxPassword",
    "MailboxQuota",
    "ProbeResults",
    "TlsInstall",
    "VhostCreate",
    "VhostDelete",
    "Workspace",
    "parse_change",
]
