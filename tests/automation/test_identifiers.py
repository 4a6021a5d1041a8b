"""One identifier check for every validator: whole-string, ASCII only, canonical form out."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from automation import identifiers

# What slipped through `re.match(r"^...$")`, `str.isdigit`, `str.lower` or `splitlines` before.
HOSTILE_TAILS = ["\n", "\r", "\x00", "\u2028", "\u2029", "\x85", "\t", " "]


@pytest.mark.parametrize("tail", HOSTILE_TAILS)
@pytest.mark.parametrize(
    ("check", "good"),
    [
        (identifiers.account, "acme"),
        (identifiers.local_part, "bob"),
        (identifiers.db_name, "acme_db"),
        (identifiers.ftp_user, "acme.ftp"),
        (identifiers.cron_name, "backup"),
        (identifiers.hostname, "example.com"),
        (identifiers.owner_name, "www"),
        (identifiers.rel_path, "public_html"),
        (identifiers.email, "bob@example.com"),
        (lambda v: identifiers.ip_address(v, 4), "192.0.2.1"),
        (lambda v: identifiers.ip_address(v, 6), "2001:db8::1"),
    ],
)
def test_a_line_break_or_control_character_at_the_end_is_refused(
    check: Callable[[str], str], good: str, tail: str
) -> None:
    assert check(good) == good
    with pytest.raises(ValueError):
        check(good + tail)


@pytest.mark.parametrize(
    "value",
    [
        "x\n.example.com",  # `$` matched before the newline of the first label
        "www\u2028.example.com",
        "\u212aelvin.example.com",  # KELVIN SIGN: lower() makes it an ASCII 'k'
        "caf\u00e9.example.com",
        "ex\x00ample.com",
        "192.0.2.1",
        "2001:db8::1",
    ],
)
def test_hostile_host_names_are_refused(value: str) -> None:
    with pytest.raises(ValueError):
        identifiers.hostname(value)


@pytest.mark.parametrize(
    ("value", "canonical"),
    [
        ("WWW.Example.COM", "www.example.com"),
        ("example.com.", "example.com"),
        ("Mail.Example.Com.", "mail.example.com"),
    ],
)
def test_host_names_are_returned_canonical(value: str, canonical: str) -> None:
    assert identifiers.hostname(value) == canonical


def test_owner_names_are_lower_case_and_refuse_line_breaks_inside() -> None:
    assert identifiers.owner_name("WWW") == "www"
    assert identifiers.owner_name("*.Dev") == "*.dev"
    assert identifiers.owner_name("_DMARC") == "_dmarc"
    for hostile in ("x\n.y", "x.y\n", "\u212a", "a\u2028b", "www.", ""):
        with pytest.raises(ValueError):
            identifiers.owner_name(hostile)


@pytest.mark.parametrize(
    ("value", "version", "canonical"),
    [
        ("2001:DB8:0:0:0:0:0:1", 6, "2001:db8::1"),
        ("2001:0db8::0001", 6, "2001:db8::1"),
        ("192.0.2.1", 4, "192.0.2.1"),
    ],
)
def test_addresses_are_returned_canonical(value: str, version: int, canonical: str) -> None:
    assert identifiers.ip_address(value, version) == canonical


@pytest.mark.parametrize(
    ("value", "version"),
    [
        ("fe80::1%eth0", 6),  # a scope id: ipaddress keeps it and str() writes it out
        ("fe80::1%0", 6),
        ("::\u0661", 6),  # ARABIC-INDIC DIGIT ONE: int(x, 16) takes it
        ("192.0.2.1\n", 4),
        ("192.0.2.1", 6),
        ("2001:db8::1", 4),
    ],
)
def test_addresses_with_scope_or_non_ascii_are_refused(value: str, version: int) -> None:
    with pytest.raises(ValueError, match="IPv"):
        identifiers.ip_address(value, version)


def test_email_domain_is_lower_case_and_the_local_part_strict() -> None:
    assert identifiers.email("bob@Example.COM") == "bob@example.com"
    for hostile in ("bob\n@example.com", "bob@example.com\n", "b\u2028ob@example.com"):
        with pytest.raises(ValueError):
            identifiers.email(hostile)


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("0", 0),
        ("59", 59),
        ("007", 7),
        ("\u0665", None),  # ARABIC-INDIC DIGIT FIVE
        ("\u00b2", None),  # SUPERSCRIPT TWO
        ("\uff15", None),  # FULLWIDTH DIGIT FIVE
        ("", None),
        (" 5", None),
        ("5\n", None),
        ("-1", None),
        ("+1", None),
    ],
)
def test_ascii_int_takes_only_ascii_digits(text: str, value: int | None) -> None:
    assert identifiers.ascii_int(text) == value


def test_printable_ascii() -> None:
    assert identifiers.is_printable_ascii("echo 'a b' ~/x")
    for hostile in ("a\tb", "a\nb", "a\u2028b", "a\x85b", "a\x7fb", "caf\u00e9"):
        assert not identifiers.is_printable_ascii(hostile)
