"""E-mail intake: messages/s from SMTP to a committed, threaded ticket, beside the same
messages only parsed by Python's `email` module, in the same run.

- desk path: a real SMTP client (asyncio, keep-alive connections, one transaction after the
  other per connection) -> the SMTP door (gateway/smtp.py, aiosmtpd, in its own process that
  joins this Ray, as in production) -> the Intake actor (parse, keep the raw bytes, loop and
  bounce rules, threading) -> a new ticket through the group commit, or a reply through the
  account's lane. A message counts when its `250` arrives: its ticket step is committed then.
- baseline: the same bytes through `email.message_from_bytes(policy=default)`, the text body
  and every attachment's content read, in this process. It is what any Python intake must do
  at least; the ratio says what keeping, threading and committing cost on top.

Workload: half new tickets from the customers' contacts (one in five with a PDF attached, a
quoted history below the text), then as many replies to those tickets, half threaded by our
signed Message-ID in In-Reply-To, half by the ticket number in the subject from the requester.
Both phases are timed apart. Target (issue 9): >= 200 messages/s on this machine.

Run: ``.venv/bin/python bench/email.py [--messages 2000] [--connections 16]
[--database postgresql|sqlite]``.
"""

from __future__ import annotations

# Run as a script, this file's directory comes first on sys.path, where this file would shadow
# the standard library's `email`: drop it before anything imports `email`, and make the
# project importable.
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if sys.path and Path(sys.path[0]).resolve() == Path(__file__).resolve().parent:
    sys.path.pop(0)
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import argparse
import asyncio
import contextlib
import email
import json
import os
import random
import secrets
import socket
import subprocess
import tempfile
import time
from email import policy
from email.message import EmailMessage
from email.utils import make_msgid
from typing import Any

from sqlalchemy import func, select

from actors.mail.message_id import make_message_id
from actors.mail.settings import MailSettings
from automation.loopback import free_port
from bench.intake import cpu_by_process, cpu_per_ticket, mark, new_database, seed_agents
from store.db import Database
from store.models import InboundMail, Message

REDIS_URL = "redis://127.0.0.1:6379/13"
CUSTOMERS = 8
TARGET = 200.0  # messages/s
SECRET = secrets.token_bytes(32)
DOMAIN = "sitedesk.bench"
SUPPORT = f"support@{DOMAIN}"


# -- the door's process ---------------------------------------------------------------------------
def serve_door(cfg: dict[str, Any]) -> None:
    """Child process: join the Ray and serve the SMTP door until terminated."""
    import signal

    import ray

    from actors.directory import Directory
    from gateway.smtp import SmtpIntake

    ray.init(address=cfg["ray_address"], namespace=cfg["namespace"], logging_level="WARNING",
             log_to_driver=False)  # fmt: skip
    settings = MailSettings.model_validate(cfg["mail"])
    door = SmtpIntake(
        Directory(cfg["namespace"], cfg["shards"]), settings, port=cfg["port"]
    ).start()
    signal.sigwait({signal.SIGTERM, signal.SIGINT})
    door.stop()


def wait_port(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit("the SMTP door process died")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.1)
    raise SystemExit("the SMTP door did not start")


# -- the workload ---------------------------------------------------------------------------------
WORDS = [
    "site",
    "down",
    "mailbox",
    "quota",
    "dns",
    "record",
    "certificate",
    "renewal",
    "slow",
    "php",
    "error",
    "backup",
    "restore",
    "ftp",
    "password",
    "database",
    "invoice",
    "cron",
]


def text(rng: random.Random, words: int) -> str:
    return " ".join(rng.choice(WORDS) for _ in range(words)).capitalize() + "."


