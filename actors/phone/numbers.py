"""Phone numbers in E.164 (``+4930123456``), the one form the desk stores and compares:
parsed with ``phonenumbers`` (Google's libphonenumber metadata), a national spelling read in
a default region, and anything that is not a valid number refused with a clear message."""

from __future__ import annotations

import unicodedata

import phonenumbers

from actors.errors import DeskError
from store.phone import DEFAULT_REGION

MAX_RAW_CHARS = 64  # a number with spaces, dashes, a prefix and an extension fits easily


class InvalidPhoneNumber(DeskError, ValueError):
    """A text that is not a valid phone number (or is too long, or carries control
    characters). A ValueError too, so that pydantic validators turn it into a field error."""

    code, status = "invalid_phone_number", 422


def to_e164(raw: str, default_region: str = DEFAULT_REGION) -> str:
    """`raw` as an E.164 number, e.g. ``"030 1234567"`` in ``"DE"`` -> ``"+49301234567"``.
    A number starting with ``+`` (or ``00``) keeps its own country; an extension is not part of
    E.164 and is dropped. Raises InvalidPhoneNumber; ValueError for an unknown region."""
    region = _region(default_region)
    if not isinstance(raw, str):
        raise InvalidPhoneNumber("a phone number must be text")
    if len(raw) > MAX_RAW_CHARS:
        raise InvalidPhoneNumber(f"a phone number has at most {MAX_RAW_CHARS} characters")
    if any(unicodedata.category(ch) in {"Cc", "Cf"} for ch in raw):
        raise InvalidPhoneNumber("a phone number must not contain control characters")
    text = raw.strip()
    if not text:
        raise InvalidPhoneNumber("a phone number must not be empty")
    try:
        parsed = phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException as exc:
        raise InvalidPhoneNumber(f"not a phone number: {_reason(exc)}") from None
    if not phonenumbers.is_valid_number(parsed):
        raise InvalidPhoneNumber(
            f"not a valid phone number (read in region {region} unless it starts with +)"
        )
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def same_number(a: str, b: str, region: str = DEFAULT_REGION) -> bool:
    """Whether two spellings name the same number (equal in E.164, national spellings read in
    `region`). A text that is not a valid number is the same as no number: False."""
    try:
        return to_e164(a, region) == to_e164(b, region)
    except InvalidPhoneNumber:
        return False


def _region(region: str) -> str:
    code = region.strip().upper()
    if code not in phonenumbers.SUPPORTED_REGIONS:
        raise ValueError(f"not a region known to phonenumbers: {region!r}")
    return code


_REASONS = {
    phonenumbers.NumberParseException.INVALID_COUNTRY_CODE: "unknown country code",
    phonenumbers.NumberParseException.NOT_A_NUMBER: "no digits of a phone number",
    phonenumbers.NumberParseException.TOO_SHORT_AFTER_IDD: "too short after the country prefix",
    phonenumbers.NumberParseException.TOO_SHORT_NSN: "too short",
    phonenumbers.NumberParseException.TOO_LONG: "too long",
}


def _reason(exc: phonenumbers.NumberParseException) -> str:
    return _REASONS.get(exc.error_type, "unreadable")
