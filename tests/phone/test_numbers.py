"""Phone numbers into E.164, and what is refused."""

from __future__ import annotations

import pytest

from actors.phone.numbers import MAX_RAW_CHARS, InvalidPhoneNumber, same_number, to_e164


@pytest.mark.parametrize(
    ("raw", "region", "e164"),
    [
        ("030 1234567", "DE", "+49301234567"),
        ("+49 (30) 123-4567", "DE", "+49301234567"),
        ("0049 30 1234567", "DE", "+49301234567"),
        ("+1 650-253-0000", "DE", "+16502530000"),  # its own country, whatever the region
        ("(650) 253-0000", "US", "+16502530000"),
        ("tel:+49-30-1234567", "DE", "+49301234567"),
        ("".join(chr(0xFF10 + int(d)) for d in "0301234567"), "DE", "+49301234567"),  # full-width
        ("030 1234567", "de", "+49301234567"),
    ],
)
def test_valid_numbers_become_e164(raw: str, region: str, e164: str) -> None:
    assert to_e164(raw, region) == e164


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ("", "empty"),
        ("   ", "empty"),
        ("12", "not a valid phone number"),
        ("hello", "no digits"),
        ("+999 1234567", "unknown country code"),
        ("030 12", "not a valid phone number"),
        ("030\x001234567", "control characters"),
        ("030\n1234567", "control characters"),
        ("+49\u202e301234567", "control characters"),  # bidi override
        ("1" * (MAX_RAW_CHARS + 1), f"at most {MAX_RAW_CHARS}"),
    ],
)
def test_invalid_numbers_are_refused_clearly(raw: str, message: str) -> None:
    with pytest.raises(InvalidPhoneNumber, match=message) as caught:
        to_e164(raw)
    assert isinstance(caught.value, ValueError)
    assert caught.value.code == "invalid_phone_number"
    assert caught.value.status == 422


def test_unknown_region_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="region"):
        to_e164("030 1234567", "XX")


def test_same_number_compares_in_e164() -> None:
    assert same_number("030 1234567", "+49 30 123 4567")
    assert same_number("(650) 253-0000", "+16502530000", "US")
    assert not same_number("030 1234567", "030 1234568")
    assert not same_number("030 1234567", "+1 650 253 0000")
    # the same digits read in two regions are two numbers
    assert not same_number("650 253 0000", "+16502530000", "DE")


def test_an_invalid_number_is_the_same_as_no_number() -> None:
    assert not same_number("12", "12")
    assert not same_number("", "")
