"""Facts read back from a host's files: each reader keeps to its key (a domain's lines, an
account's users), and a key is checked before any path is made of it."""

from __future__ import annotations

import pytest

from automation.changes.ftp import FTP_PASSWD
from automation.changes.mailbox import MAIL_PASSWD
from automation.changes.tls import cert_path
from automation.facts import fact_paths, read_fact
from tests.automation.test_validation import make_cert

MAIL = (
    "info@a.test:{ARGON2ID}$argon2id$x:::acme:::userdb_quota_rule=*:storage=1024M\n"
    "sales@a.test:{ARGON2ID}$argon2id$y:::acme:::userdb_quota_rule=*:storage=50M\n"
    "info@b.test:{ARGON2ID}$argon2id$z:::other:::userdb_quota_rule=*:storage=99M\n"
)
FTP = "alpha:{ARGON2ID}$h:acme:/srv/home/acme\nbeta:{ARGON2ID}$h:other:/srv/home/other\n"


def test_mailboxes_of_one_domain_with_their_quotas() -> None:
    assert read_fact("mailboxes", "a.test", {MAIL_PASSWD: MAIL}) == [
        {"address": "info@a.test", "quota_mb": 1024},
        {"address": "sales@a.test", "quota_mb": 50},
    ]
    assert read_fact("mailboxes", "c.test", {MAIL_PASSWD: MAIL}) == []
    assert read_fact("mailboxes", "a.test", {MAIL_PASSWD: None}) == []  # no file yet


def test_ftp_accounts_of_one_account() -> None:
    assert read_fact("ftp_accounts", "acme", {FTP_PASSWD: FTP}) == [
        {"username": "alpha", "home": "/srv/home/acme"}
    ]


def test_a_certificate_is_described_and_a_broken_one_said_so() -> None:
    cert, _ = make_cert(["shop.a.test"])
    [fact] = read_fact("certificate", "shop.a.test", {cert_path("shop.a.test"): cert})
    assert "shop.a.test" in fact["subject"] and len(fact["sha256"]) == 64
    [broken] = read_fact("certificate", "x.test", {cert_path("x.test"): "not pem"})
    assert broken["problem"] == "not a PEM certificate"
    assert read_fact("certificate", "x.test", {cert_path("x.test"): None}) == []


@pytest.mark.parametrize(
    ("kind", "key"),
    [("cron", "../etc"), ("cron", "root/x"), ("mailboxes", "a.test/../../x"),
     ("certificate", "-rf.test"), ("ftp_accounts", "ACME\n")],
)  # fmt: skip
def test_a_key_that_is_no_account_or_domain_makes_no_path(kind: str, key: str) -> None:
    with pytest.raises(ValueError):
        fact_paths(kind, key)


def test_keys_are_canonical() -> None:
    assert fact_paths("mailboxes", "A.Test")[0] == "a.test"
    assert fact_paths("cron", "acme") == ("acme", ["cron/acme"])
