"""Changes to customers' hosting (applied by GDCAS on the managed hosts), and the hosts."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
from typing import Any

from fastapi import APIRouter, Request, Response, status
from pydantic import BaseModel, Field, ValidationError, field_validator

from actors import names
from actors.changes.access import for_customer
from actors.changes.dto import ChangeDetail, ChangePlan, HostHealth, HostRead, NewChange, NewHost
from actors.changes.executor import SHARDS, executor_name
from actors.changes.hosts import HostRegistry
from actors.changes.requests import ChangeService
from actors.directory import fire
from actors.errors import InvalidChange, RateLimited
from actors.principal import Principal
from actors.text import Params
from automation.host import AbsolutePath, HostAddress
from automation.ssh import parse_host_key
from cluster.calls import ComponentRestarting, call
from gateway.auth import Caller, PlatformDep
from gateway.errors import Forbidden, NotFound, ServiceUnavailable, Unprocessable
from gateway.idempotency import request_key
from gateway.platform import Platform
from gateway.routes.tickets import retry_later
from gateway.schemas import Strict

log = logging.getLogger(__name__)

router = APIRouter(prefix="/api/v1", tags=["changes"])

HOST_NAME = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"


class ChangeCreate(Strict):
    service_id: int = Field(description="The service the change is for (one of the account's).")
    kind: str = Field(min_length=1, max_length=48, description="e.g. dns_record_add")
    params: Params = Field(
        default_factory=dict,
        description="The change's parameters; fields the service implies (the zone of a "
        "dns_zone service, the address of a mailbox) may be left out. At most 200 KiB of "
        "JSON, 6 levels deep; no control characters but line breaks and tabs.",
    )
    account_id: int | None = Field(default=None, description="Staff: the account (checked).")
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
    user: str = Field(default="root", pattern=r"^[a-z_][a-z0-9_-]{0,31}$")
    role: str = Field(default="shared", pattern=r"^(shared|web|mail|dns|database|ftp)$")
    host_key: str = Field(
        min_length=20, max_length=4000, description="The host's public key, an OpenSSH line."
    )
    # The executors check the key file itself (a 0600 regular file of theirs) where they run.
    credentials_ref: AbsolutePath = Field(
        max_length=255, description="Absolute path of the client private key."
    )
    root_dir: AbsolutePath = Field(
        max_length=255, description="Prefix of every file GDCAS manages (not `/`)."
    )
    layout: dict[str, Any] = Field(
        default_factory=dict,
        description="Service ports and tools: dns_port, http_port, rndc, nginx, ...",
    )


def changes_of(request: Request, platform: Platform) -> ChangeService:
    service: ChangeService | None = getattr(request.app.state, "change_service", None)
    if service is None:
        service = ChangeService(platform.db, platform.actor_config)
        request.app.state.change_service = service
    return service


def executor(platform: Platform, host_id: int) -> Any:
    if platform.directory is None:
        return None
    return platform.directory.get(executor_name(host_id))


def executors(platform: Platform) -> list[Any]:
    if platform.directory is None:
        return []
    return [platform.directory.get(names.change_executor(i)) for i in range(SHARDS)]


def _invalid(exc: InvalidChange) -> Unprocessable:
    detail = [
        {"field": e.split(":", 1)[0] if ":" in e else "params", "problem": e} for e in exc.errors
    ]
    return Unprocessable(exc.message, detail=detail, code="invalid_change")


@router.post(
    "/changes",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ChangeDetail | ChangePlan,
    responses={200: {"model": ChangePlan, "description": "The plan of a dry run."}},
)
async def request_change(
    body: ChangeCreate,
    request: Request,
    response: Response,
    caller: Caller,
    platform: PlatformDep,
) -> ChangeDetail | ChangePlan:
    """Ask for a change to a service's hosting; it is applied on the host at once.

    Customers change their own services, and only the self-service kinds (DNS records, mailbox
    password and quota, FTP password, cron), at most 60 an hour per account (then 429). Agents
    change any account's services, the kinds their level may ask for, and link the change to
    its ticket (`ticket`), which waits in `pending_change` until the change settles.
    Answers 202 with the change (`status: queued`); follow it on `GET /api/v1/changes/{id}` or
    live on `GET /api/v1/events` (`change.applied`, `change.failed`, `change.rolled_back`). A
    failed self-service change opens a ticket for support (a repeated failure of the same
    service is added to that ticket while it is open). With `dry_run: true` nothing is applied
    and the answer (200) says what would change: in words (`summary`) for customers, and also
    the exact host script (`plan`) for staff. Send an `Idempotency-Key` header to make a retry
    safe: it answers with the first change, applied once."""
    service = changes_of(request, platform)
    new = NewChange(
        service_id=body.service_id,
        kind=body.kind,
        params=body.params,
        account_id=body.account_id,
        ticket=body.ticket,
    )
    try:
        if body.dry_run:
            return await _dry_run(platform, service, caller, new, response)
        key, digest = request_key(request, body)
        detail = await asyncio.to_thread(service.create, caller, new, key=key, request_hash=digest)
    except InvalidChange as exc:
        raise _invalid(exc) from None
    except RateLimited as exc:
        raise retry_later(exc) from None
    if platform.directory is not None and detail.host_id is not None:
        fire(platform.directory.notifier().poke)
        if detail.status in ("queued", "applying"):
            try:
                await call(executor(platform, detail.host_id).submit, [detail.id])
            except ComponentRestarting as exc:  # queued in the SCDB: the executor resumes it
                log.warning("change %s stays queued: %s", detail.id, exc)
    return for_customer(detail) if caller.role == "customer" else detail


async def _dry_run(
    platform: Platform,
    service: ChangeService,
    caller: Principal,
    new: NewChange,
    response: Response,
) -> ChangePlan:
    target = await asyncio.to_thread(service.plan_target, caller, new)
    handle = executor(platform, target.host_id)
    if handle is None:
        raise ServiceUnavailable("the change executors (Ray actors) are not running")
    plan: str = await call(handle.dry_run, target.host_id, target.change)
    response.status_code = status.HTTP_200_OK
    return ChangePlan(
        kind=target.change.kind,
        service_id=target.service_id,
        host=target.host_name,
        summary=target.change.describe(),
        # The script holds whole files of the host, other tenants' lines of shared ones (a
        # passwd file: their addresses and hashes) among them: staff only.
        plan=plan if caller.is_staff else None,
    )


@router.get("/changes/{change_id}", response_model=ChangeDetail)
async def get_change(
    change_id: str, request: Request, caller: Caller, platform: PlatformDep
) -> ChangeDetail:
    """One change with its status and every attempt; customers see their own account's."""
    service = changes_of(request, platform)
    return await asyncio.to_thread(service.get, change_id, caller)