def new_mail(rng: random.Random, sender: str, i: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = f"Customer {i % CUSTOMERS} <{sender}>"
    msg["To"] = SUPPORT
    msg["Subject"] = text(rng, 6)
    msg["Message-ID"] = make_msgid(idstring=f"n{i}", domain="customer.bench")
    msg["Date"] = email.utils.formatdate(localtime=False)
    history = "\n".join(f"> {text(rng, 12)}" for _ in range(8))
    msg.set_content(
        f"Hello,\n\n{text(rng, 60)}\n\nThanks,\nCustomer\n\nOn Monday support wrote:\n{history}\n"
    )
    if i % 5 == 0:
        msg.add_attachment(rng.randbytes(20_000), maintype="application", subtype="pdf",
                           filename=f"screenshot-{i}.pdf")  # fmt: skip
    return msg.as_bytes()


def reply_mail(rng: random.Random, sender: str, ticket_id: int, number: str, i: int) -> bytes:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = SUPPORT
    msg["Message-ID"] = make_msgid(idstring=f"r{i}", domain="customer.bench")
    if i % 2 == 0:
        ours = make_message_id(SECRET, ticket_id=ticket_id, outbox_id=None, domain=DOMAIN)
        msg["Subject"] = "Re: your request"
        msg["In-Reply-To"] = ours
        msg["References"] = ours
    else:
        msg["Subject"] = f"Re: [{number}] still broken"
    msg.set_content(f"{text(rng, 30)}\n\nOn Tuesday support wrote:\n> {text(rng, 20)}\n")
    return msg.as_bytes()


def wire(raw: bytes) -> bytes:
    """DATA as sent: CRLF line ends, leading dots doubled, the final dot line."""
    lines = raw.replace(b"\r\n", b"\n").rstrip(b"\n").split(b"\n")
    return b"".join((b"." + ln if ln.startswith(b".") else ln) + b"\r\n" for ln in lines) + b".\r\n"


# -- a minimal asyncio SMTP client ----------------------------------------------------------
class Client:
    def __init__(self, port: int) -> None:
        self.port = port

    async def open(self) -> None:
        self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        await self.reply()
        await self.command(b"EHLO bench.sitedesk.test")

    async def reply(self) -> tuple[int, str]:
        lines = []
        while True:
            line = (await self.reader.readline()).decode()
            lines.append(line[4:].strip())
            if len(line) < 4 or line[3] != "-":
                return int(line[:3]), " ".join(lines)

    async def command(self, line: bytes) -> tuple[int, str]:
        self.writer.write(line + b"\r\n")
        return await self.reply()

    async def send(self, sender: str, data: bytes) -> tuple[int, str]:
        await self.command(f"MAIL FROM:<{sender}>".encode())
        code, answer = await self.command(f"RCPT TO:<{SUPPORT}>".encode())
        if code != 250:
            return code, answer
        code, answer = await self.command(b"DATA")
        if code != 354:
            return code, answer
        self.writer.write(data)
        return await self.reply()


async def deliver(
    port: int, connections: int, items: list[tuple[str, bytes]]
) -> tuple[float, list[str], int]:
    """Send every (sender, wire data) over `connections` connections; returns the seconds,
    the answers in order and how many were not 250."""
    answers: list[str] = [""] * len(items)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(items)):
        queue.put_nowait(i)
    failed = 0

    async def worker() -> None:
        nonlocal failed
        c = Client(port)
        await c.open()
        while not queue.empty():
            i = queue.get_nowait()
            code, answer = await c.send(*items[i])
            answers[i] = answer
            failed += code != 250
        await c.command(b"QUIT")

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(connections)))
    return time.perf_counter() - started, answers, failed


def parse_only(messages: list[bytes]) -> tuple[float, float]:
    """The baseline: (messages/s, CPU ms/message) of the email module reading each message."""
    cpu0, t0 = time.process_time(), time.perf_counter()
    for raw in messages:
        msg = email.message_from_bytes(raw, policy=policy.default)
        body = msg.get_body(preferencelist=("plain", "html"))  # type: ignore[attr-defined]
        if body is not None:
            body.get_content()
        for part in msg.iter_attachments():  # type: ignore[attr-defined]
            part.get_content()
        _ = msg["subject"], msg["from"], msg["message-id"]
    wall, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    return len(messages) / wall, 1000 * cpu / len(messages)


