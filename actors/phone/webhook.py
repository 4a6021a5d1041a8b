"""The telephony webhook, ``POST /api/v1/calls/events``: a signed event checked and read.

The provider signs each request as Stripe does: header ``Sitedesk-Signature: t=<unix>,v1=<hex>``
where the hex is HMAC-SHA256, keyed by a shared secret, over ``f"{t}.".encode() + body``. Several
``v1`` values (the provider signing with an old and a new secret) and several secrets of ours
(rotation on our side) are allowed: one match is enough. A request is refused outside a 5-minute
window around our clock (both directions), so a captured request cannot be replayed later; within
the window the consumer keeps ``(call_id, type)`` idempotent. The body is then validated into a
typed event, its numbers in E.164 (actors/phone/numbers.py)."""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    NonNegativeInt,
    TypeAdapter,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from actors.errors import DeskError
from actors.phone.numbers import DEFAULT_REGION, to_e164

SIGNATURE_HEADER = "Sitedesk-Signature"
TOLERANCE = timedelta(minutes=5)
MAX_BODY_BYTES = 64 * 1024
MAX_HEADER_CHARS = 1024
MAX_SIGNATURES = 8
MIN_SECRET_BYTES = 16

_TIMESTAMP = re.compile(r"[0-9]{1,12}", re.ASCII)
_HEX = re.compile(r"[0-9a-fA-F]{64}", re.ASCII)
_TEXT_ID = r"^[A-Za-z0-9][A-Za-z0-9._:@+-]*$"  # ids and agent handles: printable, no spaces

Secret = str | bytes


# -- refusals ----------------------------------------------------------------------------
class WebhookRefused(DeskError):
    """A webhook request the desk does not act on; each reason has its own code."""

    code, status = "webhook_refused", 400


class MalformedSignatureHeader(WebhookRefused):
    """The signature header is missing or not ``t=<unix>,v1=<hex>[,v1=<hex>...]``."""

    code, status = "malformed_signature_header", 400


class BadSignature(WebhookRefused):
    """No signature in the header matches the body under any of our secrets."""

    code, status = "bad_signature", 401


class StaleTimestamp(WebhookRefused):
    """A correctly signed request whose timestamp is outside the window (old or future)."""

    code, status = "stale_timestamp", 401


class EventTooLarge(WebhookRefused):
    """A body over MAX_BODY_BYTES, refused before any work on it."""

    code, status = "event_too_large", 413


class MalformedEvent(WebhookRefused):
    """A correctly signed body that is not a valid call event; `detail` lists the fields."""

    code, status = "malformed_event", 422


# -- events ------------------------------------------------------------------------------
CallId = Annotated[str, Field(min_length=1, max_length=128, pattern=_TEXT_ID)]
AgentHandle = Annotated[str, Field(min_length=1, max_length=254, pattern=_TEXT_ID)]


