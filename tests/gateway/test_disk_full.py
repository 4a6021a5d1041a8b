"""A data directory whose disk runs short, on a real small file system (an 8 MiB tmpfs, filled
with a file): the API refuses files with 507 and the SMTP door mail with 452 before the reserve
is touched, nothing of a refused request is kept, and what is taken afterwards is whole. A write
that the full disk stops midway leaves nothing half-written: no temporary file, no ticket
without its files."""

from __future__ import annotations

import json
import smtplib
import sqlite3
import uuid
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from actors.config import ActorConfig
from actors.principal import SYSTEM
from actors.tickets.commands import FilePart
from actors.tickets.dto import NewTicket
from actors.tickets.service import TicketService
from automation.loopback import free_port
from gateway.settings import GatewaySettings
from gateway.smtp import SmtpIntake
from store.db import Database
from store.files import free_bytes, write_private
from store.models import Attachment, InboundMail, Message, Ticket
from tests.backpressure import fill, gateway_of_its_own, small_disk
from tests.desk import Desk
from tests.factories import make_account

MiB = 1024 * 1024
RESERVE_MB = 4


@pytest.fixture
def disk() -> Iterator[Path]:
    with small_disk(8) as path:
        yield path


def upload(url: str, token: str, path: str, payload: dict[str, str], size: int) -> httpx.Response:
    parts = [("payload", (None, json.dumps(payload), "application/json")),
             ("files", ("site.log", b"x" * size, "text/plain"))]  # fmt: skip
    with httpx.Client(base_url=url, timeout=60, headers={"Authorization": f"Bearer {token}"}) as c:
        return c.post(path, files=parts)


