"""Phone calls: an agent logs a call on a ticket or opens a ticket from one, looks up who a
number is, and the telephony provider's signed webhook reports calls ringing and ending."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request, status
from pydantic import AwareDatetime, BaseModel, Field

from actors.phone.numbers import InvalidPhoneNumber, to_e164
from actors.phone.webhook import SIGNATURE_HEADER, CallStarted, verify_event
from actors.text import Line, Text
from actors.tickets.calls import CallOpen, CallReceipt
from actors.tickets.commands import CallId, LogCall
from cluster.calls import call
from gateway.auth import Caller, PlatformDep, require_staff
from gateway.errors import ErrorBody, ServiceUnavailable, error_responses
from gateway.idempotency import request_key
from gateway.ratelimit import Resource, rate_limit
from gateway.routes.tickets import directory, operate
from gateway.schemas import Id, Strict
from store.models.enums import CallDirection, Visibility
from store.read.calls import CallReads, NumberLookup
from store.read.tickets import TicketRead

router = APIRouter(prefix="/api/v1", tags=["calls"])

# The webhook's clock; tests of the window sign with timestamps relative to it.
clock: Callable[[], datetime] = lambda: datetime.now(UTC)  # noqa: E731

NUMBER = "`invalid_phone_number`: a number that is not a valid phone number (the reason says why)"


class CallFields(Strict):
    number: str = Field(
        min_length=1, max_length=64,
        description="The customer's number: the caller inbound, the one called outbound. Any "
        "spelling; national numbers are read as German (`030 1234567`), else start with +.",
    )  # fmt: skip
    callee_number: str | None = Field(
        default=None, min_length=1, max_length=64, description="The number called (inbound)."
    )
    direction: CallDirection = CallDirection.inbound
    duration_seconds: int = Field(default=0, ge=0, le=24 * 3600)
    notes: Text = Field(default="", max_length=100_000)
    visibility: Visibility = Field(
        default=Visibility.internal,
        description="Call notes are internal by default, as helpdesks keep them; `public` "
        "shows them to the customer and counts as the first response.",
    )
    started_at: AwareDatetime | None = Field(
        default=None, description="When the call began; left out: it ended now."
    )
    provider_call_id: CallId | None = Field(
        default=None, description="The telephony provider's id: a call with one is logged once."
    )


class CallCreate(CallFields):
    subject: Line | None = Field(default=None, min_length=1, max_length=300)
    account_id: Id | None = Field(
        default=None, description="Needed when the number is on no contact (or on several)."
    )


def _e164(field: str, raw: str) -> str:
    try:
        return to_e164(raw)
    except InvalidPhoneNumber as exc:
        raise InvalidPhoneNumber(
            f"{field}: {exc.message}", detail=[{"field": field, "problem": exc.message}]
        ) from None


@router.post(
    "/calls",
    status_code=status.HTTP_201_CREATED,
    response_model=CallReceipt,
    responses=error_responses(
        {
            403: "`forbidden`: staff only",
            404: "`account_not_found`",
            422: f"{NUMBER}; `unknown_number`: the number is on no contact and no `account_id` "
            "was given; `ambiguous_number`: it is on several accounts; `invalid_request`",
            429: "`rate_limited`: new tickets per minute of the staff token "
            "(`SITEDESK_TICKETS_PER_MINUTE`), requests per minute; with Retry-After",
            503: "`rate_limits_unavailable`: Redis unreachable, with Retry-After; `unavailable`",
        }
    ),
)
async def open_from_call(
    body: CallCreate, request: Request, caller: Caller, platform: PlatformDep
) -> CallReceipt:
    """Open a phone ticket from a call an agent took, with the call logged on it. The number
    finds the caller's contact and account (compared in E.164, whatever the spelling); a number
    the desk does not know needs `account_id`. Send an `Idempotency-Key` to make a retry safe."""
    require_staff(caller)
    await rate_limit(request, caller, Resource.tickets)
    item = CallOpen(
        number=_e164("number", body.number),
        callee_number=_e164("callee_number", body.callee_number) if body.callee_number else None,
        direction=body.direction,
        duration_seconds=body.duration_seconds,
        notes=body.notes,
        visibility=body.visibility,
        subject=body.subject,
        account_id=body.account_id,
        started_at=body.started_at,
        provider_call_id=body.provider_call_id,
    )
    key, digest = request_key(request, body)
    intake = directory(platform).intake()
    receipt: CallReceipt = await call(intake.open_from_call, item, caller, key, digest)
    return receipt


@router.post(
    "/tickets/{number}/calls",
    status_code=status.HTTP_201_CREATED,
    response_model=TicketRead,
    tags=["tickets"],
    responses=error_responses(
        {
            403: "`forbidden`: staff only; `not_allowed`: a public call log on a ticket above "
            "your level",
            404: "`ticket_not_found`",
            409: "`invalid_transition`: the ticket is closed",
            422: f"{NUMBER}; `invalid_request`",
        }
    ),
)
async def log_call(
    number: str, body: CallFields, request: Request, caller: Caller, platform: PlatformDep
) -> TicketRead:
    """Log a phone call on a ticket: the call is kept (numbers in E.164, direction, duration)
    and its notes become a message on the `phone` channel, internal unless `visibility` is
    `public`. The same `provider_call_id` twice makes one call."""
    require_staff(caller)
    customer = _e164("number", body.number)
    other = _e164("callee_number", body.callee_number) if body.callee_number else None
    outbound = body.direction is CallDirection.outbound
    command = LogCall(
        caller_number=(other or customer) if outbound else customer,
        callee_number=customer if outbound else other,
        direction=body.direction,
        duration_seconds=body.duration_seconds,
        notes=body.notes,
        visibility=body.visibility,
        started_at=body.started_at,
        provider_call_id=body.provider_call_id,
    )
    return await operate(platform, caller, request, number, command, body)


@router.get(
    "/calls",
    response_model=NumberLookup,
    responses=error_responses({403: "`forbidden`: staff only", 422: NUMBER}),
)
async def who_is(
    caller: Caller,
    platform: PlatformDep,
    number: Annotated[str, Query(min_length=1, max_length=64, description="Any spelling.")],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> NumberLookup:
    """Who a phone number is: the contacts it belongs to and their accounts (with each one's
    open ticket), and those accounts' recent calls, newest first. Staff only."""
    require_staff(caller)
    e164 = _e164("number", number)
    return await asyncio.to_thread(CallReads(platform.db).lookup, e164, limit=limit)


