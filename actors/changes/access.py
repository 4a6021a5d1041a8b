"""Who may ask for which change on which service, and what it may reach through it."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from actors.errors import (
    InvalidChange,
)
from automation.changes import (
    CHANGE_KINDS,
)
from store.models import Account, Service
from store.repositories import (
    AccountRepository,
)

CATEGORY_OF_KIND = {
    "dns": "dns", "mailbox": "email", "mail": "email", "ftp": "ftp", "vhost": "web", "tls": "tls",
    "database": "database", "cron": "web",
}  # fmt: skip


# -- the access rules ----------------------------------------------------------------------
CHANGE_FIELDS = {k: tuple(cls.model_fields) for k, cls in CHANGE_KINDS.items()}

# The services a change kind is requested on (None: any of the account's), and the field the
# service fills in (the zone of a dns_zone service, ...): `bind_to_service` enforces both, the
# change catalog shows them.
_ON_SITE = ("web_hosting", "domain", "tls_certificate")
_ON_DOMAIN = ("domain", "dns_zone", "web_hosting", "mailbox")
SERVICE_KINDS: dict[str, tuple[str, ...] | None] = {
    "dns_record_add": ("dns_zone",), "dns_record_update": ("dns_zone",),
    "dns_record_delete": ("dns_zone",),
    "mailbox_password": ("mailbox",), "mailbox_quota": ("mailbox",),
    "mailbox_delete": ("mailbox",),
    "mailbox_create": _ON_DOMAIN, "mail_forwarder_add": _ON_DOMAIN,
    "mail_forwarder_delete": _ON_DOMAIN,
    "ftp_password": ("ftp_account",),
    "vhost_create": _ON_SITE, "vhost_delete": _ON_SITE, "tls_install": _ON_SITE,
    "cron_add": ("web_hosting", "cron"), "cron_remove": ("web_hosting", "cron"),
}  # fmt: skip
SERVICE_FIELD: dict[str, str] = {
    "dns_record_add": "zone", "dns_record_update": "zone", "dns_record_delete": "zone",
    "mailbox_password": "address", "mailbox_quota": "address", "mailbox_delete": "address",
    "ftp_password": "username",
    "vhost_create": "domain", "vhost_delete": "domain", "tls_install": "domain",
}  # fmt: skip


def implied_fields(kind: str) -> list[str]:
    """The fields of `kind` a request may leave out: the service and the account fill them."""
    out = [SERVICE_FIELD[kind]] if kind in SERVICE_FIELD else []
    return out + (["account"] if "account" in CHANGE_FIELDS.get(kind, ()) else [])


def _domain_of(service: Service) -> str:
    return service.name.split("@", 1)[1] if "@" in service.name else service.name


def _within(name: str, domains: set[str]) -> bool:
    name = name.strip().lower().rstrip(".")
    return any(name == d or name.endswith("." + d) for d in domains)


def bind_to_service(
    kind: str,
    params: dict[str, Any],
    service: Service,
    account: Account,
    domains: set[str] | None = None,
) -> dict[str, Any]:
    """Fill the fields the service implies and refuse parameters that reach beyond it.

    A change may only touch the object its service names (the zone, the mailbox, the FTP user)
    and only the account's own Unix user, so a customer can never aim at someone else's data
    through one of their own services.
    """
    p = dict(params)
    problems: list[str] = []

    def same(key: str, want: str, what: str) -> None:
        p.setdefault(key, want)
        if isinstance(p[key], str) and p[key].strip().lower().rstrip(".") != want.lower():
            problems.append(f"{key}: must be {want!r}, the {what} of service {service.id}")

    def service_kind() -> bool:
        kinds = SERVICE_KINDS.get(kind)
        if kinds is not None and service.kind not in kinds:
            problems.append(
                f"service {service.id} is a {service.kind}; {kind} needs a {' or '.join(kinds)}"
            )
            return False
        return True

    if "account" in CHANGE_FIELDS.get(kind, ()):
        same("account", account.unix_user, "account's user")
    if kind.startswith("dns_record_"):
        if service_kind():
            same("zone", service.name, "zone")
    elif kind in ("mailbox_password", "mailbox_quota", "mailbox_delete"):
        if service_kind():
            same("address", service.name, "address")
    elif kind == "mailbox_create" or kind.startswith("mail_forwarder_"):
        key = "address" if kind == "mailbox_create" else "source"
        if service_kind():
            value = p.get(key)
            domain = _domain_of(service).lower()
            if isinstance(value, str) and "@" in value and value.split("@", 1)[1].lower() != domain:
                problems.append(f"{key}: must be an address at {_domain_of(service)}")
    elif kind == "ftp_password":
        if service_kind():
            same("username", service.name, "FTP user")
    elif kind in ("vhost_create", "vhost_delete", "tls_install"):
        if service_kind():
            same("domain", _domain_of(service), "domain")
        aliases = p.get("aliases") if kind == "vhost_create" else None
        for alias in aliases if isinstance(aliases, list | tuple) else ():
            if isinstance(alias, str) and not _within(alias, domains or set()):
                problems.append(
                    f"aliases: {alias[:80]!r} is not one of the account's domains or a subdomain"
                )
    elif kind.startswith("cron_"):
        service_kind()
    if problems:
        raise InvalidChange(f"invalid {kind} change: " + "; ".join(problems), problems)
    return p


ACCOUNT_DOMAIN_KINDS = ("domain", "dns_zone", "web_hosting", "tls_certificate")


def account_domains(s: Session, account_id: int) -> set[str]:
    """The domains an account holds: its domain, zone, site and certificate services."""
    return {
        _domain_of(sv).lower().rstrip(".")
        for sv in AccountRepository(s).services(account_id)
        if sv.kind in ACCOUNT_DOMAIN_KINDS
    }


def _category(kind: str) -> str:
    return CATEGORY_OF_KIND.get(kind.split("_", 1)[0], "general")
