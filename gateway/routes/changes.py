"""Changes to customers' hosting (applied by GDCAS on the managed hosts), and the hosts.

A change request goes to its account's lane actor, a dry run and a host's registration to the
change executors; what is read comes from the read models."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Any

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, Field, field_validator

from actors.changes.catalog import Catalog, catalog
from actors.changes.drift import Drift
from actors.changes.dto import (
    HOST_NAME,
    HOST_ROLE,
    SSH_USER,
    AbsolutePath,
    CertificateFact,
    ChangePlan,
    CronEntry,
    Forwarder,
    FtpFact,
    HostAddress,
    HostKeyLine,
    MailboxFact,
    NewChange,
    NewHost,
    ServedCertificate,
    ServedCron,
    ServedForwarders,
    ServedFtpAccounts,
    ServedMailboxes,
    ServedZone,
)
from actors.changes.shards import REGISTRAR, executor_name, executor_names
from actors.errors import (
    ChangeNotFound,
    HostNotFound,
    HostRetired,
    InvalidTransition,
    ServiceNotFound,
)
from actors.principal import Principal
from actors.text import Params
from cluster.calls import ComponentRestarting, call
from gateway.auth import Caller, PlatformDep
from gateway.deps import ChangeReadsDep, HostReadsDep
from gateway.errors import Forbidden, ServiceUnavailable, error_responses
from gateway.idempotency import request_key
from gateway.platform import Platform
from gateway.ratelimit import Resource, rate_limit
from gateway.schemas import Id, Strict
from store.read.changes import ChangeDetail, ChangeReads, ServicePlace, for_customer
from store.read.hosts import HostHealth, HostRead

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", tags=["changes"])

CHANGE_ERRORS = error_responses(
    {
        403: "`not_allowed`: a kind the caller's role or level may not request",
        404: "`service_not_found` (also another account's, to customers), `ticket_not_found`",
        409: "`invalid_transition`: the ticket is resolved or closed, the service or its host "
        "not in service; `host_down`, `host_retired`: its host cannot be managed (a dry run)",
        422: "`invalid_change` (one detail entry per problem), `invalid_request`, "
        "`idempotency_key_reused`",
        429: "`rate_limited`: change requests or dry runs per minute (a customer account's, a "
        "staff token's: `SITEDESK_CHANGES_PER_MINUTE`, `SITEDESK_DRY_RUNS_PER_MINUTE`), "
        "requests per minute, self-service changes per account and hour; with Retry-After",
        503: "`unavailable`, `host_unavailable` (a dry run could not read the host), "
        "`rate_limits_unavailable` (Redis unreachable; with Retry-After)",
    }
)
HOST_ERRORS = error_responses(
    {
        403: "`forbidden`: managed hosts are for administrators",
        409: "`host_exists`: the name is taken",
        422: "`invalid_host` (the layout, or a client key the executors can not use), "
        "`invalid_request`, `idempotency_key_reused`",
        503: "`unavailable`: the change executors are not running",
    }
)


class ChangeCreate(Strict):
    service_id: Id = Field(description="The service the change is for (one of the account's).")
    kind: str = Field(min_length=1, max_length=48, description="e.g. dns_record_add")
    params: Params = Field(
        default_factory=dict,
        description="The change's parameters; fields the service implies (the zone of a "
        "dns_zone service, the address of a mailbox) may be left out. At most 200 KiB of "
        "JSON, 6 levels deep; no control characters but line breaks and tabs.",
    )
    account_id: Id | None = Field(default=None, description="Staff: the account (checked).")
    ticket: str | None = Field(
        default=None,
        min_length=4,
        max_length=20,
        description="Agents: the ticket number this change is for.",
    )
    dry_run: bool = Field(default=False, description="Return the plan; apply nothing.")

    @field_validator("kind")
    @classmethod
    def _kind(cls, value: str) -> str:
        if not re.fullmatch(r"[a-z][a-z_]{0,47}", value):
            raise ValueError("a change kind is lower-case letters and '_', e.g. dns_record_add")
        return value

    @field_validator("ticket")
    @classmethod
    def _ticket(cls, value: str | None) -> str | None:
        if value is not None and not re.fullmatch(r"TT-[0-9]{1,12}", value, re.IGNORECASE):
            raise ValueError("a ticket number looks like TT-000123")
        return value


class HostCreate(Strict):
    name: str = Field(pattern=HOST_NAME, description="Unique name, e.g. web-07.")
    address: HostAddress = Field(max_length=255, description="IP address or host name.")
    port: int = Field(default=22, ge=1, le=65535, description="SSH port")
    user: str = Field(default="root", pattern=SSH_USER)
    role: str = Field(default="shared", pattern=HOST_ROLE)
    host_key: HostKeyLine = Field(
        min_length=20, max_length=4000, description="The host's public key, an OpenSSH line."
    )
    credentials_ref: AbsolutePath = Field(
        max_length=255,
        description="Absolute path of the client private key where the change executors run: "
        "a regular file of their user, mode 0600 or 0400 (checked there: 422 otherwise).",
    )
    root_dir: AbsolutePath = Field(
        max_length=255, description="Prefix of every file GDCAS manages (not `/`)."
    )
    layout: dict[str, Any] = Field(
        default_factory=dict,
        description="Service ports and tools: dns_port, http_port, rndc, nginx, ...",
    )


def _desk(platform: Platform) -> Any:
    if platform.directory is None:
        raise ServiceUnavailable("the desk (Ray actors) is not running")
    return platform.directory


def _executor(platform: Platform, host_id: int) -> Any:
    return _desk(platform).get(executor_name(host_id))


async def _lane_account(caller: Principal, body: ChangeCreate, changes: ChangeReads) -> int:
    """The account whose lane takes the request: the customer's own; for staff the account
    they name, else the service's (its lane checks that the service is that account's)."""
    if caller.role == "customer" and caller.account_id is not None:
        return caller.account_id
    if body.account_id is not None:
        return body.account_id
    place = await asyncio.to_thread(changes.service_place, body.service_id)
    if place is None:
        raise ServiceNotFound(f"service {body.service_id} not found")
    return place.account_id


@router.post(
    "/changes",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ChangeDetail | ChangePlan,
    responses={
        202: {"model": ChangeDetail, "description": "The change, queued (`status: queued`)."},
        200: {"model": ChangePlan, "description": "The plan of a dry run."},
        **CHANGE_ERRORS,
    },
)
async def request_change(
    body: ChangeCreate,
    request: Request,
    response: Response,
    caller: Caller,
    platform: PlatformDep,
    changes: ChangeReadsDep,
) -> ChangeDetail | ChangePlan:
    """Ask for a change to a service's hosting; it is applied on the host at once.

    Customers change their own services, and only the self-service kinds (DNS records, mailbox
    password and quota, mail forwarders of their own domains, FTP password, cron), at most 60
    an hour per account (then 429). Agents change any account's services, the kinds their
    level may ask for, and link the change to its ticket (`ticket`), which waits in
    `pending_change` until the change settles.
    Answers 202 with the change (`status: queued`); follow it on `GET /api/v1/changes/{id}` or
    live on `GET /api/v1/events` (`change.applied`, `change.failed`, `change.rolled_back`). A
    failed self-service change opens a ticket for support (a repeated failure of the same
    service is added to that ticket while it is open). With `dry_run: true` nothing is applied
    and the answer (200) says what would change: in words (`summary`) for customers, and also
    the exact host script (`plan`) for staff. Send an `Idempotency-Key` header to make a retry
    safe: it answers with the first change, applied once."""
    await rate_limit(request, caller, Resource.dry_runs if body.dry_run else Resource.changes)
    new = NewChange(
        service_id=body.service_id,
        kind=body.kind,
        params=body.params,
        account_id=body.account_id,
        ticket=body.ticket,
    )
    if body.dry_run:
        plan = await _dry_run(platform, changes, caller, new)
        response.status_code = status.HTTP_200_OK
        return plan
    account_id = await _lane_account(caller, body, changes)
    key, digest = request_key(request, body)
    lane = _desk(platform).sessions_for(account_id)
    detail: ChangeDetail = await call(lane.request_change, account_id, caller, new, key, digest)
    return for_customer(detail) if caller.role == "customer" else detail


async def _dry_run(
    platform: Platform, changes: ChangeReads, caller: Principal, new: NewChange
) -> ChangePlan:
    """Read-only: the executor that owns the service's host checks the request as it would be
    checked for real and reads the host."""
    place = await asyncio.to_thread(changes.service_place, new.service_id)
    if place is None:
        raise ServiceNotFound(f"service {new.service_id} not found")
    plan: ChangePlan = await call(_executor(platform, place.host_id or 0).plan, caller, new)
    return plan


@router.get("/changes/catalog", response_model=Catalog)
async def change_catalog(caller: Caller) -> Catalog:
    """The change kinds the caller may request (customers: the self-service kinds; agents:
    their level's), each with its title, the services it is requested on, the fields the
    service fills in, and the JSON Schema of its `params`: the same model that validates a
    request, so a form built from it is checked once, by the server."""
    return catalog(caller)


SERVED_ERRORS = error_responses(
    {
        404: "`service_not_found` (also another account's, to customers)",
        409: "`invalid_transition`: the service is not of this kind, or has no host; "
        "`host_down`, `host_retired`: its host cannot be managed now (see its health)",
        503: "`host_unavailable`: the host could not be read now; `unavailable`",
    }
)


async def _own_service(caller: Principal, service_id: int, changes: ChangeReads,
                       kinds: tuple[str, ...]) -> ServicePlace:  # fmt: skip
    place = await asyncio.to_thread(changes.service_place, service_id)
    missing = ServiceNotFound(f"service {service_id} not found")
    if place is None:
        raise missing
    if caller.role == "customer" and place.account_id != caller.account_id:
        raise missing  # another account's service is answered like one that does not exist
    if place.kind not in kinds:
        raise InvalidTransition(f"service {service_id} is a {place.kind}, not a {kinds[0]}")
    if place.host_id is None:
        raise InvalidTransition(f"service {service_id} is on no managed host yet")
    return place


@router.get("/services/{service_id}/zone", response_model=ServedZone, responses=SERVED_ERRORS)
async def served_zone(
    service_id: Id, caller: Caller, platform: PlatformDep, changes: ChangeReadsDep
) -> ServedZone:
    """A DNS zone service's records as its host's name server serves them now (a zone
    transfer on the host, not the SCDB's memory of it): each in the fields of a dns_record_*
    change, `editable: false` for the SOA and NS records the host keeps."""
    place = await _own_service(caller, service_id, changes, ("dns_zone",))
    zone: ServedZone = await call(
        _executor(platform, place.host_id or 0).served_zone, place.host_id, service_id, place.name
    )
    return zone


async def _facts(platform: Platform, place: ServicePlace, kind: str, key: str) -> list[Any]:
    found: list[Any] = await call(_executor(platform, place.host_id or 0).facts, place.host_id,
                                  kind, key)  # fmt: skip
    return found


def _domain_of(place: ServicePlace) -> str:
    return place.name.rsplit("@", 1)[-1]


@router.get("/services/{service_id}/cron", response_model=ServedCron, responses=SERVED_ERRORS)
async def served_cron(
    service_id: Id, caller: Caller, platform: PlatformDep, changes: ChangeReadsDep
) -> ServedCron:
    """The cron jobs of the account of a web-hosting (or cron) service, as its host has them."""
    place = await _own_service(caller, service_id, changes, ("web_hosting", "cron"))
    entries = await _facts(platform, place, "cron", place.unix_user)
    return ServedCron(service_id=service_id, account=place.unix_user,
                      entries=[CronEntry.model_validate(e) for e in entries])  # fmt: skip


@router.get(
    "/services/{service_id}/forwarders", response_model=ServedForwarders, responses=SERVED_ERRORS
)
async def served_forwarders(
    service_id: Id, caller: Caller, platform: PlatformDep, changes: ChangeReadsDep
) -> ServedForwarders:
    """The mail forwarders of a mailbox's (or a domain's) domain, as its host has them now."""
    place = await _own_service(caller, service_id, changes,
                               ("mailbox", "domain", "dns_zone", "web_hosting"))  # fmt: skip
    found = await _facts(platform, place, "forwarders", _domain_of(place))
    return ServedForwarders(service_id=service_id, domain=_domain_of(place),
                            forwarders=[Forwarder.model_validate(f) for f in found])  # fmt: skip


@router.get(
    "/services/{service_id}/mailboxes", response_model=ServedMailboxes, responses=SERVED_ERRORS
)
async def served_mailboxes(
    service_id: Id, caller: Caller, platform: PlatformDep, changes: ChangeReadsDep
) -> ServedMailboxes:
    """The mailboxes of a mailbox's (or a domain's) domain with their quotas, as the host has
    them now."""
    place = await _own_service(caller, service_id, changes,
                               ("mailbox", "domain", "dns_zone", "web_hosting"))  # fmt: skip
    found = await _facts(platform, place, "mailboxes", _domain_of(place))
    return ServedMailboxes(service_id=service_id, domain=_domain_of(place),
                           mailboxes=[MailboxFact.model_validate(m) for m in found])  # fmt: skip


@router.get("/services/{service_id}/ftp", response_model=ServedFtpAccounts, responses=SERVED_ERRORS)
async def served_ftp(
    service_id: Id, caller: Caller, platform: PlatformDep, changes: ChangeReadsDep
) -> ServedFtpAccounts:
    """The FTP accounts of the service's account, as its host has them now."""
    place = await _own_service(caller, service_id, changes,
                               ("ftp_account", "web_hosting"))  # fmt: skip
    found = await _facts(platform, place, "ftp_accounts", place.unix_user)
    accounts = [FtpFact(username=f["username"]) for f in found]  # homes are host paths: kept back
    return ServedFtpAccounts(service_id=service_id, accounts=accounts)