# -- managed hosts (administrators) ---------------------------------------------------------
def require_admin(caller: Principal) -> None:
    if caller.role != "admin":
        raise Forbidden("managed hosts are for administrators")


async def _health(platform: Platform) -> dict[str, HostHealth]:
    out: dict[str, HostHealth] = {}
    for handle in executors(platform):
        try:
            out.update(await call(handle.status))
        except ComponentRestarting:
            continue
    return out


@router.post("/hosts", status_code=status.HTTP_201_CREATED, response_model=HostRead)
async def register_host(
    body: HostCreate, request: Request, caller: Caller, platform: PlatformDep
) -> HostRead:
    """Register a managed host: its SSH address and port, the host key to pin (a different key
    is refused on connect), the client key to log in with, and the file layout it serves."""
    require_admin(caller)
    try:
        parse_host_key(body.host_key)
    except Exception as exc:
        raise Unprocessable(
            f"host_key is not an OpenSSH public key line: {exc}",
            detail=[{"field": "host_key", "problem": str(exc)}],
        ) from None
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
    try:
        host = await asyncio.to_thread(HostRegistry(platform.db).register_host, new, caller)
    except ValidationError as exc:
        detail = [
            {"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in exc.errors()
        ]
        raise Unprocessable("the host's layout is not valid", detail=detail) from None
    handle = executor(platform, host.id)
    if handle is not None:
        try:
            await call(handle.add_host, host.id)
        except ComponentRestarting as exc:  # the executor reads its hosts when it is back
            log.warning("host %s registered, executor restarting: %s", host.name, exc)
    return host


class HostList(BaseModel):
    items: list[HostRead]


@router.get("/hosts", response_model=HostList)
async def list_hosts(request: Request, caller: Caller, platform: PlatformDep) -> HostList:
    """Every managed host with its queue (changes pending) and health as its executor sees it."""
    require_admin(caller)
    hosts = await asyncio.to_thread(HostRegistry(platform.db).hosts)
    health = await _health(platform)
    return HostList(
        items=[
            h.model_copy(update={"health": health.get(h.name, HostHealth(state="unknown"))})
            for h in hosts
        ]
    )


@router.get("/hosts/{name}", response_model=HostRead)
async def get_host(name: str, request: Request, caller: Caller, platform: PlatformDep) -> HostRead:
    """One managed host with its queue and health."""
    require_admin(caller)
    hosts = await asyncio.to_thread(HostRegistry(platform.db).hosts, name)
    if not hosts:
        raise NotFound(f"host {name} not found")
    host = hosts[0]
    handle = executor(platform, host.id)
    health = HostHealth(state="unknown")
    if handle is not None:
        with contextlib.suppress(ComponentRestarting):
            health = (await call(handle.status)).get(name, health)
    return host.model_copy(update={"health": health})
