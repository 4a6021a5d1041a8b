"""The telephony webhook's signature, window and events."""

from __future__ import annotations

import json
import pickle
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from actors.phone.webhook import (
    MAX_BODY_BYTES,
    BadSignature,
    CallEnded,
    CallStarted,
    EventTooLarge,
    MalformedEvent,
    MalformedSignatureHeader,
    StaleTimestamp,
    WebhookRefused,
    sign,
    signature,
    verify_event,
)

SECRET = "whsec_current_0123456789abcdef"
OLD_SECRET = "whsec_previous_0123456789abcdef"
NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
T = int(NOW.timestamp())


def started(**overrides: Any) -> dict[str, Any]:
    event: dict[str, Any] = {
        "type": "call.started",
        "call_id": "CA1234",
        "from": "+49 30 1234567",
        "to": "+49 89 7654321",
        "agent": "erika@desk.example",
        "started_at": "2026-03-02T09:29:50Z",
    }
    return {**event, **overrides}


def ended(**overrides: Any) -> dict[str, Any]:
    return started(**{"type": "call.ended", "ended_at": "2026-03-02T09:35:20Z", **overrides})


def body_of(event: dict[str, Any]) -> bytes:
    return json.dumps(event).encode()


def verify(body: bytes, header: str | None, **kwargs: Any) -> CallStarted | CallEnded:
    kwargs.setdefault("now", NOW)
    return verify_event(body, header, kwargs.pop("secrets", [SECRET]), **kwargs)


def test_a_valid_call_started_is_read() -> None:
    body = body_of(started())
    event = verify(body, sign(SECRET, T, body))
    assert isinstance(event, CallStarted)
    assert event.call_id == "CA1234"
    assert event.from_number == "+49301234567"
    assert event.to_number == "+49897654321"
    assert event.customer_number == "+49301234567"
    assert event.agent == "erika@desk.example"
    assert event.started_at == datetime(2026, 3, 2, 9, 29, 50, tzinfo=UTC)


def test_a_valid_call_ended_is_read_with_its_duration() -> None:
    body = body_of(ended(duration_seconds=300))
    event = verify(body, sign(SECRET, T, body))
    assert isinstance(event, CallEnded)
    assert event.ended_at == datetime(2026, 3, 2, 9, 35, 20, tzinfo=UTC)
    assert event.duration == timedelta(seconds=300)
    no_duration = body_of(ended(agent=None))
    event = verify(no_duration, sign(SECRET, T, no_duration))
    assert isinstance(event, CallEnded)
    assert event.duration == timedelta(minutes=5, seconds=30)  # from start to end
    assert event.agent is None


def test_national_numbers_are_read_in_the_configured_region() -> None:
    body = body_of(started(**{"from": "(650) 253-0000", "to": "+49 89 7654321"}))
    event = verify(body, sign(SECRET, T, body), default_region="US")
    assert event.from_number == "+16502530000"


def test_a_withheld_caller_number_is_none_and_outbound_calls_face_the_callee() -> None:
    body = body_of(started(**{"from": None}))
    assert verify(body, sign(SECRET, T, body)).from_number is None
    body = body_of(started(direction="outbound"))
    assert verify(body, sign(SECRET, T, body)).customer_number == "+49897654321"


def test_a_tampered_body_is_refused() -> None:
    body = body_of(started())
    header = sign(SECRET, T, body)
    tampered = body.replace(b"1234567", b"1234568")
    with pytest.raises(BadSignature) as caught:
        verify(tampered, header)
    assert caught.value.code == "bad_signature"
    assert caught.value.status == 401


def test_a_wrong_secret_is_refused() -> None:
    body = body_of(started())
    with pytest.raises(BadSignature):
        verify(body, sign("whsec_someone_else_0123456789", T, body))


def test_a_rotated_secret_is_accepted_on_either_side() -> None:
    body = body_of(started())
    # the provider signs with the new and the old secret while we still have only the old
    both = f"{sign(SECRET, T, body)},v1={signature(OLD_SECRET, T, body)}"
    assert verify(body, both, secrets=[OLD_SECRET]).call_id == "CA1234"
    # we hold both secrets while the provider still signs with the old one
    old_only = sign(OLD_SECRET, T, body)
    assert verify(body, old_only, secrets=[SECRET, OLD_SECRET]).call_id == "CA1234"
    # once the old secret is retired on our side, its signatures are refused
    with pytest.raises(BadSignature):
        verify(body, old_only, secrets=[SECRET])


def test_the_window_is_five_minutes_in_both_directions() -> None:
    body = body_of(started())
    for skew in (-300, 0, 300):
        assert verify(body, sign(SECRET, T + skew, body)).call_id == "CA1234"
    with pytest.raises(StaleTimestamp, match="too old") as old:
        verify(body, sign(SECRET, T - 301, body))
    assert old.value.code == "stale_timestamp"
    assert old.value.detail == {"skew_seconds": 301}
    with pytest.raises(StaleTimestamp, match="future"):
        verify(body, sign(SECRET, T + 301, body))