# -- the run --------------------------------------------------------------------------------
def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--messages", type=int, default=2000, help="in all, half new, half replies")
    ap.add_argument("--connections", type=int, default=16)
    ap.add_argument("--database", choices=["postgresql", "sqlite"], default="postgresql")
    ap.add_argument("--redis-url", default=REDIS_URL)
    ap.add_argument("--serve-door", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.serve_door:
        serve_door(json.loads(args.serve_door))
        return 0

    import ray

    from actors.config import ActorConfig
    from cluster.deploy import deploy
    from cluster.ray_runtime import ray_env_defaults, start_ray, stop_ray
    from cluster.settings import ClusterSettings
    from store.models.ticket import ticket_id_from_number
    from store.repositories import AccountRepository
    from tests.desk import seed_sla

    rng = random.Random(9)
    half = args.messages // 2
    with contextlib.ExitStack() as stack:
        workdir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="email-bench-")))
        os.environ.setdefault("RAY_TMPDIR", str(workdir))
        url, drop = new_database(args.database, workdir)
        stack.callback(drop)
        db = Database(url)
        stack.callback(db.dispose)
        db.upgrade()
        seed_sla(db)
        tag = secrets.token_hex(3)
        senders = []
        with db.write() as s:
            for i in range(CUSTOMERS):
                accounts = AccountRepository(s)
                account = accounts.create(
                    code=f"M-{tag}-{i}", name=f"Mail {i}", unix_user=f"m{i}{tag}"
                )
                address = f"mail.{i}.{tag}@customer.bench"
                accounts.add_contact(
                    account.id, name=f"Customer {i}", email=address, is_primary=True
                )
                senders.append(address)
        agents = seed_agents(db, tag, 2 + args.messages // 1000)

        ray_env_defaults()
        os.environ.setdefault("RAY_worker_niceness", "0")  # as bench/intake.py: equal terms
        namespace = f"sitedesk-bench-{tag}"
        start_ray(ClusterSettings(data_dir=workdir / "data", ray_address=None, ray_token_file=None,
                                  ray_namespace=namespace, ray_dashboard=False,
                                  ray_object_store_mb=128))  # fmt: skip
        stack.callback(stop_ray)
        mail = MailSettings(mail_secret=SECRET.hex(), mail_addresses={SUPPORT: "general"},
                            mail_domain=DOMAIN, mail_from=SUPPORT,
                            mail_sink_dir=str(workdir / "sent"))  # fmt: skip
        config = ActorConfig(database_url=url, redis_url=args.redis_url, namespace=namespace,
                             mail=mail)  # fmt: skip
        deployment = deploy(config)
        pool = deployment.directory.pool(1)
        ray.get([pool.set_presence.remote(a, "online") for a in agents])

        port = free_port()
        child = {"ray_address": ray.get_runtime_context().gcs_address, "namespace": namespace,
                 "shards": config.session_shards, "port": port,
                 "mail": {**json.loads(mail.model_dump_json()),
                          "mail_secret": SECRET.hex()}}  # fmt: skip
        proc = subprocess.Popen([sys.executable, str(Path(__file__).resolve()), "--serve-door",
                                 json.dumps(child)])  # fmt: skip

        def stop_door() -> None:
            proc.terminate()
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()

        stack.callback(stop_door)
        wait_port(port, proc)

        new = [
            (senders[i % CUSTOMERS], new_mail(rng, senders[i % CUSTOMERS], i)) for i in range(half)
        ]
        print(f"email bench: {args.database}, {os.cpu_count()} cores, {args.messages} messages "
              f"over {args.connections} connections", flush=True)  # fmt: skip
        rate0, cpu_ms0 = parse_only([raw for _, raw in new])
        cpu0 = cpu_by_process(os.getpid())
        seconds, answers, failed = asyncio.run(
            deliver(port, args.connections, [(s, wire(raw)) for s, raw in new])
        )
        print(f"  new tickets  {half / seconds:7.1f} msg/s ({failed} not 250)  "
              + cpu_per_ticket(cpu0, cpu_by_process(os.getpid()), half).replace("ticket", "msg"),
              flush=True)  # fmt: skip
        numbers = [next((w for w in a.split() if w.startswith("TT-")), "") for a in answers]
        replies = []
        for i in range(half):
            number = numbers[i % half]
            tid = ticket_id_from_number(number) or 1
            sender = new[i % half][0]
            replies.append((sender, reply_mail(rng, sender, tid, number, i)))
        rate1, cpu_ms1 = parse_only([raw for _, raw in replies])
        cpu0 = cpu_by_process(os.getpid())
        seconds_r, _answers_r, failed_r = asyncio.run(
            deliver(port, args.connections, [(s, wire(raw)) for s, raw in replies])
        )
        print(f"  replies      {half / seconds_r:7.1f} msg/s ({failed_r} not 250)  "
              + cpu_per_ticket(cpu0, cpu_by_process(os.getpid()), half).replace("ticket", "msg"),
              flush=True)  # fmt: skip
        overall = args.messages / (seconds + seconds_r)
        base = 2 / (1 / rate0 + 1 / rate1)
        print(
            f"  email module {base:7.1f} msg/s parsing only "
            f"(CPU {(cpu_ms0 + cpu_ms1) / 2:.2f} ms/msg)"
        )
        print(f"  desk path    {overall:7.1f} msg/s overall = {overall / base:.3f} of parse-only; "
              f"target >= {TARGET:.0f} msg/s: {mark(overall >= TARGET)}")  # fmt: skip

        with db.read() as s:
            kept = s.scalar(select(func.count()).select_from(InboundMail)) or 0
            threaded = s.scalar(select(func.count()).select_from(InboundMail)
                                .where(InboundMail.status == "appended")) or 0  # fmt: skip
            messages = s.scalar(select(func.count()).select_from(Message)
                                .where(Message.inbound_mail_id.is_not(None))) or 0  # fmt: skip
        checks = [
            ("every message answered 250", failed + failed_r == 0),
            ("every message kept once", kept == args.messages),
            ("every message on a ticket once", messages == args.messages),
            ("every reply threaded onto its ticket", threaded == half),
        ]
        for name, ok in checks:
            print(f"  check: {name}: {mark(ok)}")
        return 0 if all(ok for _, ok in checks) else 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