@router.get(
    "/services/{service_id}/certificate", response_model=ServedCertificate,
    responses=SERVED_ERRORS,
)  # fmt: skip
async def served_certificate(
    service_id: Id, caller: Caller, platform: PlatformDep, changes: ChangeReadsDep
) -> ServedCertificate:
    """The TLS certificate installed for the site's domain, as its host has it now (none:
    `certificate` is null)."""
    place = await _own_service(caller, service_id, changes,
                               ("web_hosting", "domain", "tls_certificate"))  # fmt: skip
    found = await _facts(platform, place, "certificate", _domain_of(place))
    cert = CertificateFact.model_validate(found[0]) if found else None
    return ServedCertificate(service_id=service_id, domain=_domain_of(place), certificate=cert)


@router.get(
    "/changes/{change_id}",
    response_model=ChangeDetail,
    responses=error_responses({404: "`change_not_found` (also another account's, to customers)"}),
)
async def get_change(change_id: str, caller: Caller, changes: ChangeReadsDep) -> ChangeDetail:
    """One change with its status and every attempt; customers see their own account's."""
    customer = caller.role == "customer"
    missing = ChangeNotFound(f"change {change_id} not found")
    if customer and caller.account_id is None:
        raise missing
    mine = caller.account_id if customer else None
    detail = await asyncio.to_thread(changes.get, change_id, account_id=mine)
    if detail is None:
        raise missing
    return for_customer(detail) if customer else detail