class _CallEventBase(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore", populate_by_name=True)

    call_id: CallId
    direction: Literal["inbound", "outbound"] = "inbound"
    # None: the caller withheld the number (an anonymous call); a bad number is refused
    from_number: str | None = Field(alias="from")
    to_number: str = Field(alias="to")
    agent: AgentHandle | None = None
    started_at: AwareDatetime

    @field_validator("from_number", "to_number", mode="before")
    @classmethod
    def _e164(cls, value: Any, info: ValidationInfo) -> Any:
        if not isinstance(value, str):
            return value  # None or a wrong type: left to the field's own type check
        region = (info.context or {}).get("region", DEFAULT_REGION)
        return to_e164(value, region)

    @property
    def customer_number(self) -> str | None:
        """The customer's end of the call: the caller inbound, the callee outbound."""
        return self.from_number if self.direction == "inbound" else self.to_number


class CallStarted(_CallEventBase):
    """A call is ringing or was answered: the console shows the caller's account."""

    type: Literal["call.started"]


class CallEnded(_CallEventBase):
    """A call is over: it is logged on the open ticket or opens one. `duration_seconds` is the
    talk time the provider reports (at most the span from start to end); absent, that span."""

    type: Literal["call.ended"]
    ended_at: AwareDatetime
    duration_seconds: NonNegativeInt | None = None

    @model_validator(mode="after")
    def _consistent(self) -> CallEnded:
        span = self.ended_at - self.started_at
        if span < timedelta(0):
            raise ValueError("ended_at is before started_at")
        if self.duration_seconds is not None and self.duration_seconds > span.total_seconds() + 1:
            raise ValueError("duration_seconds is longer than the call from start to end")
        return self

    @property
    def duration(self) -> timedelta:
        if self.duration_seconds is not None:
            return timedelta(seconds=self.duration_seconds)
        return self.ended_at - self.started_at


CallEvent = Annotated[CallStarted | CallEnded, Field(discriminator="type")]
_EVENT: TypeAdapter[CallStarted | CallEnded] = TypeAdapter(CallEvent)


# -- signing and verifying ---------------------------------------------------------------
def signature(secret: Secret, timestamp: int, body: bytes) -> str:
    """The hex HMAC-SHA256 of ``f"{timestamp}."`` + body under `secret`."""
    key = _key(secret)
    return hmac.new(key, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def sign(secret: Secret, timestamp: int, body: bytes) -> str:
    """The signature header value the provider sends: ``t=<timestamp>,v1=<hex>``."""
    if timestamp < 0:
        raise ValueError("a timestamp is a non-negative unix time")
    return f"t={timestamp},v1={signature(secret, timestamp, body)}"


def verify_event(
    body: bytes,
    header: str | None,
    secrets: Sequence[Secret],
    *,
    now: datetime,
    default_region: str = DEFAULT_REGION,
    tolerance: timedelta = TOLERANCE,
) -> CallStarted | CallEnded:
    """The event a signed request carries, after checking in this order: size, header shape,
    signature (constant-time, any v1 under any secret), the window around `now`, the body.
    Raises a WebhookRefused subclass; ValueError for a misconfiguration (no or short secret)."""
    keys = [_key(s) for s in secrets]
    if not keys:
        raise ValueError("the webhook needs at least one shared secret")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if len(body) > MAX_BODY_BYTES:
        raise EventTooLarge(f"an event body has at most {MAX_BODY_BYTES} bytes")
    stamp, candidates = _parse_header(header)
    signed = stamp.encode() + b"." + body
    expected = [hmac.new(k, signed, hashlib.sha256).hexdigest() for k in keys]
    matched = False
    for given in candidates:
        for want in expected:  # no early exit: the time taken says nothing about which matched
            matched |= hmac.compare_digest(given, want)
    if not matched:
        raise BadSignature("the signature does not match the body under the shared secret")
    skew = now.timestamp() - int(stamp)
    if skew > tolerance.total_seconds():
        raise StaleTimestamp(
            "the request's timestamp is too old", detail={"skew_seconds": int(skew)}
        )
    if -skew > tolerance.total_seconds():
        raise StaleTimestamp(
            "the request's timestamp is in the future", detail={"skew_seconds": int(skew)}
        )
    try:
        return _EVENT.validate_json(body, context={"region": default_region})
    except ValidationError as exc:
        detail = [
            {"loc": _loc(err["loc"], err["type"]), "msg": err["msg"]}
            for err in exc.errors(include_url=False, include_input=False)
        ]
        raise MalformedEvent("the body is not a valid call event", detail=detail) from None


def _loc(loc: tuple[int | str, ...], kind: str) -> list[str]:
    """Where in the body a field error is; an unknown or missing event type is at ``type``."""
    if not loc and kind in {"union_tag_invalid", "union_tag_not_found"}:
        return ["type"]
    return [str(part) for part in loc]


def _parse_header(header: str | None) -> tuple[str, list[str]]:
    """The timestamp (as sent, digits only) and the v1 signatures (lower-case hex)."""
    if header is None or not header.strip():
        raise MalformedSignatureHeader(f"the {SIGNATURE_HEADER} header is missing")
    if len(header) > MAX_HEADER_CHARS or not header.isascii():
        raise MalformedSignatureHeader(f"the {SIGNATURE_HEADER} header is malformed")
    stamps: list[str] = []
    v1: list[str] = []
    for part in header.split(","):
        key, sep, value = part.strip().partition("=")
        if not sep:
            raise MalformedSignatureHeader(
                f"the {SIGNATURE_HEADER} header must be t=<unix>,v1=<hex>"
            )
        if key == "t":
            stamps.append(value)
        elif key == "v1":
            if not _HEX.fullmatch(value):
                raise MalformedSignatureHeader("a v1 signature is 64 hexadecimal digits")
            v1.append(value.lower())
        # other schemes (v0, a future v2) are ignored, as Stripe does
    if len(stamps) != 1 or not _TIMESTAMP.fullmatch(stamps[0]):
        raise MalformedSignatureHeader(
            f"the {SIGNATURE_HEADER} header needs exactly one t=<unix seconds>"
        )
    if not v1:
        raise MalformedSignatureHeader(f"the {SIGNATURE_HEADER} header has no v1 signature")
    if len(v1) > MAX_SIGNATURES:
        raise MalformedSignatureHeader(f"at most {MAX_SIGNATURES} v1 signatures are checked")
    return stamps[0], v1


def _key(secret: Secret) -> bytes:
    key = secret.encode() if isinstance(secret, str) else bytes(secret)
    if len(key) < MIN_SECRET_BYTES:
        raise ValueError(f"a webhook secret has at least {MIN_SECRET_BYTES} bytes")
    return key
