"""Delivery reports written for one rule each: RFC 3464 fields read per recipient, 5.x.x
permanent and 4.x.x transient, success reports and ordinary mail no bounce, feedback
reports, a non-standard bounce with its status and the original Message-ID."""

from __future__ import annotations

from actors.mail.bounces import ReportKind, detect

HEAD = (
    "From: Mail Delivery System <MAILER-DAEMON@mx.example.net>\r\nTo: desk@desk.example\r\n"
    "Subject: Undelivered Mail Returned to Sender\r\nMIME-Version: 1.0\r\n"
)


def dsn(*recipients: str, original: str = "message/rfc822") -> bytes:
    status = "Reporting-MTA: dns; mx.example.net\r\n\r\n" + "\r\n\r\n".join(recipients)
    return (
        HEAD + 'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n'
        "\r\n--b\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
        f"--b\r\nContent-Type: message/delivery-status\r\n\r\n{status}\r\n"
        f"--b\r\nContent-Type: {original}\r\n\r\nMessage-ID: <n.42.sig@desk.example>\r\n"
        "Subject: [TT-000042] Your ticket\r\n\r\nHello\r\n--b--\r\n"
    ).encode()


FAILED = "Final-Recipient: rfc822; gone@example.com\r\nAction: failed\r\nStatus: 5.1.1"
DELAYED = "Final-Recipient: rfc822; slow@example.com\r\nAction: delayed\r\nStatus: 4.4.7"


def test_a_permanent_failure_names_the_recipient_status_and_original() -> None:
    report = detect(dsn(FAILED))
    assert report is not None
    assert (report.kind, report.standard, report.reporting_mta) == (
        ReportKind.FAILED,
        True,
        "dns; mx.example.net",
    )
    (recipient,) = report.recipients
    assert (recipient.address, recipient.status, recipient.permanent) == (
        "gone@example.com",
        "5.1.1",
        True,
    )
    assert report.original_message_id == "n.42.sig@desk.example"


def test_a_delay_is_transient() -> None:
    report = detect(dsn(DELAYED, original="text/rfc822-headers"))
    assert report is not None and report.kind is ReportKind.DELAYED
    assert [(r.status, r.permanent) for r in report.recipients] == [("4.4.7", False)]
    assert report.original_message_id == "n.42.sig@desk.example"


def test_a_report_for_several_recipients_keeps_each() -> None:
    report = detect(dsn(FAILED, DELAYED))
    assert report is not None and report.kind is ReportKind.FAILED
    assert [r.address for r in report.recipients] == ["gone@example.com", "slow@example.com"]


def test_a_generic_status_gives_way_to_the_remote_servers_code() -> None:
    generic = FAILED.replace("5.1.1", "5.0.0") + "\r\nDiagnostic-Code: smtp; 550 5.7.1 spam"
    report = detect(dsn(generic))
    assert report is not None and report.recipients[0].status == "5.7.1"


def test_a_success_report_is_no_bounce() -> None:
    delivered = "Final-Recipient: rfc822; ok@example.com\r\nAction: delivered\r\nStatus: 2.0.0"
    assert detect(dsn(delivered)) is None


def test_an_ordinary_mail_is_no_bounce() -> None:
    mail = b"From: ann@example.com\r\nSubject: 550 errors on my site\r\n\r\n5.1.1 is in my log\r\n"
    assert detect(mail) is None


def test_a_feedback_report_names_its_type() -> None:
    raw = (
        b"From: abuse@isp.example\r\nSubject: Abuse report\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=feedback-report; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nA complaint.\r\n--b\r\n"
        b"Content-Type: message/feedback-report\r\n\r\nFeedback-Type: abuse\r\n"
        b"Original-Rcpt-To: <ann@isp.example>\r\n--b\r\nContent-Type: message/rfc822\r\n\r\n"
        b"Message-ID: <n.7@desk.example>\r\n\r\nnews\r\n--b--\r\n"
    )
    report = detect(raw)
    assert report is not None and report.kind is ReportKind.FEEDBACK
    assert report.feedback_type == "abuse"
    assert [r.address for r in report.recipients] == ["ann@isp.example"]
    assert report.original_message_id == "n.7@desk.example"


def test_a_non_standard_bounce_is_read_from_its_wording() -> None:
    raw = (
        b"From: MAILER-DAEMON@mx.example.net\r\nTo: desk@desk.example\r\n"
        b"Subject: failure notice\r\n\r\n"
        b"Hi. This is the qmail-send program at mx.example.net.\r\n"
        b"I'm afraid I wasn't able to deliver your message to the following addresses.\r\n"
        b"This is a permanent error; I've given up. Sorry it didn't work out.\r\n\r\n"
        b"<gone@example.com>:\r\n192.0.2.1 does not like recipient.\r\n"
        b"Remote host said: 550 5.1.1 <gone@example.com>: user unknown\r\n\r\n"
        b"--- Below this line is a copy of the message.\r\n\r\n"
        b"Message-ID: <n.9.sig@desk.example>\r\nSubject: [TT-000009] Update\r\n\r\nHello\r\n"
    )
    report = detect(raw)
    assert report is not None and not report.standard
    assert [(r.address, r.status, r.permanent) for r in report.recipients] == [
        ("gone@example.com", "5.1.1", True)
    ]
    assert report.original_message_id == "n.9.sig@desk.example"
