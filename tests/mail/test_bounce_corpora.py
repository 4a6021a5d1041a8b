"""Delivery reports on the sisimai-bounces corpus and enmime's RFC 3464 reports, with the
expectations those projects state: each bounce recognised, for as many recipients, with the
status code; feedback reports with their type; vacation replies and the two non-bounces not
taken for bounces (a vacation reply is an auto-reply: the loop rules must see it). Success
reports (sisimai's reason "delivered") are no bounce here. sisimai's own status codes
x.0.9xx are its inventions, never in the mail, and are not compared. Where the corpus is not
fully met, the measured pass count is a floor."""

from __future__ import annotations

from typing import Any

from actors.mail.bounces import DeliveryReport, ReportKind, detect
from actors.mail.loops import check
from actors.mail.parse import parse
from tests.mail.corpora import corpus, manifest, record_rate

SISIMAI_RECOGNISED_FLOOR = 291  # of 317
SISIMAI_STATUS_FLOOR = 211  # of the 230 recognised bounces whose expected codes are real ones
ENMIME_DSN_FLOOR = 5  # of 5


def _real_code(code: str) -> bool:
    return bool(code) and int(code.split(".")[2]) < 900


def _recognised(item: dict[str, Any], report: DeliveryReport | None) -> bool:
    engine = item["engine"]
    expected = [r for r in item["expected_per_recipient"] if r["reason"] != "delivered"]
    if engine == "ARF":
        return (
            report is not None
            and report.kind is ReportKind.FEEDBACK
            and len(report.recipients) == len(expected)
            and all(r.get("feedback_type") == report.feedback_type for r in expected)
        )
    if engine in (None, "RFC3834") or not expected:
        return report is None
    return (
        report is not None
        and report.kind in (ReportKind.FAILED, ReportKind.DELAYED)
        and len(report.recipients) == len(expected)
    )


def test_sisimai_bounces_are_recognised_as_the_source_expects() -> None:
    folder = corpus("sisimai-bounces")
    items = manifest(folder)["messages"]
    recognised = status_ok = status_total = 0
    failures: list[str] = []
    for item in items:
        raw = (folder / item["file"]).read_bytes()
        report = detect(raw)
        ok = _recognised(item, report)
        recognised += ok
        if not ok:
            failures.append(item["id"])
        if item["engine"] == "RFC3834":  # a vacation reply: never answered automatically
            assert check(parse(raw)).automatic, item["id"]
        if report is None or not ok or item["engine"] == "ARF":
            continue
        for r in report.recipients:  # the rule itself: 5.x.x permanent, 4.x.x transient
            if r.status:
                assert r.permanent == r.status.startswith("5"), (item["id"], r)
        expected = sorted(
            r["dsn_status"] for r in item["expected_per_recipient"] if _real_code(r["dsn_status"])
        )
        if expected:
            status_total += 1
            status_ok += expected == sorted(r.status or "" for r in report.recipients)
    record_rate("sisimai-bounces", "recognised (or not) as expected", recognised, len(items))
    record_rate("sisimai-bounces", "status codes", status_ok, status_total)
    assert recognised >= SISIMAI_RECOGNISED_FLOOR, failures
    assert status_ok >= SISIMAI_STATUS_FLOOR


def _dsn_matches(expected: dict[str, Any], report: DeliveryReport | None) -> bool:
    if report is None or report.reporting_mta != expected["reporting_mta"]:
        return False
    if len(report.recipients) != len(expected["recipients"]):
        return False
    for want, got in zip(expected["recipients"], report.recipients, strict=True):
        fields = {
            "Final-Recipient": got.address,
            "Action": got.action,
            "Status": got.status,
            "Diagnostic-Code": got.diagnostic,
            "Remote-Mta": got.remote_mta,
        }
        for name, value in want.items():
            wanted = str(value).split(";", 1)[1] if name == "Final-Recipient" else str(value)
            if name == "Status":
                wanted = wanted.split()[0]
            if fields[name] != wanted.strip():
                return False
        if got.permanent != want["Status"].startswith("5"):
            return False
    return True


def test_enmime_delivery_reports_are_read_field_by_field() -> None:
    folder = corpus("enmime")
    items = [m for m in manifest(folder)["messages"] if "dsn" in m["expected"]]
    results = {
        m["id"]: _dsn_matches(m["expected"]["dsn"], detect((folder / m["file"]).read_bytes()))
        for m in items
    }
    passed = sum(results.values())
    record_rate("enmime", "RFC 3464 reports", passed, len(items))
    assert passed >= ENMIME_DSN_FLOOR, [k for k, ok in results.items() if not ok]