@pytest.mark.ray
def test_files_are_refused_507_before_the_data_dir_disk_fills(desk: Desk, disk: Path) -> None:
    account, token = desk.customer("Disk")
    tag = uuid.uuid4().hex[:6]
    with gateway_of_its_own(desk, data_dir=disk, min_free_disk_mb=RESERVE_MB) as url:
        filler = fill(disk, leave=RESERVE_MB * MiB + MiB // 2)  # half a MiB above the reserve
        r = upload(url, token, "/api/v1/tickets", {"subject": f"Big {tag}", "body": "log"}, MiB)
        assert r.status_code == 507, r.text
        assert r.json()["error"] == "insufficient_storage"
        assert r.json()["detail"] == {"field": "files", "bytes": MiB}
        # A small file still fits above the reserve.
        r = upload(url, token, "/api/v1/tickets", {"subject": f"Small {tag}", "body": "log"},
                   64 * 1024)  # fmt: skip
        assert r.status_code == 201, r.text
        number = r.json()["number"]
        # A message with a file too large for what is left: refused, the message not made.
        r = upload(url, token, f"/api/v1/tickets/{number}/messages", {"body": f"More {tag}"},
                   MiB)  # fmt: skip
        assert r.status_code == 507, r.text
        with desk.db.read() as s:
            subjects = list(
                s.scalars(select(Ticket.subject).where(Ticket.account_id == account.id))
            )
            more = s.scalar(select(func.count()).where(Message.body == f"More {tag}"))
        assert subjects == [f"Small {tag}"] and more == 0
        # Space again: the same requests are taken, with their files.
        filler.unlink()
        r = upload(url, token, "/api/v1/tickets", {"subject": f"Big {tag}", "body": "log"}, MiB)
        assert r.status_code == 201, r.text
        r = upload(url, token, f"/api/v1/tickets/{number}/messages", {"body": f"More {tag}"},
                   MiB)  # fmt: skip
        assert r.status_code == 201, r.text
    with desk.db.read() as s:
        files = s.execute(
            select(Ticket.subject, Message.body, Attachment.size)
            .join(Message, Message.ticket_id == Ticket.id)
            .join(Attachment, Attachment.message_id == Message.id)
            .where(Ticket.account_id == account.id)
            .order_by(Attachment.id)
        ).all()
    # Each ticket and message exactly once, with its file.
    assert [(t, size) for t, _, size in files] == [
        (f"Small {tag}", 64 * 1024), (f"Big {tag}", MiB), (f"Small {tag}", MiB)
    ]  # fmt: skip
    assert files[2][1] == f"More {tag}"


def mail(sender: str, subject: str, size: int) -> EmailMessage:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = sender, "support@sitedesk.test", subject
    msg["Message-ID"] = f"<{uuid.uuid4().hex}@customer.test>"
    msg.set_content("The log is attached.")
    msg.add_attachment(b"y" * size, maintype="text", subtype="plain", filename="mail.log")
    return msg


def kept(desk: Desk, msg: EmailMessage) -> int:
    ids = [msg["Message-ID"], msg["Message-ID"].strip("<>")]
    with desk.db.read() as s:
        return int(s.scalar(select(func.count()).where(InboundMail.message_id.in_(ids))) or 0)


@pytest.mark.ray
def test_the_smtp_door_answers_452_before_the_data_dir_disk_fills(desk: Desk, disk: Path) -> None:
    _, sender = desk.new_customer("Disk mail")
    limits = GatewaySettings(data_dir=disk, min_free_disk_mb=RESERVE_MB)
    door = SmtpIntake(desk.deployment.directory, desk.deployment.config.mail, port=free_port(),
                      limits=limits).start()  # fmt: skip
    big, small = mail(sender, "Big log", 300 * 1024), mail(sender, "Small log", 1024)
    try:
        filler = fill(disk, leave=RESERVE_MB * MiB - MiB)  # inside the reserve already
        with smtplib.SMTP("127.0.0.1", door.port, timeout=30) as c:
            c.ehlo("mx.test")
            c.mail(sender)
            code, answer = c.rcpt("support@sitedesk.test")
        assert (code, answer[:5]) == (452, b"4.3.1")
        filler = fill(disk, leave=RESERVE_MB * MiB + MiB // 2)  # room for a small mail only
        with smtplib.SMTP("127.0.0.1", door.port, timeout=30) as c:
            with pytest.raises(smtplib.SMTPDataError) as refused:
                c.send_message(big)
            assert refused.value.smtp_code == 452
            c.send_message(small)  # 250
        assert kept(desk, big) == 0 and kept(desk, small) == 1
        # Space again: the sending server's retry of the big one is taken, once.
        filler.unlink()
        with smtplib.SMTP("127.0.0.1", door.port, timeout=30) as c:
            c.send_message(big)
        assert kept(desk, big) == 1
    finally:
        door.stop()
    assert door.door.no_storage == 2


def test_a_write_stopped_by_the_full_disk_leaves_nothing_half_written(disk: Path) -> None:
    path = disk / "mail-secret"
    write_private(path, "old")
    fill(disk, leave=64 * 1024)
    with pytest.raises(OSError) as full:
        write_private(path, "z" * (256 * 1024))
    assert "No space left" in str(full.value)
    assert path.read_text() == "old" and sorted(p.name for p in disk.iterdir()) == [
        "filler",
        "mail-secret",
    ]  # no temporary file left behind


@pytest.mark.parametrize("migrated_db", ["sqlite"], indirect=True)
def test_a_ticket_the_full_disk_stops_is_not_filed_without_its_files(
    db: Database, disk: Path
) -> None:
    """The SQLite SCDB on the small disk (where the embedded desk keeps it): a ticket whose
    file does not fit fails whole, and the database is intact and takes it once there is room."""
    target = disk / "sitedesk.db"
    with sqlite3.connect(db.url.removeprefix("sqlite:///")) as src, sqlite3.connect(target) as dst:
        src.backup(dst)  # the session's migrated SCDB, copied onto the small disk
    small = Database(f"sqlite:///{target}")
    try:
        with small.write() as s:
            account_id = make_account(s).id
        service = TicketService(small, ActorConfig(database_url=small.url, redis_url="-"))
        item = NewTicket(account_id=account_id, subject="With a big file", body="See the file",
                         channel="phone", requester=SYSTEM,
                         attachments=[FilePart(filename="big.bin", content_type="text/plain",
                                               data=b"b" * (3 * MiB))])  # fmt: skip
        filler = fill(disk, leave=MiB)
        with pytest.raises(Exception, match="full"):
            service.create_many([item])
        with small.read() as s:
            assert s.scalar(select(func.count()).select_from(Ticket)) == 0
            assert s.scalar(select(func.count()).select_from(Attachment)) == 0
        filler.unlink()
        assert free_bytes(disk) > 6 * MiB
        [filed] = service.create_many([item])
        with small.read() as s:
            sizes = list(s.scalars(select(Attachment.size)))
            check = s.connection().exec_driver_sql("PRAGMA integrity_check").scalar()
        assert not isinstance(filed, Exception) and sizes == [3 * MiB] and check == "ok"
    finally:
        small.dispose()