def test_a_replay_of_the_same_request_outside_the_window_is_refused() -> None:
    body = body_of(ended())
    header = sign(SECRET, T, body)
    assert isinstance(verify(body, header), CallEnded)
    with pytest.raises(StaleTimestamp):
        verify(body, header, now=NOW + timedelta(minutes=5, seconds=1))
    # refreshing the timestamp without the secret breaks the signature
    v1 = header.split("v1=")[1]
    later = T + 600
    with pytest.raises(BadSignature):
        verify(body, f"t={later},v1={v1}", now=NOW + timedelta(minutes=10))


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "garbage",
        f"v1={'a' * 64}",  # no timestamp
        f"t={T}",  # no signature
        f"t={T},t={T},v1={'a' * 64}",  # two timestamps
        f"t=-5,v1={'a' * 64}",
        f"t=12.5,v1={'a' * 64}",
        f"t={T},v1=xyz",
        f"t={T},v1={'a' * 63}",
        f"t={T}," + ",".join([f"v1={'a' * 64}"] * 9),
        f"t={T},v1={'a' * 64}" + " " * 2000,
        f"t={T},v1={'ä' * 64}",
    ],
)
def test_a_malformed_header_is_refused(header: str | None) -> None:
    body = body_of(started())
    with pytest.raises(MalformedSignatureHeader) as caught:
        verify(body, header)
    assert caught.value.code == "malformed_signature_header"
    assert caught.value.status == 400


def test_unknown_schemes_in_the_header_are_ignored() -> None:
    body = body_of(started())
    header = f"t={T}, v0={'0' * 64}, v1={signature(SECRET, T, body).upper()}"
    assert verify(body, header).call_id == "CA1234"


@pytest.mark.parametrize(
    ("event", "field"),
    [
        (started(**{"from": "12"}), "from"),
        (started(to="not a number"), "to"),
        (started(**{"from": "+49\x00301234567"}), "from"),
        (started(type="call.transferred"), "type"),
        (started(call_id=""), "call_id"),
        (started(call_id="CA 1234\n"), "call_id"),
        (started(started_at="2026-03-02T09:29:50"), "started_at"),  # no time zone
        (ended(ended_at="2026-03-02T09:00:00Z"), "call.ended"),  # before the start
        (ended(duration_seconds=3600), "call.ended"),  # longer than the call
        (ended(duration_seconds=-1), "duration_seconds"),
        ({k: v for k, v in started().items() if k != "to"}, "to"),
        ({k: v for k, v in started().items() if k != "type"}, "type"),
    ],
)
def test_a_signed_but_invalid_event_is_malformed(event: dict[str, Any], field: str) -> None:
    body = body_of(event)
    with pytest.raises(MalformedEvent) as caught:
        verify(body, sign(SECRET, T, body))
    assert caught.value.code == "malformed_event"
    assert caught.value.status == 422
    assert any(field in err["loc"] for err in caught.value.detail), caught.value.detail


def test_a_bad_number_names_the_field_and_the_reason() -> None:
    body = body_of(started(**{"from": "12"}))
    with pytest.raises(MalformedEvent) as caught:
        verify(body, sign(SECRET, T, body))
    [err] = caught.value.detail
    assert err["loc"] == ["call.started", "from"]
    assert "not a valid phone number" in err["msg"]


@pytest.mark.parametrize("body", [b"", b"{", b"[]", b"\xff\xfe", b'"call.started"'])
def test_a_signed_body_that_is_not_an_event_object_is_malformed(body: bytes) -> None:
    with pytest.raises(MalformedEvent):
        verify(body, sign(SECRET, T, body))


def test_an_oversized_body_is_refused_before_the_signature() -> None:
    body = b" " * (MAX_BODY_BYTES + 1)
    with pytest.raises(EventTooLarge) as caught:
        verify(body, sign(SECRET, T, body))
    assert caught.value.status == 413


def test_the_signature_is_checked_before_the_window() -> None:
    # an unsigned caller learns nothing about our clock
    body = body_of(started())
    with pytest.raises(BadSignature):
        verify(body, sign("whsec_someone_else_0123456789", T - 3600, body))


def test_misconfiguration_is_not_a_refusal() -> None:
    body = body_of(started())
    with pytest.raises(ValueError, match="at least one"):
        verify(body, sign(SECRET, T, body), secrets=[])
    with pytest.raises(ValueError, match="at least 16 bytes"):
        verify(body, sign(SECRET, T, body), secrets=["short"])
    with pytest.raises(ValueError, match="timezone-aware"):
        verify(body, sign(SECRET, T, body), now=NOW.replace(tzinfo=None))


def test_refusals_keep_their_code_across_pickling() -> None:
    body = body_of(started())
    with pytest.raises(WebhookRefused) as caught:
        verify(body, sign(SECRET, T - 3600, body))
    again = pickle.loads(pickle.dumps(caught.value))  # noqa: S301 (our own bytes)
    assert (again.code, again.status, str(again)) == (
        "stale_timestamp",
        401,
        "the request's timestamp is too old",
    )
