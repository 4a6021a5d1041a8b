"""Trouble tickets: open, list, read, and every step of their life. A new ticket and a message
may come with files (multipart/form-data beside the JSON body, gateway/uploads.py)."""

from __future__ import annotations

import asyncio
import re
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, status

from actors.errors import AccountNotFound, RateLimited, TicketNotFound
from actors.principal import Principal
from actors.tickets.commands import (
    Close,
    Escalate,
    Handover,
    Reopen,
    Reply,
    Resolve,
    Take,
    TicketCommand,
)
from actors.tickets.dto import NewTicket, OpOutcome
from cluster.calls import call
from gateway.auth import Caller, PlatformDep
from gateway.deps import AccountReadsDep, TicketReadsDep
from gateway.errors import (
    Forbidden,
    ServiceUnavailable,
    TooManyRequests,
    Unprocessable,
    UploadErrorBody,
    error_responses,
)
from gateway.idempotency import request_key
from gateway.platform import Platform
from gateway.ratelimit import Resource, rate_limit
from gateway.schemas import (
    MAX_ID,
    EscalateIn,
    HandoverIn,
    Id,
    MessageCreate,
    Page,
    ResolveIn,
    TicketCreate,
)
from gateway.uploads import UploadRoute, Uploads, hashed_request, multipart_doc
from store.models.enums import CUSTOMER_CHANNELS, Channel, TicketStatus, Visibility
from store.models.ticket import ticket_id_from_number
from store.read.tickets import TicketDetail, TicketRead
from store.repositories import TicketRepository
from store.repositories.ticket import TicketFilter

router = APIRouter(prefix="/api/v1/tickets", tags=["tickets"], route_class=UploadRoute)

UPLOAD_ERRORS = {
    413: "`body_too_large` (over 1 MiB of JSON, over 10 MiB with files), `file_too_large` "
    "(one file over 5 MiB; `detail` names it)",
    507: "`insufficient_storage`: keeping the files would leave the desk's disk short of its "
    "reserve (`SITEDESK_MIN_FREE_DISK_MB`); nothing is made: send them later",
}
OPEN_ERRORS = error_responses(
    {
        401: "`unauthorized`: no valid token",
        403: "`forbidden`: a customer's channel other than `portal` or `api`; "
        "`priority_not_allowed`: a customer chose `urgent`",
        404: "`account_not_found` (also another customer's account)",
        **UPLOAD_ERRORS,
        422: "`invalid_request` (`detail` names each field), `contact_not_found`, "
        "`invalid_upload` (a malformed form), `too_many_files` (over 10), "
        "`idempotency_key_reused`, `invalid_idempotency_key`",
        429: "`rate_limited`: new tickets per minute (a customer account's, a staff token's: "
        "`SITEDESK_TICKETS_PER_MINUTE`), requests per minute, a customer account's tickets per "
        "hour; with Retry-After",
        503: "`unavailable`: the desk (Ray actors) is not running or restarting; "
        "`intake_busy`: too many new tickets wait in this gateway (`SITEDESK_TICKET_QUEUE_MAX`); "
        "`rate_limits_unavailable`: Redis unreachable; with Retry-After",
    },
    models={422: UploadErrorBody},
)
MESSAGE_ERRORS = error_responses(
    {
        401: "`unauthorized`: no valid token",
        403: "`forbidden`: a customer's internal note; `not_allowed`: a ticket above the "
        "agent's level",
        404: "`ticket_not_found` (also another customer's ticket)",
        409: "`invalid_transition`: the ticket is closed",
        **UPLOAD_ERRORS,
        422: "`invalid_request` (`detail` names each field), `invalid_upload`, "
        "`too_many_files` (over 10), `idempotency_key_reused`, `invalid_idempotency_key`",
        503: "`unavailable`: the desk (Ray actors) is not running or restarting",
    },
    models={422: UploadErrorBody},
)
STEP_NOT_FOUND = "`ticket_not_found` (also another customer's ticket)"
STEP_ERRORS = {
    403: "`forbidden`, `not_allowed`: a step the caller's role, or an agent's level, may not "
    "take on this ticket",
    404: STEP_NOT_FOUND,
    409: "`invalid_transition`: the ticket's status does not allow the step",
    422: "`invalid_request`, `idempotency_key_reused`, `invalid_idempotency_key`",
}


def step_errors(more: dict[int, str] | None = None) -> dict[int | str, dict[str, Any]]:
    """The errors of a step on one ticket, with what only this step adds to a status."""
    codes = dict(STEP_ERRORS)
    for code, text in (more or {}).items():
        codes[code] = f"{codes[code]}; {text}"
    return error_responses(codes)


def directory(platform: Platform) -> Any:
    if platform.directory is None:
        raise ServiceUnavailable("the ticket desk (Ray actors) is not running")
    return platform.directory