# -- managed hosts (administrators) ---------------------------------------------------------
def require_admin(caller: Principal) -> None:
    if caller.role != "admin":
        raise Forbidden("managed hosts are for administrators")


@router.post(
    "/hosts",
    status_code=status.HTTP_201_CREATED,
    response_model=HostRead,
    responses=HOST_ERRORS,
)
async def register_host(
    body: HostCreate, request: Request, caller: Caller, platform: PlatformDep
) -> HostRead:
    """Register a managed host: its SSH address and port, the host key to pin (a different key
    is refused on connect), the client key to log in with, and the file layout it serves. The
    change executors check the client key where they run before the host is recorded. Send an
    `Idempotency-Key` header to make a retry safe: it answers with the first registration."""
    require_admin(caller)
    new = NewHost(
        name=body.name,
        address=body.address,
        ssh_port=body.port,
        ssh_user=body.user,
        role=body.role,
        host_key=body.host_key,
        credentials_ref=body.credentials_ref,
        root_dir=body.root_dir,
        layout=body.layout,
    )
    key, digest = request_key(request, body)
    registrar = executor_names()[REGISTRAR]
    host: HostRead = await call(_desk(platform).get(registrar).register_host, new, caller, key,
                                digest)  # fmt: skip
    if executor_name(host.id) != registrar:  # its own executor sets it up now
        try:
            await call(_executor(platform, host.id).add_host, host.id)
        except ComponentRestarting as exc:  # the executor reads its hosts when it is back
            log.warning("host %s registered, executor restarting: %s", host.name, exc)
    return host


