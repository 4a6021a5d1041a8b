"""Mailboxes and forwarders on a real Dovecot and Postfix, checked as a mail user would: IMAP
log-ins, IMAP quotas, a mail sent over SMTP read back over IMAP."""

from __future__ import annotations

import imaplib
import smtplib
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest

from automation.changes.base import SECRET_MASK
from automation.executor.executor import Executor
from automation.executor.outcome import OutcomeCollector
from automation.local_hosts.host import LocalHost
from tests.automation.conftest import change, journal, request
from tests.automation.test_apply import apply
from tests.desk import wait_until
from tests.hosts import HeldTool, lock_free, running_hosts

PW1, PW2 = "correct horse battery", "new horse battery staple"


@pytest.fixture(scope="module")
def mailhost(hosts_base: Path) -> Iterator[LocalHost]:
    made = LocalHost(
        hosts_base, f"mail-{uuid.uuid4().hex[:6]}", with_named=False, with_nginx=False,
        services=("mail",),
    )  # fmt: skip
    with running_hosts([made]) as (host,):
        yield host


@pytest.fixture
def ex(mailhost: LocalHost, collector: OutcomeCollector) -> Iterator[Executor]:
    executor = Executor(collector, exec_timeout=10.0, connect_timeout=2.0, backoff_max=0.3)
    executor.add_host(mailhost.spec())
    yield executor
    executor.close()


def imap_port(host: LocalHost) -> int:
    port = host.layout().imap_port
    assert port is not None
    return port


def can_log_in(host: LocalHost, user: str, password: str) -> bool:
    try:
        with imaplib.IMAP4("127.0.0.1", imap_port(host), timeout=5) as imap:
            imap.login(user, password)
            imap.logout()
        return True
    except imaplib.IMAP4.error:
        return False


def quota_kib(host: LocalHost, user: str, password: str) -> int:
    with imaplib.IMAP4("127.0.0.1", imap_port(host), timeout=5) as imap:
        imap.login(user, password)
        _, data = imap.getquotaroot("INBOX")
        imap.logout()
    return int(data[1][0].decode().rstrip(")").split()[-1])


def subjects(host: LocalHost, user: str, password: str) -> list[str]:
    with imaplib.IMAP4("127.0.0.1", imap_port(host), timeout=5) as imap:
        imap.login(user, password)
        imap.select("INBOX", readonly=True)
        _, found = imap.search(None, "ALL")
        out = []
        for num in found[0].split():
            _, data = imap.fetch(num, "(BODY[HEADER.FIELDS (SUBJECT)])")
            out.append(data[0][1].decode().split(":", 1)[1].strip())  # type: ignore[index]
        imap.logout()
    return out


def wait_for_mail(host: LocalHost, user: str, password: str, subject: str) -> None:
    wait_until(lambda: subject in subjects(host, user, password), 20, f"{subject!r} at {user}")


def send(host: LocalHost, to: str, subject: str) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "ann@sender.example", to, subject
    msg.set_content("hello")
    port = host.layout().smtp_port
    assert port is not None
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as smtp:
        smtp.send_message(msg)


def test_mailbox_lifecycle_as_an_imap_client_sees_it(
    mailhost: LocalHost, ex: Executor, collector: OutcomeCollector
) -> None:
    box = f"bob{uuid.uuid4().hex[:4]}@mail.test"
    create = change("mailbox_create", address=box, password=PW1, quota_mb=500, account="acme")
    assert apply(ex, collector, [request(mailhost, create)]) == ["applied"]
    assert can_log_in(mailhost, box, PW1) and not can_log_in(mailhost, box, "wrong password 1")
    assert quota_kib(mailhost, box, PW1) == 500 * 1024
    assert "horse" not in (mailhost.root / "mail/passwd").read_text()

    reset = change("mailbox_password", address=box, password=PW2)
    assert apply(ex, collector, [request(mailhost, reset)]) == ["applied"]
    assert can_log_in(mailhost, box, PW2) and not can_log_in(mailhost, box, PW1)

    assert apply(
        ex, collector, [request(mailhost, change("mailbox_quota", address=box, quota_mb=2048))]
    ) == ["applied"]
    assert quota_kib(mailhost, box, PW2) == 2048 * 1024

    assert apply(ex, collector, [request(mailhost, change("mailbox_delete", address=box))]) == [
        "applied"
    ]
    assert not can_log_in(mailhost, box, PW2)