class EventProblem(BaseModel):
    loc: list[str] = Field(description="Where in the event: field names from the top down.")
    msg: str


class MalformedEventBody(ErrorBody):
    """The webhook's 422: the provider's event fields, as pydantic locates them."""

    detail: list[EventProblem] | None = None


@router.post(
    "/calls/events",
    response_model=CallReceipt,
    responses=error_responses(
        {
            400: "`malformed_signature_header`: the `Sitedesk-Signature` header is missing or "
            "not `t=<unix>,v1=<hex>`",
            401: "`bad_signature`: no signature matches the body under the shared secret; "
            "`stale_timestamp`: signed more than 5 minutes away from our clock (a replay)",
            413: "`event_too_large`: a body over 64 KiB",
            422: "`malformed_event`: signed, but not a valid call event (`detail` lists the "
            "fields)",
            503: "`telephony_not_configured`: no shared secret is set (SITEDESK_TELEPHONY_SECRET)",
        },
        models={422: MalformedEventBody},
    ),
)
async def call_event(request: Request, platform: PlatformDep) -> CallReceipt:
    """The telephony provider's webhook. No bearer token: the signature is the proof. The
    `Sitedesk-Signature` header is `t=<unix seconds>,v1=<hex HMAC-SHA256 of "<t>." + body>`
    under the shared secret, as Stripe signs; a request more than 5 minutes from our clock is
    refused, so a captured one can not be replayed later.

    `call.started` (`call_id`, `from`, `to`, `direction`, `started_at`, `agent`: the answering
    agent's e-mail) keeps the call ringing and opens the caller's account in that agent's
    console. `call.ended` (also `ended_at`, `duration_seconds`) logs the call on the caller's
    open ticket, or opens a phone ticket. Repeated events change nothing twice."""
    secrets = platform.settings.telephony_secrets
    if not secrets:
        raise ServiceUnavailable(
            "the telephony webhook is not configured: set SITEDESK_TELEPHONY_SECRET",
            code="telephony_not_configured",
        )
    body = await request.body()
    event = verify_event(body, request.headers.get(SIGNATURE_HEADER), secrets, now=clock())
    intake = directory(platform).intake()
    if isinstance(event, CallStarted):
        started: CallReceipt = await call(intake.call_started, event)
        return started
    ended: CallReceipt = await call(intake.call_ended, event)
    return ended
