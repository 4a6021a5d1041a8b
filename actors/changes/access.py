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

    def service_kind(*kinds: str) -> bool:
        if service.kind not in kinds:
            problems.append(
                f"service {service.id} is a {service.kind}; {kind} needs a {' or '.join(kinds)}"
            )
            return False
        return True

    if "account" in CHANGE_FIELDS.get(kind, ()):
        same("account", account.unix_user, "account's user")
    if kind.startswith("dns_record_"):
        if service_kind("dns_zone"):
            same("zone", service.name, "zone")
    elif kind in ("mailbox_password", "mailbox_quota", "mailbox_delete"):
        if service_kind("mailbox"):
            same("address", service.name, "address")
    elif kind == "mailbox_create" or kind.startswith("mail_forwarder_"):
        key = "address" if kind == "mailbox_create" else "source"
        if service_kind("domain", "dns_zone", "web_hosting", "mailbox"):
            value = p.get(key)
            domain = _domain_of(service).lower()
            if isinstance(value, str) and "@" in value and value.split("@", 1)[1].lower() != domain:
                problems.append(f"{key}: must be an address at {_domain_of(service)}")
    elif kind == "ftp_password":
        if service_kind("ftp_account"):
            same("username", service.name, "FTP user")
    elif kind in ("vhost_create", "vhost_delete", "tls_install"):
        if service_kind("web_hosting", "domain", "tls_certificate"):
            same("domain", _domain_of(service), "domain")
        aliases = p.get("aliases") if kind == "vhost_create" else None
        for alias in aliases if isinstance(aliases, list | tuple) else ():
            if isinstance(alias, str) and not _within(alias, domains or set()):
                problems.append(
                    f"aliases: {alias[:80]!r} is not one of the account's domains or a subdomain"
                )
    elif kind.startswith("cron_"):
        service_kind("web_hosting", "cron")
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
