"""The running desk for integration tests: real Ray actors on the SCDB (SQLite, then
PostgreSQL) and Redis, and the gateway served by uvicorn on a loopback port. Started once per
backend in the session's one Ray."""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import uvicorn

from automation.loopback import free_port
from cluster.deploy import Deployment
from gateway.app import create_app, server_options
from gateway.platform import Platform
from store.db import Database
from store.models import Account, Agent
from store.models.base import utcnow
from store.repositories import AccountRepository, AgentRepository, SlaRepository, UserRepository

PASSWORD = "test password 123"


def seed_sla(db: Database) -> None:
    with db.write() as s:
        sla = SlaRepository(s)
        sla.upsert_policy("urgent", first_response_minutes=30, resolution_minutes=240,
                          business_hours=False)  # fmt: skip
        sla.upsert_policy("high", first_response_minutes=60, resolution_minutes=480,
                          business_hours=False)  # fmt: skip
        sla.upsert_policy("normal", first_response_minutes=240, resolution_minutes=1440)
        sla.upsert_policy("low", first_response_minutes=480, resolution_minutes=4320)


class LiveServer:
    def __init__(self, platform: Platform) -> None:
        self.port = free_port()
        config = uvicorn.Config(
            create_app(platform),
            host="127.0.0.1",
            port=self.port,
            log_level="warning",
            **server_options(),
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def start(self) -> LiveServer:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the gateway did not start"
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(10)


@dataclass
class Desk:
    db: Database
    base_url: str
    deployment: Deployment
    smtp_port: int = 0  # the SMTP intake (gateway/smtp.py) on a loopback port
    outgoing: Any = None  # the relay of the desk's outgoing mail: a tests.smtp_sink.SmtpSink
    agents_made: list[tuple[int, int]] = field(default_factory=list)  # (agent id, tier)

    def http(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        return httpx.Client(base_url=self.base_url, headers=headers, timeout=30)

    def send_mail(
        self, raw: bytes, *, mail_from: str = "", to: str = "support@sitedesk.test"
    ) -> str:
        """Deliver a message to the desk's SMTP intake over a real socket; returns the 250
        answer (an SMTP error raises, as smtplib does)."""
        import smtplib

        raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")  # on the wire: CRLF
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=60) as c:
            c.ehlo("tests.sitedesk.test")
            c.mail(mail_from)
            code, answer = c.rcpt(to)
            if code != 250:
                raise smtplib.SMTPRecipientsRefused({to: (code, answer)})
            code, answer = c.data(raw)
            if code != 250:
                raise smtplib.SMTPDataError(code, answer)
            return answer.decode()

    def login(self, email: str, password: str = PASSWORD) -> str:
        with self.http() as c:
            r = c.post("/api/v1/auth/token", data={"username": email, "password": password})
        assert r.status_code == 200, r.text
        return str(r.json()["access_token"])

    def admin(self) -> str:
        """A new administrator's login; returns a token."""
        email = f"admin.{secrets.token_hex(4)}@sitedesk.test"
        with self.db.write() as s:
            UserRepository(s).create(
                email=email, display_name="Admin", role="admin", password=PASSWORD
            )
        return self.login(email)

    def customer(self, name: str = "Customer") -> tuple[Account, str]:
        """A new account with one customer login; returns the account and a token."""
        account, email = self.new_customer(name)
        return account, self.login(email)

    def new_customer(self, name: str = "Customer") -> tuple[Account, str]:
        """A new account with one domain and one customer login; returns it and the e-mail."""
        tag = secrets.token_hex(4)
        email = f"{name.lower().replace(' ', '.')}.{tag}@example.test"
        with self.db.write() as s:
            accounts = AccountRepository(s)
            account = accounts.create(code=f"T-{tag}", name=f"{name} {tag}", unix_user=f"u{tag}")
            contact = accounts.add_contact(account.id, name=name, email=email, is_primary=True)
            accounts.add_service(account.id, kind="domain", name=f"{tag}.example.test")
            UserRepository(s).create(
                email=email, display_name=name, role="customer", password=PASSWORD,
                account_id=account.id, contact_id=contact.id,
            )  # fmt: skip
        return account, email

    def agent(
        self, tier: int, *, online: bool = True, capacity: int = 50, skills: list[str] | None = None
    ) -> tuple[Agent, str]:
        tag = secrets.token_hex(4)
        email = f"agent.{tier}.{tag}@sitedesk.test"
        with self.db.write() as s:
            user = UserRepository(s).create(
                email=email, display_name=f"L{tier} agent {tag}", role="agent", password=PASSWORD
            )
            agent = AgentRepository(s).create(
                user_id=user.id, tier=tier, capacity=capacity,
                skills=skills or ["general", "dns", "web", "email", "database", "ftp", "tls"],
            )  # fmt: skip
        token = self.login(email)
        self.agents_made.append((agent.id, tier))
        if online:
            with self.http(token) as c:
                r = c.put("/api/v1/agents/me/presence", json={"presence": "online"})
                assert r.status_code == 200, r.text
        return agent, token

    def reset(self) -> None:
        """Between tests: the test's agents go offline and every ticket still open is closed,
        so that no test inherits another's queue."""
        import ray
        from sqlalchemy import update

        from store.models import Ticket
        from store.models.enums import OPEN_STATUSES

        pools = self.deployment.directory
        ray.get(
            [pools.pool(tier).set_presence.remote(aid, "offline") for aid, tier in self.agents_made]
        )
        self.agents_made.clear()
        with self.db.write() as s:
            s.execute(
                update(Ticket)
                .where(Ticket.status.in_(OPEN_STATUSES))
                .values(status="closed", closed_at=utcnow(), version=Ticket.version + 1)
            )
        ray.get([pools.pool(tier).resync.remote() for tier in (1, 2, 3)])


def wait_until(check: Callable[[], Any], timeout: float = 30.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"{what} not reached within {timeout}s (last: {last!r})")
