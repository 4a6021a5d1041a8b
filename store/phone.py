"""Phone numbers as the SCDB keeps them: E.164 (``+4930123456``), the one form calls and
contacts are compared in. Parsed with ``phonenumbers``; a text that is not a valid number has
no E.164 form (the desk's strict parser with its reasons is actors/phone/numbers.py)."""

from __future__ import annotations

import phonenumbers

DEFAULT_REGION = "DE"  # where a national spelling ("030 1234567") is read


def e164(raw: str | None, region: str = DEFAULT_REGION) -> str | None:
    """`raw` in E.164 when it is a valid phone number, else None."""
    if raw is None or not raw.strip() or len(raw) > 64:
        return None
    try:
        parsed = phonenumbers.parse(raw.strip(), region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(parsed):
        return None
    return phonenumbers.format_number(parsed, phonenumbers.PhoneNumberFormat.E164)


def stored_phone(raw: str | None, region: str = DEFAULT_REGION) -> str | None:
    """What a contact's phone column keeps: the E.164 form of a valid number; a text that is
    not one as it was written (shown to agents, never matched); None for nothing."""
    if raw is None or not raw.strip():
        return None
    return e164(raw, region) or raw.strip()[:32]