def test_a_forwarder_delivers_over_smtp_and_its_removal_stops_it(
    mailhost: LocalHost, ex: Executor, collector: OutcomeCollector
) -> None:
    tag = uuid.uuid4().hex[:4]
    bob, carol = f"bob{tag}@fwd.test", f"carol{tag}@fwd.test"
    reqs = [
        request(mailhost, change("mailbox_create", address=bob, password=PW1)),
        request(mailhost, change("mailbox_create", address=carol, password=PW1)),
        request(mailhost, change("mail_forwarder_add", source=bob, destination=carol)),
    ]
    assert apply(ex, collector, reqs) == ["applied"] * 3
    send(mailhost, bob, f"forwarded {tag}")
    wait_for_mail(mailhost, carol, PW1, f"forwarded {tag}")
    wait_for_mail(mailhost, bob, PW1, f"forwarded {tag}")  # a mailbox keeps its copy

    drop = change("mail_forwarder_delete", source=bob, destination=carol)
    assert apply(ex, collector, [request(mailhost, drop)]) == ["applied"]
    send(mailhost, bob, f"direct {tag}")
    wait_for_mail(mailhost, bob, PW1, f"direct {tag}")
    assert f"direct {tag}" not in subjects(mailhost, carol, PW1)

    # An address that is neither a mailbox nor a forwarder is refused at SMTP time.
    with pytest.raises(smtplib.SMTPRecipientsRefused):
        send(mailhost, f"nobody{tag}@fwd.test", "lost")


def test_a_password_the_server_refuses_is_rolled_back_on_the_server(
    mailhost: LocalHost, collector: OutcomeCollector
) -> None:
    box = f"roll{uuid.uuid4().hex[:4]}@mail.test"
    bad = str(uuid.uuid4())
    ex = Executor(collector, verify_hook=lambda r: "forced by test" if r.change_id == bad else None)
    ex.add_host(mailhost.spec())
    try:
        create = change("mailbox_create", address=box, password=PW1)
        assert apply(ex, collector, [request(mailhost, create)]) == ["applied"]
        reset = request(mailhost, change("mailbox_password", address=box, password=PW2), bad)
        assert apply(ex, collector, [reset]) == ["rolled_back"]
        assert "forced by test" in (collector.last(bad).error or "")  # type: ignore[union-attr]
        assert can_log_in(mailhost, box, PW1) and not can_log_in(mailhost, box, PW2)
        assert (journal(mailhost) / bad).read_text().startswith("rolled_back")
    finally:
        ex.close()


def test_a_host_without_a_mail_server_refuses_mail_changes(
    hosts: list[LocalHost], executor: Executor, collector: OutcomeCollector
) -> None:
    create = request(hosts[0], change("mailbox_create", address="x@example.com", password=PW1))
    assert apply(executor, collector, [create]) == ["failed"]
    assert "runs no IMAP" in (collector.last(create.change_id).error or "")  # type: ignore[union-attr]
    assert not (journal(hosts[0]) / create.change_id).exists()


def test_a_mailbox_created_once_when_the_executor_gives_up_before_the_answer(
    mailhost: LocalHost, collector: OutcomeCollector, tmp_path: Path
) -> None:
    """Not idempotent by itself (a second create is refused as "already exists"). The host's
    script outlives the executor's timeout (held in its reload of Postfix's maps) and goes on
    to its end; the journal, written with the file, makes the resent change "applied" once."""
    box = f"once{uuid.uuid4().hex[:4]}@mail.test"
    held = HeldTool(tmp_path, mailhost, "postmap")
    ex = Executor(collector, exec_timeout=2.0, connect_timeout=1.0, backoff_max=0.3)
    ex.add_host(held.spec())
    try:
        req = request(mailhost, change("mailbox_create", address=box, password=PW1))
        lane = ex.lane(mailhost.host_id)
        held.hold()
        ex.submit(req)
        wait_until(held.reached.exists, what="the script held in its reload on the host")
        wait_until(lambda: lane.status().state == "down", what="the executor giving up")
        assert (journal(mailhost) / req.change_id).exists()  # journaled with the file
        held.release()
        got = collector.wait([req.change_id], timeout=30)[req.change_id]
        assert got.status == "applied", got.error
        assert got.output.startswith("journal: applied")  # settled, not created again
    finally:
        held.release()
        ex.close()
    wait_until(lambda: lock_free(mailhost), what="every script on the host finished")
    lines = (mailhost.root / "mail/passwd").read_text().splitlines()
    assert [line.split(":")[0] for line in lines].count(box) == 1
    assert (journal(mailhost) / req.change_id).read_text() == "applied mailbox_create\n"
    assert can_log_in(mailhost, box, PW1)


def test_a_change_without_its_password_at_hand_is_checked_by_dovecot_knowing_the_mailbox(
    mailhost: LocalHost, ex: Executor, collector: OutcomeCollector
) -> None:
    """A change the executor rebuilt from the SCDB alone (its request's message lost) has the
    password's hash, not the password: the host gets the right hash, the check cannot log in."""
    box = f"masked{uuid.uuid4().hex[:4]}@mail.test"
    real = change("mailbox_create", address=box, password=PW1)
    real.secret_hash("password")
    masked = real.with_secrets({"password": SECRET_MASK})  # what the SCDB gives back
    assert real.secret_known("password") and not masked.secret_known("password")
    assert apply(ex, collector, [request(mailhost, masked)]) == ["applied"]
    assert can_log_in(mailhost, box, PW1)  # the hash of the password asked for