@router.post(
    "",
    status_code=status.HTTP_201_CREATED,
    response_model=TicketRead,
    responses=OPEN_ERRORS,
    openapi_extra=multipart_doc("TicketCreate"),
)
async def open_ticket(
    body: TicketCreate,
    files: Uploads,
    request: Request,
    caller: Caller,
    platform: PlatformDep,
    accounts: AccountReadsDep,
) -> TicketRead:
    """Open a ticket. Customers open one for their own account (portal or API); agents open one
    for any account, e.g. logging a phone call with `channel: phone`. Send an `Idempotency-Key`
    header to make a retry safe: it returns the ticket of the first call.

    Files go with it as `multipart/form-data`: the JSON in a `payload` part (or its fields as
    form fields) and each file in a `files` part; they are stored on the ticket's first
    message in the same transaction as the ticket (`messages[0].attachments`)."""
    await rate_limit(request, caller, Resource.tickets)
    if caller.role == "customer":
        if body.account_id is not None and body.account_id != caller.account_id:
            raise AccountNotFound(f"account {body.account_id} not found")
        account_id = caller.account_id
        channel = body.channel or caller.via or Channel.portal
        if channel not in CUSTOMER_CHANNELS:
            raise Forbidden("customers open tickets through the portal or the API")
    else:
        if body.account_id is None:
            raise Unprocessable(
                "account_id is required when staff open a ticket",
                detail=[{"field": "account_id", "problem": "required"}],
            )
        account_id = body.account_id
        channel = body.channel or Channel.phone
    assert account_id is not None
    if not platform.account_known(account_id):  # one query per account, not per ticket
        if not await asyncio.to_thread(accounts.exists, account_id):
            raise AccountNotFound(f"account {account_id} not found")
        platform.remember_account(account_id)
    key, digest = request_key(request, hashed_request(body, files))
    item = NewTicket(
        account_id=account_id,
        subject=body.subject,
        body=body.body,
        channel=channel,
        priority=body.priority,
        category=body.category,
        contact_id=body.contact_id,
        requester=caller,
        idempotency_key=key,
        request_hash=digest,
        attachments=files,
    )
    directory(platform)  # 503 when the desk is not running
    try:
        return await platform.file_ticket(item)
    except RateLimited as exc:
        raise retry_later(exc) from None


def retry_later(exc: RateLimited) -> TooManyRequests:
    """A per-account limit as a 429 with `Retry-After` (the actor's error keeps its args)."""
    retry_after = getattr(exc, "retry_after", None) or (exc.args[1] if len(exc.args) > 1 else 60)
    return TooManyRequests(exc.message, retry_after=int(retry_after))


