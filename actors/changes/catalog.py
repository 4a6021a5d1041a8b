"""The change catalog: each change kind a caller may request, with the JSON Schema of its
parameters taken from the `automation` model that validates it, so the forms of SiteControl
and SiteTools and the executors check one thing. Fields the service fills in (the zone of a
dns_zone service, the account's user) are left out of the form's schema."""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel, Field

from actors.changes.access import SERVICE_KINDS, implied_fields
from actors.errors import NotAllowed
from actors.policy import KINDS_BY_TIER, authorize_change_kind
from actors.principal import Principal
from automation.changes import CHANGE_KINDS, CUSTOMER_SELF_SERVICE_KINDS

TITLES = {
    "dns_record_add": "Add a DNS record",
    "dns_record_update": "Change a DNS record",
    "dns_record_delete": "Delete a DNS record",
    "vhost_create": "Create a website",
    "vhost_delete": "Remove a website",
    "mailbox_create": "Create a mailbox",
    "mailbox_delete": "Delete a mailbox",
    "mailbox_password": "Reset the mailbox password",
    "mailbox_quota": "Change the mailbox quota",
    "mail_forwarder_add": "Add a mail forwarder",
    "mail_forwarder_delete": "Remove a mail forwarder",
    "ftp_account_create": "Create an FTP account",
    "ftp_password": "Reset the FTP password",
    "database_create": "Create a database",
    "database_user_create": "Create a database user",
    "cron_add": "Add a cron job",
    "cron_remove": "Remove a cron job",
    "tls_install": "Install a TLS certificate",
    "account_suspend": "Suspend the account",
    "account_unsuspend": "Unsuspend the account",
}


class CatalogEntry(BaseModel):
    kind: str
    title: str
    self_service: bool = Field(description="Customers may request it on their own services.")
    min_tier: int = Field(description="The lowest support level that may request it.")
    service_kinds: list[str] | None = Field(
        description="The services it is requested on (null: any of the account's)."
    )
    implied: list[str] = Field(description="Fields the service and the account fill in.")
    verified_by: str = Field(description="What GDCAS checks on the host once it is applied.")
    params_schema: dict[str, Any] = Field(
        description="JSON Schema of `params` (without the implied fields)."
    )


class Catalog(BaseModel):
    kinds: list[CatalogEntry]


def may_request(by: Principal, kind: str) -> bool:
    try:
        authorize_change_kind(by, kind)
    except NotAllowed:
        return False
    return True


def params_schema(kind: str) -> dict[str, Any]:
    """The JSON Schema of a kind's parameters as a request sends them."""
    schema = copy.deepcopy(CHANGE_KINDS[kind].model_json_schema())
    props = schema.get("properties", {})
    drop = {"kind", *implied_fields(kind)}
    schema["properties"] = {k: v for k, v in props.items() if k not in drop}
    schema["required"] = [k for k in schema.get("required", []) if k not in drop]
    return schema


def _entry(kind: str) -> CatalogEntry:
    kinds = SERVICE_KINDS.get(kind)
    return CatalogEntry(
        kind=kind,
        title=TITLES.get(kind, kind.replace("_", " ")),
        self_service=kind in CUSTOMER_SELF_SERVICE_KINDS,
        min_tier=min(t for t, allowed in KINDS_BY_TIER.items() if kind in allowed),
        service_kinds=list(kinds) if kinds is not None else None,
        implied=implied_fields(kind),
        verified_by=CHANGE_KINDS[kind].verified_by,
        params_schema=params_schema(kind),
    )


_ENTRIES = {kind: _entry(kind) for kind in CHANGE_KINDS}


def catalog(by: Principal) -> Catalog:
    """The kinds `by` may request, each with its form."""
    return Catalog(kinds=[e for k, e in _ENTRIES.items() if may_request(by, k)])