class HostList(BaseModel):
    items: list[HostRead]


@router.get(
    "/hosts",
    response_model=HostList,
    responses=error_responses({403: "`forbidden`: managed hosts are for administrators"}),
)
async def list_hosts(caller: Caller, platform: PlatformDep, hosts: HostReadsDep) -> HostList:
    """Every managed host with its queue (changes pending) and health as its executor sees it."""
    require_admin(caller)
    found = await asyncio.to_thread(hosts.hosts)
    health = await platform.host_health()
    return HostList(
        items=[
            h.model_copy(update={"health": health.get(h.name, HostHealth(state="unknown"))})
            for h in found
        ]
    )


@router.get(
    "/hosts/{name}",
    response_model=HostRead,
    responses=error_responses({403: "`forbidden`", 404: "`host_not_found`"}),
)
async def get_host(
    name: str, caller: Caller, platform: PlatformDep, hosts: HostReadsDep
) -> HostRead:
    """One managed host with its queue and health."""
    require_admin(caller)
    found = await asyncio.to_thread(hosts.hosts, name)
    if not found:
        raise HostNotFound(f"host {name} not found")
    host = found[0]
    health = HostHealth(state="unknown")
    if platform.directory is not None:
        with contextlib.suppress(ComponentRestarting, ValueError):
            health = (await call(_executor(platform, host.id).status)).get(name, health)
    return host.model_copy(update={"health": health})


@router.get(
    "/hosts/{name}/drift",
    response_model=Drift,
    responses=error_responses(
        {
            403: "`forbidden`",
            404: "`host_not_found`",
            409: "`host_down`: the host cannot be managed as it is set up (see its health); "
            "`host_retired`",
            503: "`host_unavailable`, `unavailable`",
        }
    ),
)
async def host_drift(
    name: str, caller: Caller, platform: PlatformDep, hosts: HostReadsDep
) -> Drift:
    """Drift between the SCDB and the host: the mailboxes and FTP accounts the SCDB has on it
    that the host does not (`missing_on_host`), and those the host has at its accounts' domains
    and users that the SCDB does not (`unknown_to_scdb`), read from the host now."""
    require_admin(caller)
    found = await asyncio.to_thread(hosts.hosts, name)
    if not found:
        raise HostNotFound(f"host {name} not found")
    if found[0].status == "retired":
        raise HostRetired(f"host {name} is retired: nothing is managed there")
    drift: Drift = await call(_executor(platform, found[0].id).drift, found[0].id)
    return drift