@router.get("", response_model=Page[TicketRead])
async def list_tickets(
    caller: Caller,
    tickets: TicketReadsDep,
    status_: Annotated[list[TicketStatus] | None, Query(alias="status")] = None,
    tier: Annotated[int | None, Query(ge=1, le=3)] = None,
    owner: Annotated[str | None, Query(description="An agent id, or 'me'.")] = None,
    account: Annotated[Id | None, Query(description="Staff only; customers see their own.")] = None,
    unowned: bool = False,
    offset: Annotated[int, Query(ge=0, le=MAX_ID)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Page[TicketRead]:
    """Tickets, newest first. Customers see their own account's tickets only."""
    owner_id: int | None = None
    if owner is not None:
        if owner == "me":
            if caller.agent_id is None:
                raise Unprocessable("owner=me needs an agent's token")
            owner_id = caller.agent_id
        elif re.fullmatch(r"[0-9]{1,9}", owner):  # ASCII digits: "²".isdigit() is True
            owner_id = int(owner)
        else:
            raise Unprocessable(
                "owner must be an agent id or 'me'",
                detail=[{"field": "owner", "problem": "not an agent id"}],
            )
    if caller.role == "customer":
        account = caller.account_id
    flt = TicketFilter(
        status=tuple(s.value for s in status_ or ()),
        tier=tier,
        owner_agent_id=owner_id,
        account_id=account,
        unowned=unowned,
    )

    items, total = await asyncio.to_thread(tickets.search, flt, offset=offset, limit=limit)
    return Page[TicketRead](items=items, total=total, offset=offset, limit=limit)


def visible_ticket(platform: Platform, caller: Principal, number: str) -> tuple[int, int]:
    """(ticket id, account id) of a ticket the caller may see; 404 otherwise, never 403."""
    ticket_id = ticket_id_from_number(number)
    if ticket_id is None:
        raise TicketNotFound(f"ticket {number} not found")
    with platform.db.read() as s:
        t = TicketRepository(s).find(ticket_id)
        if t is None or (caller.role == "customer" and t.account_id != caller.account_id):
            raise TicketNotFound(f"ticket {number} not found")
        return t.id, t.account_id


@router.get(
    "/{number}", response_model=TicketDetail, responses=error_responses({404: STEP_NOT_FOUND})
)
async def get_ticket(
    number: str, caller: Caller, platform: PlatformDep, tickets: TicketReadsDep
) -> TicketDetail:
    """One ticket with its messages and events (internal notes only for staff)."""
    ticket_id, _ = await asyncio.to_thread(visible_ticket, platform, caller, number)
    return await asyncio.to_thread(tickets.detail, ticket_id, include_internal=caller.is_staff)


async def operate(
    platform: Platform,
    caller: Principal,
    request: Request,
    number: str,
    command: TicketCommand,
    body: Any = None,
) -> TicketRead:
    """Send one command to the ticket's account lane; `body` is what the idempotency key's
    request hash covers (the request as the client sent it)."""
    ticket_id, account_id = await asyncio.to_thread(visible_ticket, platform, caller, number)
    key, digest = request_key(request, body if body is not None else {})
    sessions = directory(platform).sessions_for(account_id)
    outcome: OpOutcome = await call(
        sessions.operate, account_id, ticket_id, command, caller, key, digest
    )
    return outcome.ticket


@router.post(
    "/{number}/messages",
    status_code=201,
    response_model=TicketRead,
    responses=MESSAGE_ERRORS,
    openapi_extra=multipart_doc("MessageCreate"),
)
async def add_message(
    number: str,
    body: MessageCreate,
    files: Uploads,
    request: Request,
    caller: Caller,
    platform: PlatformDep,
) -> TicketRead:
    """Add a message. Customers post public replies (a reply reopens a resolved ticket);
    agents reply publicly or add internal notes, and may set the ticket to wait on the customer.
    A message keeps the channel it came by: a customer's is `portal` or `api` (how they are
    logged in), staff's the one they name, else the ticket's own.

    Files go with it as `multipart/form-data` (a `payload` part with this JSON, or its fields
    as form fields, and `files` parts), stored with the message in its transaction; an internal
    note's files are seen by staff only."""
    channel = body.channel
    if caller.role == "customer":
        if body.visibility != "public":
            raise Forbidden("customers can only post public messages")
        if channel is not None:
            raise Unprocessable(
                "a customer's message has the channel it comes by; leave `channel` out",
                detail=[{"field": "channel", "problem": "for staff only"}],
            )
        channel = caller.via or Channel.portal
    command = Reply(
        body=body.body,
        visibility=Visibility(body.visibility),
        pending_customer=body.pending_customer,
        channel=channel,
        attachments=files,
    )
    return await operate(platform, caller, request, number, command, hashed_request(body, files))


@router.post(
    "/{number}/take",
    response_model=TicketRead,
    responses=step_errors({409: "`already_owned`: another agent owns it"}),
)
async def take(number: str, request: Request, caller: Caller, platform: PlatformDep) -> TicketRead:
    """An agent takes ownership of a waiting ticket of their tier."""
    if caller.role != "agent":
        raise Forbidden("only agents take tickets")
    return await operate(platform, caller, request, number, Take())


@router.post(
    "/{number}/handover",
    response_model=TicketRead,
    responses=step_errors({422: "`invalid_handover`: not an agent of the ticket's level"}),
)
async def handover(
    number: str, body: HandoverIn, request: Request, caller: Caller, platform: PlatformDep
) -> TicketRead:
    """Hand the ticket to another agent of the same tier."""
    if not caller.is_staff:
        raise Forbidden("only support staff hand over tickets")
    return await operate(platform, caller, request, number, Handover(agent_id=body.agent_id), body)


@router.post(
    "/{number}/escalate",
    response_model=TicketRead,
    responses=step_errors({409: "`top_tier_reached`: already at level 3"}),
)
async def escalate(
    number: str, body: EscalateIn, request: Request, caller: Caller, platform: PlatformDep
) -> TicketRead:
    """Escalate to the next support tier (1 → 2 → 3); a fourth level is refused with 409."""
    if not caller.is_staff:
        raise Forbidden("only support staff escalate tickets")
    return await operate(platform, caller, request, number, Escalate(reason=body.reason), body)


@router.post("/{number}/resolve", response_model=TicketRead, responses=step_errors())
async def resolve(
    number: str,
    request: Request,
    caller: Caller,
    platform: PlatformDep,
    body: ResolveIn | None = None,
) -> TicketRead:
    """Mark the ticket resolved, optionally with a closing public note to the customer."""
    if not caller.is_staff:
        raise Forbidden("only support staff resolve tickets")
    command = Resolve(note=body.note if body else None)
    return await operate(platform, caller, request, number, command, body)


@router.post("/{number}/reopen", response_model=TicketRead, responses=step_errors())
async def reopen(
    number: str, request: Request, caller: Caller, platform: PlatformDep
) -> TicketRead:
    """Reopen a resolved ticket (customer or staff)."""
    return await operate(platform, caller, request, number, Reopen())


@router.post("/{number}/close", response_model=TicketRead, responses=step_errors())
async def close(number: str, request: Request, caller: Caller, platform: PlatformDep) -> TicketRead:
    """Close the ticket for good (customer or staff); a closed ticket can not be reopened."""
    return await operate(platform, caller, request, number, Close())
