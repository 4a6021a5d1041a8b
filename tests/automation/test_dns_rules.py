"""Record-type rules are checked by GDCAS before the host; named-checkzone is the second line."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest

from automation.changes import ChangeConflict, ChangeValidationError, Workspace, parse_change
from automation.changes.base import zone_path
from automation.executor.executor import Executor
from automation.executor.outcome import OutcomeCollector
from automation.host import HostLayout
from automation.local_hosts.host import LocalHost
from tests.automation.conftest import ZONE, request
from tests.automation.test_apply import apply
from tests.hosts import dig

ZONE_TEXT = """$ORIGIN example.com.
$TTL 3600
@ IN SOA ns1 hostmaster 2024010100 3600 600 86400 60
@ IN NS ns1
ns1 IN A 192.0.2.53
www IN A 192.0.2.1
mail IN A 192.0.2.25
@ IN MX 10 mail
alias IN CNAME www
_sip._tcp IN SRV 10 5 5060 sip.example.net.
"""


def workspace(text: str = ZONE_TEXT) -> Workspace:
    return Workspace({zone_path(ZONE): text}, HostLayout(root="/srv/gdcas"), today=20240101)


def add(name: str, rtype: str, value: str, **extra: Any) -> dict[str, Any]:
    return {"zone": ZONE, "record": {"name": name, "type": rtype, "value": value, **extra}}


def applied(ws: Workspace, kind: str, params: dict[str, Any]) -> None:
    parse_change(kind, params).apply(ws)


def named_checkzone(text: str, tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """The host's own check (same flags as automation.plan)."""
    path = tmp_path / "zone"
    path.write_text(text)
    argv = ["named-checkzone", "-k", "fail", "-i", "local", ZONE, str(path)]
    return subprocess.run(argv, capture_output=True, text=True, timeout=30)


@pytest.mark.parametrize(
    ("params", "message"),
    [
        # A CNAME at the apex used to pass validation; only named-checkzone stopped it.
        (add("@", "CNAME", "other.example.net"), "zone apex"),
        (add("loop", "CNAME", "loop.example.com"), "cannot point at itself"),
        (add("Loop", "CNAME", "LOOP.Example.COM."), "cannot point at itself"),
        (add("@", "MX", "192.0.2.25", priority=10), "not an address"),
        (add("_s._tcp", "SRV", "2001:db8::1", priority=1, weight=1, port=1), "not an address"),
        (add("x", "CNAME", "192.0.2.1"), "not an address"),
        (add("@", "CAA", "ca.example.net;=x", tag="issue"), "parameter"),
        (add("@", "CAA", "ca.example.net;a=b;", tag="issue"), "parameter"),
        (add("@", "CAA", "ca..example.net", tag="issue"), "label"),
        (add("@", "CAA", "mailto:", tag="iodef"), "iodef"),
        (add("@", "CAA", "https://", tag="iodef"), "iodef host"),
    ],
)
def test_record_rules_refused_at_validation(params: dict[str, Any], message: str) -> None:
    with pytest.raises(ChangeValidationError) as info:
        parse_change("dns_record_add", params)
    assert message in " ".join(info.value.errors)


def test_good_caa_values_pass() -> None:
    for value, tag in [
        ("ca.example.net", "issue"),
        (";", "issuewild"),
        ("ca.example.net;account=123;validationmethods=dns-01", "issue"),
        ("mailto:security@example.com", "iodef"),
        ("https://example.com/caa-report", "iodef"),
    ]:
        parse_change("dns_record_add", add("@", "CAA", value, tag=tag))


@pytest.mark.parametrize(
    ("params", "message"),
    [
        (add("www", "CNAME", "other.example.net"), "cannot sit beside other data"),
        # Upper case used to be a different name to the comparison, so this one got through.
        (add("WWW", "CNAME", "other.example.net"), "cannot sit beside other data"),
        (add("Alias", "A", "192.0.2.9"), "is a CNAME"),
        (add("Alias", "TXT", "hello"), "is a CNAME"),
        (add("alias", "CNAME", "mail.example.com"), "cannot sit beside other data"),
        (add("@", "MX", "alias.example.com", priority=20), "is a CNAME"),
        (add("_x._tcp", "SRV", "Alias.Example.com", priority=1, weight=1, port=1), "is a CNAME"),
        (add("mail", "CNAME", "www.example.com"), "cannot sit beside other data"),
    ],
)
def test_zone_rules_refused_before_the_host(
    params: dict[str, Any], message: str, tmp_path: Path
) -> None:
    ws = workspace()
    with pytest.raises(ChangeConflict, match=message):
        applied(ws, "dns_record_add", params)
    assert named_checkzone(ZONE_TEXT, tmp_path).returncode == 0  # the zone itself is fine


def test_a_cname_cannot_become_the_target_of_an_mx() -> None:
    ws = workspace(ZONE_TEXT.replace("@ IN MX 10 mail\n", "@ IN MX 10 mx2\n"))
    with pytest.raises(ChangeConflict, match="target of MX"):
        applied(ws, "dns_record_add", add("MX2", "CNAME", "www.example.com"))


def test_upper_case_input_is_stored_canonical_and_the_result_checks(tmp_path: Path) -> None:
    ws = workspace()
    applied(ws, "dns_record_add", add("Web", "AAAA", "2001:DB8:0:0:0:0:0:0001"))
    applied(ws, "dns_record_add", add("Shop", "CNAME", "Shops.Example.NET."))
    applied(ws, "dns_record_add", add("@", "MX", "MAIL.example.com.", priority=20))
    # The same record in another spelling is the same record: deleting it works.
    applied(ws, "dns_record_delete", {**add("WWW", "A", "192.0.2.1"), "zone": "EXAMPLE.com"})
    text = ws.finish()[zone_path(ZONE)]
    assert text is not None
    assert "web 3600 IN AAAA 2001:db8::1\n" in text
    assert "shop 3600 IN CNAME shops.example.net.\n" in text
    assert "@ 3600 IN MX 20 mail.example.com.\n" in text
    assert "192.0.2.1\n" not in text and "WWW" not in text
    result = named_checkzone(text, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr


def test_upper_case_names_on_a_real_host(
    hosts: list[LocalHost], executor: Executor, collector: OutcomeCollector
) -> None:
    """An upper-case spelling is the record the host has: the CNAME beside it is refused by
    GDCAS (not by named-checkzone), and deleting by that spelling deletes the record."""
    h = hosts[2]
    www = request(h, parse_change("dns_record_add", add("www", "A", "192.0.2.80")))
    assert apply(executor, collector, [www]) == ["applied"]
    before = (h.root / "zones" / f"{ZONE}.zone").read_text()
    beside = request(h, parse_change("dns_record_add", add("WWW", "CNAME", "cdn.example.net")))
    assert apply(executor, collector, [beside]) == ["failed"]
    error = collector.last(beside.change_id).error or ""  # type: ignore[union-attr]
    assert "cannot sit beside other data" in error and "named-checkzone" not in error
    assert (h.root / "zones" / f"{ZONE}.zone").read_text() == before
    delete = request(h, parse_change("dns_record_delete", add("WWW", "A", "192.0.2.80")))
    assert apply(executor, collector, [delete]) == ["applied"]
    assert dig(h, "www.example.com", "A") == []
