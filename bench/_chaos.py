"""The chaos ledger: a mixed load through the public doors while a fault schedule strikes, each
client keeping a ledger of what it was told, then the proof that nothing acknowledged was lost
or doubled (bench/chaos.py runs it; tests/chaos/test_chaos_short.py runs a short one).

The load: tickets opened by customers (portal) and by agents (phone), replies by both,
self-service changes (DNS records, mailbox passwords) by customers, and mail over SMTP into the
intake door, every request with an `Idempotency-Key` (mail: its Message-ID), retried with the
same key after an unknown outcome (a timeout, a reset), and after the `Retry-After` of a 503 or
429. Each attempt is noted as acknowledged (2xx, 250), refused (503/429 with Retry-After, a 4xx
451 from the SMTP door) or unknown (no answer); a 500, a 503 without Retry-After or a hang is an
error. Live-stream clients (SSE) reconnect with `Last-Event-ID` whenever they are cut off.

After the schedule: every acknowledged ticket, message and change exists once in the SCDB;
every change settled and, where applied, is on its host once (the journal entry, the record at
named, a log-in at Dovecot with the newest password); every outbox row was published and its
mails planned once and each sent mail is in the sink once (by Message-ID); each stream saw every
event its audience may see, in order, without a gap. Results per fault in one table.
"""

from __future__ import annotations

import email.utils
import imaplib
import itertools
import json
import os
import random
import re
import secrets
import smtplib
import subprocess
import threading
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.parser import BytesHeaderParser
from pathlib import Path
from typing import Any

import dns.query
import dns.rdatatype
import dns.zone
import httpx
from sqlalchemy import func, select

from bench._chaos_stack import (
    VENV_BIN,
    Gateway,
    Hosts,
    PortRange,
    PrivatePostgres,
    PrivateRay,
    PrivateRedis,
    command_line,
    kill_pids,
)
from store.db import Database
from store.demo import DemoLogins, demo_domains_by_host, load_demo
from store.models import ChangeRequest, InboundMail, Message, Ticket
from store.models.mail import MailDelivery
from store.models.outbox import Listener, OutboxEvent
from store.repositories import AccountRepository, OutboxRepository, UserRepository

CLIENT_TIMEOUT = 35.0  # past the gateway's own 30 s deadline: a timeout here is a hang
REQUEST_DEADLINE = 120.0  # a logical request is retried this long, then given up
PASSWORD = "chaos customer pw 1"
NONE = "no fault"

# Ray's process titles (ray::<class>) of each actor kind the schedule kills.
ACTOR_KINDS = {
    "intake": "Intake",
    "tier pool": "TierPool",
    "account sessions": "AccountSessionsActor",
    "notifier": "Notifier",
    "mail out": "MailOut",
    "SLA clock": "SlaClock",
    "GDCAS executor": "ChangeExecutorActor",
}


# -- the ledger ------------------------------------------------------------------------------
@dataclass
class Request:
    """One logical request and what its client was told, attempt by attempt."""

    kind: str  # ticket, phone_ticket, reply, change, mail
    key: str
    fault: str  # the fault window its first attempt fell in
    started: float
    attempts: list[str] = field(default_factory=list)  # ack / refused / unknown / error
    result: Any = None  # ticket number, change id
    acked_at: float | None = None
    final: str = "pending"  # acked, refused (for good), given_up
    extra: dict[str, Any] = field(default_factory=dict)


class Ledger:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.requests: list[Request] = []
        self.fault = NONE
        self.errors: list[tuple[str, str, str]] = []  # (fault, what, detail)
        self.attempts: Counter[tuple[str, str]] = Counter()  # (fault, outcome)

    def open(self, kind: str, key: str, **extra: Any) -> Request:
        r = Request(kind, key, self.fault, time.monotonic(), extra=extra)
        with self.lock:
            self.requests.append(r)
        return r

    def note(self, r: Request, outcome: str, detail: str = "") -> None:
        with self.lock:
            fault = self.fault
            r.attempts.append(outcome)
            self.attempts[(fault, outcome)] += 1
            if outcome == "error":
                self.errors.append((fault, r.kind, detail[:300]))

    def acked(self, kind: str) -> list[Request]:
        with self.lock:
            return [r for r in self.requests if r.kind == kind and r.final == "acked"]


def mid(message_id: object) -> str:
    """A Message-ID as compared here: without its angle brackets and spaces."""
    return str(message_id or "").strip().strip("<>").strip()


# -- HTTP and SMTP clients -------------------------------------------------------------------
def _retry_after(resp: httpx.Response) -> float | None:
    value = resp.headers.get("Retry-After")
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


class Client:
    """One HTTP client with a token: performs logical requests with retries, noting each."""

    def __init__(self, run: ChaosRun, token: str, label: str) -> None:
        self.run, self.token, self.label = run, token, label
        self.http = httpx.Client(
            base_url=run.gateway.url,
            headers={"Authorization": f"Bearer {token}"},
            timeout=CLIENT_TIMEOUT,
        )

    def perform(
        self,
        kind: str,
        method: str,
        path: str,
        body: dict[str, Any] | None,
        take: Callable[[dict[str, Any]], Any],
        **extra: Any,
    ) -> Request:
        ledger = self.run.ledger
        key = str(uuid.uuid4())
        r = ledger.open(kind, key, **extra)
        deadline = r.started + REQUEST_DEADLINE
        while time.monotonic() < deadline:
            t0 = time.monotonic()
            try:
                resp = self.http.request(method, path, json=body, headers={"Idempotency-Key": key})
            except httpx.TimeoutException as exc:
                hung = time.monotonic() - t0 >= CLIENT_TIMEOUT - 1
                ledger.note(r, "error" if hung else "unknown", f"hang: {method} {path} {exc}")
                time.sleep(0.5)
                continue
            except httpx.TransportError:
                ledger.note(r, "unknown")
                time.sleep(0.3)
                continue
            code = resp.status_code
            if 200 <= code < 300:
                ledger.note(r, "ack")
                r.result, r.acked_at, r.final = take(resp.json()), time.monotonic(), "acked"
                return r
            wait = _retry_after(resp)
            if code in (429, 503):
                if wait is None:
                    ledger.note(r, "error", f"{code} without Retry-After: {resp.text[:200]}")
                    wait = 1.0
                else:
                    ledger.note(r, "refused")
                time.sleep(min(max(wait, 0.2), 5.0))
                continue
            if code >= 500:
                ledger.note(r, "error", f"{code} {method} {path}: {resp.text[:200]}")
                time.sleep(1.0)
                continue
            ledger.note(r, "refused")  # a refusal for good (4xx): not retried
            r.final = "refused"
            r.extra["answer"] = f"{code} {resp.text[:200]}"
            return r
        r.final = "given_up"
        return r

    def close(self) -> None:
        self.http.close()


def send_mail(run: ChaosRun, sender: str, key: str, **extra: Any) -> Request:
    """A customer's mail server delivering one message to the intake, retrying with the same
    bytes (the same Message-ID) until it is taken (250), as an MTA does after a 4xx."""
    ledger = run.ledger
    msg = EmailMessage()
    msg["From"], msg["To"] = sender, run.support_address
    msg["Subject"] = f"chaos mail {key}"
    msg["Message-ID"] = email.utils.make_msgid(idstring=key[:12], domain=sender.split("@")[1])
    msg["Date"] = email.utils.formatdate()
    msg.set_content(f"chaos mail body {key}\n")
    raw = msg.as_bytes()
    r = ledger.open("mail", key, message_id=msg["Message-ID"], marker=key, **extra)
    deadline = r.started + REQUEST_DEADLINE
    while time.monotonic() < deadline:
        try:
            with smtplib.SMTP("127.0.0.1", run.gateway.smtp_port, timeout=CLIENT_TIMEOUT) as c:
                c.ehlo("mx.chaos.test")
                c.mail(sender)
                code, answer = c.rcpt(run.support_address)
                if code == 250:
                    code, answer = c.data(raw)
        except (OSError, smtplib.SMTPException):
            ledger.note(r, "unknown")
            time.sleep(0.5)
            continue
        text = answer.decode(errors="replace")
        if code == 250:
            ledger.note(r, "ack")
            found = re.search(r"TT-\d+", text)
            r.result, r.acked_at, r.final = found and found.group(0), time.monotonic(), "acked"
            return r
        if 400 <= code < 500:
            ledger.note(r, "refused")
            time.sleep(1.0)
            continue
        ledger.note(r, "error", f"SMTP {code} {text}")
        time.sleep(1.0)
    r.final = "given_up"
    return r


class Stream(threading.Thread):
    """A live-stream client that reconnects with Last-Event-ID whenever it is cut off."""

    def __init__(self, run: ChaosRun, token: str, label: str, listener: Listener, start: int):
        super().__init__(daemon=True, name=f"sse-{label}")
        self.chaos, self.token, self.label, self.listener = run, token, label, listener
        self.start_id = self.last_id = start
        self.received: list[int] = []
        self.resets: list[dict[str, Any]] = []
        self.reconnects = 0  # streams opened again after the first
        self.opened = False
        self.stopping = threading.Event()

    def run(self) -> None:  # type: ignore[override]  # threading.Thread.run
        while not self.stopping.is_set():
            headers = {"Authorization": f"Bearer {self.token}", "Last-Event-ID": str(self.last_id)}
            try:
                with (
                    httpx.Client(timeout=httpx.Timeout(5, read=40)) as c,
                    c.stream("GET", f"{self.run_url}/api/v1/events", headers=headers) as resp,
                ):
                    if resp.status_code == 200 and self.opened:
                        self.reconnects += 1
                    if resp.status_code != 200:
                        wait = _retry_after(resp)
                        if resp.status_code not in (429, 503) or wait is None:
                            self.run_ledger_error(f"stream {resp.status_code}")
                        time.sleep(min(wait or 1.0, 5.0))
                        continue
                    self.opened = True
                    data: str | None = None
                    for line in resp.iter_lines():
                        if self.stopping.is_set():
                            return
                        if line.startswith("data: "):
                            data = line[6:]
                        elif line == "" and data is not None:
                            self._event(json.loads(data))
                            data = None
            except (httpx.HTTPError, OSError):
                pass
            time.sleep(0.3)

    @property
    def run_url(self) -> str:
        return self.chaos.gateway.url

    def run_ledger_error(self, detail: str) -> None:
        with self.chaos.ledger.lock:
            self.chaos.ledger.errors.append((self.chaos.ledger.fault, f"sse {self.label}", detail))

    def _event(self, ev: dict[str, Any]) -> None:
        if ev.get("topic") == "reset":
            self.resets.append(ev)
            self.last_id = int(ev["id"])
            return
        self.received.append(int(ev["id"]))
        self.last_id = int(ev["id"])


# -- the run ---------------------------------------------------------------------------------
@dataclass
class Load:
    """How much load, and how fast (per client, seconds between its requests)."""

    customers: int = 6  # chaos accounts, each with a customer: portal tickets, replies, changes
    phone_agents: int = 3  # agents opening phone tickets for the customers and replying
    mail_senders: int = 1
    pace: float = 1.0
    change_every: float = 6.0  # a customer's self-service change (DNS record; every 4th a password)
    portal_tickets_max: int = 20  # per account: the desk allows 30 an hour
    streams: int = 3  # customers watching their account live (besides an admin and an agent)


@dataclass
class Fault:
    kind: str  # a row of the table
    inject: Callable[[], None]
    restore: Callable[[], None] = lambda: None
    down_for: float = 0.0  # seconds between inject and restore
    probe: bool = False  # ask the doors while it is down: 503 with Retry-After, SMTP 451


@dataclass
class FaultRun:
    kind: str
    started: float
    ended: float = 0.0
    ready_after: float = 0.0  # /readyz ready again, seconds after the fault struck
    note: str = ""


class ChaosRun:
    def __init__(self, base: Path, load: Load, *, out: Callable[[str], None] = print) -> None:
        self.base, self.load, self.out = base, load, out
        self.ledger = Ledger()
        self.ports = PortRange()
        self.support_address = "support@sitedesk.demo"
        self.faults: list[FaultRun] = []
        self.readiness: list[tuple[float, bool]] = []
        self.streams: list[Stream] = []
        self.stop_load = threading.Event()
        self.threads: list[threading.Thread] = []
        self.timings: list[tuple[str, float]] = []
        self.change_log: list[dict[str, Any]] = []
        # (fault, request, status, Retry-After, text) of each door asked while a part was down
        self.down_probes: list[tuple[str, str, int, str | None, str]] = []
        self.started = time.monotonic()

    # -- set-up ------------------------------------------------------------------------------
    def setup(self) -> None:
        t0 = time.monotonic()
        self.base.mkdir(parents=True, exist_ok=True)
        self.base.chmod(0o711)
        self.pg = PrivatePostgres(self.base, self.ports.take("private")).start()
        self.redis = PrivateRedis(self.base, self.ports.take("private")).start()
        self.ray = PrivateRay(self.base, self.ports).start()
        self.timings.append(("PostgreSQL, Redis, Ray head", time.monotonic() - t0))
        env = {"SITEDESK_DATABASE_URL": self.pg.url}
        subprocess.run(
            [str(VENV_BIN / "sitedesk"), "db", "upgrade"],
            check=True,
            capture_output=True,
            env={**os.environ, **env},
        )
        self.db = Database(self.pg.url, pool_size=4)
        zones = demo_domains_by_host(2)
        self.domains = [f"chaos-{i}.test" for i in range(self.load.customers)]
        for i, d in enumerate(self.domains):
            zones[i % 2].append(d)
        t1 = time.monotonic()
        self.hosts = Hosts(self.base, zones).start()
        self.timings.append(
            ("managed hosts (2: sshd, named, nginx, Dovecot, Postfix)", time.monotonic() - t1)
        )
        self.logins = load_demo(
            self.db, self.base / "demo-logins.json", hosts=self.hosts.demo_hosts()
        )
        self.accounts = self._chaos_accounts()
        self.gateway = Gateway(
            self.base,
            {
                **env,
                "SITEDESK_REDIS_URL": self.redis.url,
                "SITEDESK_RAY_ADDRESS": self.ray.address,
                "SITEDESK_RAY_TOKEN_FILE": str(self.ray.token),
                "RAY_USAGE_STATS_ENABLED": "0",
            },
            self.ports.take("http"),
            self.ports.take("smtp"),
        )
        self.timings.append(("first gateway start (creates the actors)", self.gateway.start()))
        self.sink = self.gateway.data_dir / "sent-mail"
        self._log_in()
        self._provision_mailboxes()
        self.timings.append(("set-up in all", time.monotonic() - t0))

    def _chaos_accounts(self) -> list[dict[str, Any]]:
        out = []
        with self.db.write() as s:
            accounts, users = AccountRepository(s), UserRepository(s)
            host_ids = {h.name: None for h in self.hosts.demo_hosts()}
            from store.repositories import HostRepository

            hosts = HostRepository(s)
            for name in host_ids:
                row = hosts.by_name(name)
                assert row is not None
                host_ids[name] = row.id
            ordered = list(host_ids.values())
            for i, domain in enumerate(self.domains):
                acct = accounts.create(code=f"CH-{i:04d}", name=f"Chaos {i}", unix_user=f"chaos{i}")
                contact = accounts.add_contact(
                    acct.id, name=f"Chaos Contact {i}", email=f"owner@{domain}", is_primary=True
                )
                host_id = ordered[i % 2]
                zone = accounts.add_service(acct.id, kind="dns_zone", name=domain, host_id=host_id)
                box = accounts.add_service(
                    acct.id,
                    kind="mailbox",
                    name=f"info@{domain}",
                    host_id=host_id,
                    attributes={"quota_mb": 100},
                )
                users.create(
                    email=f"owner@{domain}",
                    display_name=f"Chaos Owner {i}",
                    role="customer",
                    password=PASSWORD,
                    account_id=acct.id,
                    contact_id=contact.id,
                )
                out.append(
                    {
                        "account_id": acct.id,
                        "contact_id": contact.id,
                        "domain": domain,
                        "email": f"owner@{domain}",
                        "zone_id": zone.id,
                        "mailbox_id": box.id,
                        "mailbox": f"info@{domain}",
                        "host": f"demo-host-{i % 2 + 1}",
                    }
                )
        return out

    def login(self, email: str, password: str) -> str:
        for _ in range(30):
            try:
                r = httpx.post(
                    f"{self.gateway.url}/api/v1/auth/token",
                    data={"username": email, "password": password},
                    timeout=30,
                )
            except httpx.HTTPError:
                time.sleep(1)
                continue
            if r.status_code == 200:
                return str(r.json()["access_token"])
            time.sleep(float(r.headers.get("Retry-After", "1")))
        raise RuntimeError(f"could not log in as {email}")

    def _log_in(self) -> None:
        logins: DemoLogins = self.logins
        by_role: dict[str, list[Any]] = defaultdict(list)
        for x in logins.logins:
            by_role[x.role].append(x)
        self.admin_token = self.login(by_role["admin"][0].email, by_role["admin"][0].password)
        agents = [x for x in by_role["agent"]][: self.load.phone_agents + 1]
        self.agent_tokens = [self.login(a.email, a.password) for a in agents]
        for a in self.accounts:
            a["token"] = self.login(a["email"], PASSWORD)

    def _provision_mailboxes(self) -> None:
        """Each chaos account's mailbox made on its host (as an administrator), with a password
        the run then changes."""
        c = Client(self, self.admin_token, "admin")
        ids = []
        for a in self.accounts:
            a["password"] = secrets.token_urlsafe(16)
            body = {
                "service_id": a["mailbox_id"],
                "kind": "mailbox_create",
                "params": {"address": a["mailbox"], "password": a["password"]},
                "account_id": a["account_id"],
            }
            r = c.perform("setup", "POST", "/api/v1/changes", body, lambda j: j["id"])
            if r.final != "acked":
                raise RuntimeError(f"mailbox_create refused: {r.extra}")
            ids.append(r.result)
        self.wait_settled(ids, 120)
        with self.db.read() as s:
            bad = s.execute(
                select(ChangeRequest.id, ChangeRequest.status, ChangeRequest.error).where(
                    ChangeRequest.id.in_(ids), ChangeRequest.status != "applied"
                )
            ).all()
        if bad:
            raise RuntimeError(f"mailboxes not made: {bad}")
        c.close()
        self.ledger.requests.clear()
        self.ledger.attempts.clear()

    def wait_settled(self, ids: list[str], timeout: float) -> list[str]:
        """Wait until every change of `ids` settled; returns those still unsettled."""
        deadline = time.monotonic() + timeout
        left = list(ids)
        while left and time.monotonic() < deadline:
            with self.db.read() as s:
                rows = dict(
                    s.execute(
                        select(ChangeRequest.id, ChangeRequest.status).where(
                            ChangeRequest.id.in_(left)
                        )
                    ).all()
                )
            left = [i for i in left if rows.get(i) in (None, "queued", "applying")]
            if left:
                time.sleep(0.5)
        return left

    # -- the load ----------------------------------------------------------------------------
    def start_load(self) -> None:
        with self.db.read() as s:
            newest = s.scalar(select(func.max(OutboxEvent.id))) or 0
        # The first agent (level 1, gets tickets assigned) watches; the others are on the phone.
        me = httpx.get(
            f"{self.gateway.url}/api/v1/me",
            timeout=10,
            headers={"Authorization": f"Bearer {self.agent_tokens[0]}"},
        ).json()
        watchers = [
            (self.admin_token, "admin", Listener(everything=True)),
            (self.agent_tokens[0], "agent", Listener(tier=me["tier"], agent_id=me["agent_id"])),
        ]
        for a in self.accounts[: self.load.streams]:
            watchers.append((a["token"], a["domain"], Listener(account_id=a["account_id"])))
        for token, label, listener in watchers:
            stream = Stream(self, token, label, listener, newest)
            self.streams.append(stream)
            stream.start()
        self._thread(self._probe_readiness, "readyz")
        for a in self.accounts:
            self._thread(lambda a=a: self._customer(a), f"customer-{a['domain']}")
        for i, token in enumerate(self.agent_tokens[1:]):
            self._thread(lambda t=token, i=i: self._phone_agent(t, i), f"agent-{i}")
        for i in range(self.load.mail_senders):
            self._thread(lambda i=i: self._mail_sender(i), f"mail-{i}")

    def _thread(self, target: Callable[[], None], name: str) -> None:
        t = threading.Thread(target=target, name=name, daemon=True)
        self.threads.append(t)
        t.start()

    def _pause(self, seconds: float) -> bool:
        """Sleep about `seconds` (jittered); False once the load is to stop."""
        return not self.stop_load.wait(seconds * random.uniform(0.7, 1.3))

    def _probe_readiness(self) -> None:
        with httpx.Client(timeout=2) as c:
            while not self.stop_load.is_set():
                try:
                    ok = c.get(f"{self.gateway.url}/readyz").status_code == 200
                except httpx.HTTPError:
                    ok = False
                self.readiness.append((time.monotonic(), ok))
                time.sleep(0.2)

    def _customer(self, a: dict[str, Any]) -> None:
        c = Client(self, a["token"], a["domain"])
        mine: list[str] = []
        opened = changes = 0
        next_change = time.monotonic() + random.uniform(0, self.load.change_every)
        while self._pause(self.load.pace):
            if time.monotonic() >= next_change:
                next_change = time.monotonic() + self.load.change_every
                changes += 1
                self._change(c, a, password=changes % 4 == 0)
            elif opened < self.load.portal_tickets_max and (not mine or random.random() < 0.3):
                opened += 1
                marker = secrets.token_hex(8)  # names the ticket in the SCDB
                c.perform(
                    "ticket",
                    "POST",
                    "/api/v1/tickets",
                    {"subject": f"chaos portal {marker}", "body": "the site is slow"},
                    lambda j: j["number"],
                    marker=marker,
                    account_id=a["account_id"],
                )
            elif mine:
                number = random.choice(mine)
                marker = secrets.token_hex(8)
                c.perform(
                    "reply",
                    "POST",
                    f"/api/v1/tickets/{number}/messages",
                    {"body": f"chaos reply {marker}"},
                    lambda j: j["number"],
                    marker=marker,
                    number=number,
                )
            mine = [r.result for r in self._mine(a)]
        c.close()

    def _mine(self, a: dict[str, Any]) -> list[Request]:
        return [
            r
            for r in self.ledger.acked("ticket")
            + self.ledger.acked("phone_ticket")
            + self.ledger.acked("mail")
            if r.extra.get("account_id") == a["account_id"] and r.result
        ]

    def _change(self, c: Client, a: dict[str, Any], *, password: bool) -> None:
        if password:
            pw = secrets.token_urlsafe(16)
            body = {
                "service_id": a["mailbox_id"],
                "kind": "mailbox_password",
                "params": {"password": pw},
            }
            c.perform(
                "change",
                "POST",
                "/api/v1/changes",
                body,
                lambda j: j["id"],
                account=a["domain"],
                change="mailbox_password",
                password=pw,
                mailbox=a["mailbox"],
                host=a["host"],
            )
            return
        name = f"c{secrets.token_hex(5)}"
        value = f"chaos-{secrets.token_hex(6)}"
        body = {
            "service_id": a["zone_id"],
            "kind": "dns_record_add",
            "params": {"record": {"name": name, "type": "TXT", "value": value}},
        }
        c.perform(
            "change",
            "POST",
            "/api/v1/changes",
            body,
            lambda j: j["id"],
            account=a["domain"],
            change="dns_record_add",
            name=name,
            value=value,
            zone=a["domain"],
            host=a["host"],
        )

    def _phone_agent(self, token: str, index: int) -> None:
        c = Client(self, token, f"agent-{index}")
        turn = 0
        while self._pause(self.load.pace * 2.2):  # under the per-token ticket limit (30/min)
            turn += 1
            a = random.choice(self.accounts)
            mine = self._mine(a)
            if turn % 2 == 0 and mine:
                marker = secrets.token_hex(8)
                c.perform(
                    "reply",
                    "POST",
                    f"/api/v1/tickets/{random.choice(mine).result}/messages",
                    {"body": f"chaos reply {marker}"},
                    lambda j: j["number"],
                    marker=marker,
                )
                continue
            marker = secrets.token_hex(8)
            body = {
                "subject": f"chaos phone {marker}",
                "body": "called about the site",
                "account_id": a["account_id"],
                "contact_id": a["contact_id"],
                "channel": "phone",
            }
            c.perform(
                "phone_ticket",
                "POST",
                "/api/v1/tickets",
                body,
                lambda j: j["number"],
                marker=marker,
                account_id=a["account_id"],
            )
        c.close()

    def _mail_sender(self, index: int) -> None:
        while self._pause(self.load.pace * 2):
            a = random.choice(self.accounts)
            send_mail(self, a["email"], secrets.token_hex(8), account_id=a["account_id"])

    # -- faults ------------------------------------------------------------------------------
    def actor_pids(self) -> dict[str, list[int]]:
        """The worker process of each of this run's actors, by class: the processes of this
        run's Ray head that Ray titles `ray::<class>`."""
        out: dict[str, list[int]] = defaultdict(list)
        for pid in self.ray.processes():
            cmd = command_line(pid)
            if cmd.startswith("ray::"):
                out[re.split(r"[.\s(]", cmd[5:])[0]].append(pid)
        return out

    def kill_actor(self, title: str) -> str:
        """kill -9 one actor process of the class; returns once Ray started it again."""
        before = self.actor_pids()
        if not before.get(title):
            raise RuntimeError(f"no {title} actor process found (saw {sorted(before)})")
        victim = random.choice(before[title])
        kill_pids([victim])
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            now = self.actor_pids().get(title, [])
            if victim not in now and len(now) >= len(before[title]):
                return f"pid {victim}"
            time.sleep(0.2)
        raise RuntimeError(f"Ray did not restart the {title} actor within 120 s")

    def catalogue(self, rep: int) -> dict[str, Fault]:
        """Every fault kind; `rep` picks the host a host fault strikes."""
        host = self.hosts.hosts[rep % len(self.hosts.hosts)]
        out: dict[str, Fault] = {}
        for label, title in ACTOR_KINDS.items():
            out[f"kill -9 {label}"] = Fault(
                f"kill -9 {label}", lambda t=title: self._note(self.kill_actor(t))
            )
        out["kill -9 gateway"] = Fault(
            "kill -9 gateway",
            self.gateway.kill,
            lambda: self._note(f"{self.gateway.start():.1f} s to start"),
            down_for=0.5,
        )
        out["Redis restart"] = Fault(
            "Redis restart", self.redis.kill, self.redis.start, 1.0, probe=True
        )
        # pg_ctl restart -m immediate, in two steps so that the doors are asked in between.
        out["PostgreSQL restart"] = Fault(
            "PostgreSQL restart", self.pg.stop_immediate, self.pg.start_again, 1.0, probe=True
        )
        for daemon in ("sshd", "named", "nginx"):
            out[f"{daemon} killed"] = Fault(
                f"{daemon} killed",
                lambda d=daemon: self.hosts.kill_restart(host, d),
                lambda d=daemon: self.hosts.restart(host, d),
                3.0,
            )
        out["host frozen (SIGSTOP)"] = Fault(
            "host frozen (SIGSTOP)",
            lambda: self.hosts.freeze(host),
            lambda: self.hosts.thaw(host),
            6.0,
        )
        return out

    def probe_down(self, kind: str) -> None:
        """While the component is down: a read, a write and a mail, one attempt each; what
        they were answered is kept (`down_probes`): 503 with Retry-After, 451, never a 500."""
        a = self.accounts[0]
        headers = {"Authorization": f"Bearer {a['token']}", "Idempotency-Key": str(uuid.uuid4())}
        for method, path, body in (
            ("GET", "/api/v1/tickets", None),
            ("POST", "/api/v1/tickets", {"subject": "chaos probe", "body": "down?"}),
        ):
            try:
                r = httpx.request(
                    method,
                    f"{self.gateway.url}{path}",
                    json=body,
                    headers=headers,
                    timeout=CLIENT_TIMEOUT,
                )
                answer = (r.status_code, r.headers.get("Retry-After"), r.text[:160])
            except httpx.HTTPError as exc:
                answer = (0, None, f"no answer: {exc!r}")
            self.down_probes.append((kind, f"{method} {path}", *answer))
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = a["email"], self.support_address, "chaos probe"
        msg["Message-ID"] = email.utils.make_msgid(domain=a["domain"])
        msg.set_content("down?\n")
        try:
            with smtplib.SMTP("127.0.0.1", self.gateway.smtp_port, timeout=CLIENT_TIMEOUT) as c:
                c.ehlo("mx.chaos.test")
                c.mail(a["email"])
                c.rcpt(self.support_address)
                code, text = c.data(msg.as_bytes())
            answer = (code, None, text.decode(errors="replace")[:160])
        except (OSError, smtplib.SMTPException) as exc:
            answer = (0, None, f"no answer: {exc!r}")
        self.down_probes.append((kind, "SMTP DATA", *answer))

    def _note(self, text: str) -> None:
        if self.faults:
            self.faults[-1].note = text

    def strike(self, fault: Fault, settle: float) -> FaultRun:
        fr = FaultRun(fault.kind, time.monotonic())
        fr_wall = time.time()
        self.faults.append(fr)
        self.ledger.fault = fault.kind
        fault.inject()
        if fault.probe:
            self.probe_down(fault.kind)
        if fault.down_for:
            time.sleep(fault.down_for)
        fault.restore()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            recent = [ok for t, ok in self.readiness[-3:] if t > fr.started]
            if len(recent) == 3 and all(recent):
                break
            time.sleep(0.1)
        time.sleep(settle)
        fr.ended = time.monotonic()
        self.ledger.fault = NONE
        samples = [(t, ok) for t, ok in self.readiness if fr.started <= t <= fr.ended]
        down = [t for t, ok in samples if not ok]
        if down:
            back = [t for t, ok in samples if ok and t > down[-1]]
            fr.ready_after = (back[0] if back else fr.ended) - fr.started
        self.walls[fault.kind].append((fr_wall, fr_wall + (fr.ended - fr.started)))
        self.out(f"  {fault.kind:28} ready again after {fr.ready_after:5.1f} s  {fr.note}")
        return fr

    def run_schedule(self, kinds: list[str], repeats: int, *, settle: float, gap: float) -> None:
        self.walls: dict[str, list[tuple[float, float]]] = defaultdict(list)
        for rep in range(repeats):
            catalogue = self.catalogue(rep)
            order = list(kinds)
            random.Random(rep).shuffle(order)
            for kind in order:
                self.strike(catalogue[kind], settle)
                time.sleep(gap)

    # -- after the schedule --------------------------------------------------------------------
    def stop(self) -> float:
        """Stop the load (each client finishes its request in flight) and let everything
        settle; returns the seconds it took."""
        t0 = time.monotonic()
        self.stop_load.set()
        for t in self.threads:
            t.join(REQUEST_DEADLINE + 10)
        ids = [r.result for r in self.ledger.acked("change")]
        self.unsettled = self.wait_settled(ids, 180)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with self.db.read() as s:
                left = s.scalar(
                    select(func.count())
                    .select_from(OutboxEvent)
                    .where((OutboxEvent.published_at.is_(None)) | (OutboxEvent.mailed_at.is_(None)))
                )
                queued = s.scalar(
                    select(func.count())
                    .select_from(MailDelivery)
                    .where(MailDelivery.status == "queued")
                )
            if not left and not queued:
                break
            time.sleep(0.5)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(self._missing(st) for st in self.streams):
            time.sleep(0.5)
        for st in self.streams:
            st.stopping.set()
        return time.monotonic() - t0

    def _expected(self, st: Stream) -> list[int]:
        with self.db.read() as s:
            rows = OutboxRepository(s).heard_after(st.listener, st.start_id, limit=10**7)
            return [r.id for r in rows]

    def _missing(self, st: Stream) -> set[int]:
        return set(self._expected(st)) - set(st.received)

    def teardown(self) -> None:
        self.stop_load.set()
        for st in self.streams:
            st.stopping.set()
        for step in ("gateway", "ray", "hosts", "redis", "pg"):
            thing = getattr(self, step, None)
            if thing is not None:
                try:
                    thing.stop()
                except Exception as exc:
                    self.out(f"  stopping {step}: {exc}")
        db = getattr(self, "db", None)
        if db is not None:
            db.dispose()

    # -- the proof ---------------------------------------------------------------------------
    def fault_of_wall(self, when: float) -> str:
        for kind, windows in self.walls.items():
            if any(a <= when <= b for a, b in windows):
                return kind
        return NONE

    def verify(self) -> Report:
        rep = Report()
        with self.db.read() as s:
            subjects = Counter(
                s.scalars(select(Ticket.subject).where(Ticket.subject.like("chaos %")))
            )
            number_of = {
                subj: f"TT-{tid:06d}"
                for tid, subj in s.execute(
                    select(Ticket.id, Ticket.subject).where(Ticket.subject.like("chaos %"))
                )
            }
            bodies = Counter(
                s.scalars(select(Message.body).where(Message.body.like("chaos reply %")))
            )
            inbound = Counter(mid(m) for m in s.scalars(select(InboundMail.message_id)))
            changes = {c.id: c for c in s.scalars(select(ChangeRequest))}
        for r in self.ledger.requests:
            marker = r.extra.get("marker")
            if r.kind in ("ticket", "phone_ticket", "mail"):
                prefix = {"ticket": "portal", "phone_ticket": "phone", "mail": "mail"}[r.kind]
                subject = f"chaos {prefix} {marker}"
                n = subjects[subject]
                if r.kind == "mail":
                    n_in = inbound[mid(r.extra["message_id"])]
                    if r.final == "acked" and n_in != 1:
                        rep.bad(
                            r.fault,
                            "lost" if n_in == 0 else "doubled",
                            f"mail {r.extra['message_id']} kept {n_in} times",
                        )
                if r.final == "acked" and n == 0:
                    rep.bad(r.fault, "lost", f"{r.kind} {r.result} ({subject}) not in the SCDB")
                elif n > 1:
                    rep.bad(r.fault, "doubled", f"{r.kind} {subject}: {n} tickets")
                elif r.final == "acked" and r.result and number_of.get(subject) != r.result:
                    rep.bad(
                        r.fault,
                        "lost",
                        f"{subject}: answered {r.result}, stored {number_of.get(subject)}",
                    )
            elif r.kind == "reply":
                n = bodies[f"chaos reply {marker}"]
                if r.final == "acked" and n == 0:
                    rep.bad(r.fault, "lost", f"reply {marker} not in the SCDB")
                elif n > 1:
                    rep.bad(r.fault, "doubled", f"reply {marker}: {n} messages")
            elif r.kind == "change" and r.final == "acked":
                c = changes.get(r.result)
                if c is None:
                    rep.bad(r.fault, "lost", f"change {r.result} not in the SCDB")
                elif c.status in ("queued", "applying"):
                    rep.bad(r.fault, "lost", f"change {r.result} never settled ({c.status})")
                else:
                    rep.settled[(r.fault, c.status)] += 1
        self._verify_changes(rep, changes)
        self._verify_mail(rep)
        self._verify_streams(rep)
        return rep

    def _verify_changes(self, rep: Report, changes: dict[str, ChangeRequest]) -> None:
        """Each change applied once on its host: the journal and the real service agree."""
        names = Counter(
            c.params.get("record", {}).get("name")
            for c in changes.values()
            if c.kind == "dns_record_add"
        )
        zones: dict[str, list[tuple[str, str]]] = {}
        newest_password: dict[str, tuple[Any, str, Request]] = {}
        for r in self.ledger.requests:
            if r.kind != "change":
                continue
            x = r.extra
            if x["change"] == "dns_record_add" and names[x["name"]] > 1:
                rep.bad(r.fault, "doubled", f"DNS record {x['name']}: {names[x['name']]} changes")
            c = changes.get(r.result) if r.result else None
            if c is None or c.status in ("queued", "applying"):
                continue
            host = self.hosts.by_name(x["host"])
            entry = host.root / ".gdcas" / "journal" / c.id
            journaled = entry.exists() and entry.read_text().startswith("applied")
            if (c.status == "applied") != journaled:
                rep.bad(
                    r.fault,
                    "lost",
                    f"change {c.id} is {c.status} in the SCDB, journal: "
                    f"{entry.read_text().strip() if entry.exists() else 'none'}",
                )
            if x["change"] == "dns_record_add":
                if x["zone"] not in zones:
                    zones[x["zone"]] = self._zone_txt(host, x["zone"])
                served = zones[x["zone"]].count((x["name"], x["value"]))
                want = 1 if c.status == "applied" else 0
                if served != want:
                    rep.bad(
                        r.fault,
                        "lost" if served < want else "doubled",
                        f"{x['name']}.{x['zone']} served {served} times, change {c.status}",
                    )
            elif c.status == "applied":
                seen = newest_password.get(x["mailbox"])
                if seen is None or c.applied_at > seen[0]:
                    newest_password[x["mailbox"]] = (c.applied_at, x["password"], r)
        for mailbox, (_, password, r) in newest_password.items():
            host = self.hosts.by_name(r.extra["host"])
            port = host.layout().imap_port
            try:
                with imaplib.IMAP4("127.0.0.1", port or 0, timeout=10) as imap:
                    imap.login(mailbox, password)
            except (imaplib.IMAP4.error, OSError) as exc:
                rep.bad(r.fault, "lost", f"{mailbox}: the newest applied password fails ({exc})")

    @staticmethod
    def _zone_txt(host: Any, zone: str) -> list[tuple[str, str]]:
        """The TXT records named serves for the zone (a zone transfer, as GDCAS verifies)."""
        port = host.named.port
        z = dns.zone.from_xfr(dns.query.xfr("127.0.0.1", zone, port=port, timeout=10))
        out = []
        for name, rdataset in z.iterate_rdatasets(dns.rdatatype.TXT):
            for rdata in rdataset:
                out.append((str(name), b"".join(rdata.strings).decode()))
        return out

    def _verify_mail(self, rep: Report) -> None:
        """Every outbox row published and its mails planned once; each mail sent is in the
        sink once (by Message-ID); each acknowledged ticket's 'created' mail planned once."""
        in_sink: Counter[tuple[str, str]] = Counter()
        parser = BytesHeaderParser()
        for path in self.sink.glob("*.eml"):
            with path.open("rb") as f:
                h = parser.parse(f)
            for to in email.utils.getaddresses(h.get_all("To", [])):
                in_sink[(mid(h["Message-ID"]), to[1].lower())] += 1
        with self.db.read() as s:
            unpublished = s.scalar(
                select(func.count())
                .select_from(OutboxEvent)
                .where(OutboxEvent.published_at.is_(None))
            )
            unmailed = s.scalar(
                select(func.count()).select_from(OutboxEvent).where(OutboxEvent.mailed_at.is_(None))
            )
            deliveries = list(
                s.execute(
                    select(
                        MailDelivery.id,
                        MailDelivery.outbox_event_id,
                        MailDelivery.ticket_id,
                        MailDelivery.recipient,
                        MailDelivery.message_id,
                        MailDelivery.status,
                        MailDelivery.kind,
                        MailDelivery.created_at,
                    )
                )
            )
            created = {
                int(e.payload.get("ticket_id") or 0): e.id
                for e in s.scalars(select(OutboxEvent).where(OutboxEvent.topic == "ticket.created"))
            }
            tickets = dict(
                s.execute(
                    select(Ticket.subject, Ticket.id).where(Ticket.subject.like("chaos %"))
                ).all()
            )
        if unpublished:
            rep.bad(NONE, "lost", f"{unpublished} outbox rows never published")
        if unmailed:
            rep.bad(NONE, "lost", f"{unmailed} outbox rows never planned for mail")
        per_event: Counter[tuple[int | None, str]] = Counter()
        for d in deliveries:
            per_event[(d.outbox_event_id, d.recipient)] += 1
            fault = (
                self.fault_of_wall(
                    d.created_at.replace(tzinfo=__import__("datetime").UTC).timestamp()
                )
                if d.created_at
                else NONE
            )
            if d.status == "queued" or d.status == "failed":
                rep.bad(fault, "lost", f"mail {d.id} to {d.recipient} {d.status}")
            if d.status == "sent":
                n = in_sink[(mid(d.message_id), d.recipient.lower())]
                if n != 1:
                    rep.bad(
                        fault,
                        "lost" if n == 0 else "doubled",
                        f"mail {d.id} {d.message_id} in the sink {n} times",
                    )
            rep.mails[d.status] += 1
        for (event, to), n in per_event.items():
            if event is not None and n > 1:
                rep.bad(NONE, "doubled", f"outbox event {event}: {n} mails to {to}")
        by_event = Counter(d.outbox_event_id for d in deliveries)
        for r in self.ledger.requests:
            if r.final != "acked" or r.kind not in ("ticket", "phone_ticket", "mail"):
                continue
            prefix = {"ticket": "portal", "phone_ticket": "phone", "mail": "mail"}[r.kind]
            tid = tickets.get(f"chaos {prefix} {r.extra['marker']}")
            event = created.get(tid or -1)
            if event is None:
                rep.bad(r.fault, "lost", f"{r.result}: no ticket.created event")
            elif by_event[event] != 1:
                rep.bad(
                    r.fault,
                    "lost" if by_event[event] == 0 else "doubled",
                    f"{r.result}: {by_event[event]} 'created' mails",
                )

    def _verify_streams(self, rep: Report) -> None:
        """Each stream saw every event its audience may see after it started, in order."""
        with self.db.read() as s:
            created = dict(s.execute(select(OutboxEvent.id, OutboxEvent.created_at)).all())
        for st in self.streams:
            expected = self._expected(st)
            got = set(st.received)
            first: list[int] = []
            seen: set[int] = set()
            for i in st.received:
                if i not in seen:
                    seen.add(i)
                    first.append(i)
            for i in sorted(set(expected) - got):
                when = created.get(i)
                fault = (
                    self.fault_of_wall(when.replace(tzinfo=__import__("datetime").UTC).timestamp())
                    if when
                    else NONE
                )
                rep.bad(fault, "gaps", f"stream {st.label}: event {i} never received")
            late = [b for a, b in itertools.pairwise(first) if b < a]
            for i in late:
                when = created.get(i)
                fault = (
                    self.fault_of_wall(when.replace(tzinfo=__import__("datetime").UTC).timestamp())
                    if when
                    else NONE
                )
                rep.bad(fault, "out of order", f"stream {st.label}: event {i} after a newer one")
            for ev in st.resets:
                rep.bad(NONE, "gaps", f"stream {st.label}: reset {ev}")
            rep.streams.append((st.label, len(expected), len(first), st.reconnects))


@dataclass
class Report:
    problems: list[tuple[str, str, str]] = field(default_factory=list)  # fault, what, detail
    settled: Counter[tuple[str, str]] = field(default_factory=Counter)
    mails: Counter[str] = field(default_factory=Counter)
    streams: list[tuple[str, int, int, int]] = field(default_factory=list)

    def bad(self, fault: str, what: str, detail: str) -> None:
        self.problems.append((fault, what, detail))

    def count(self, fault: str | None, what: str) -> int:
        return sum(1 for f, w, _ in self.problems if w == what and (fault is None or f == fault))


# -- the table -------------------------------------------------------------------------------
COLUMNS = (
    "fault",
    "times",
    "acknowledged",
    "refused",
    "unknown",
    "5xx/hang",
    "lost",
    "doubled",
    "gaps",
    "out of order",
    "ready again (max s)",
    "longest wait (s)",
)


def ledger_rows(run: ChaosRun, rep: Report) -> list[list[str]]:
    kinds = [NONE, *list(dict.fromkeys(f.kind for f in run.faults))]
    rows = []
    for kind in kinds:
        struck = [f for f in run.faults if f.kind == kind]
        waits = [
            r.acked_at - r.started
            for r in run.ledger.requests
            if r.fault == kind and r.acked_at is not None
        ]
        att = run.ledger.attempts
        rows.append(
            [
                kind,
                str(len(struck)) if struck else "-",
                str(att[(kind, "ack")]),
                str(att[(kind, "refused")]),
                str(att[(kind, "unknown")]),
                str(att[(kind, "error")]),
                str(rep.count(kind, "lost")),
                str(rep.count(kind, "doubled")),
                str(rep.count(kind, "gaps")),
                str(rep.count(kind, "out of order")),
                f"{max(f.ready_after for f in struck):.1f}" if struck else "-",
                f"{max(waits):.1f}" if waits else "-",
            ]
        )
    return rows


def markdown_table(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(COLUMNS) + " |", "| " + " | ".join("---" for _ in COLUMNS) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def machine_cpu() -> float:
    """CPU seconds the whole machine has been busy (all processes, every core)."""
    fields = [float(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
    idle = fields[3] + fields[4]
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def summary(run: ChaosRun, rep: Report) -> str:
    kinds = Counter(r.kind for r in run.ledger.requests)
    finals = Counter(r.final for r in run.ledger.requests)
    statuses: Counter[str] = Counter()
    for (_, st), n in rep.settled.items():
        statuses[st] += n
    lines = [
        "requests: "
        + ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
        + " ("
        + ", ".join(f"{n} {k}" for k, n in sorted(finals.items()))
        + ")",
        "changes settled: "
        + ", ".join(f"{n} {st}" for st, n in sorted(statuses.items()))
        + "".join(
            f"; {st} in '{fault}': {n}"
            for (fault, st), n in sorted(rep.settled.items())
            if st != "applied"
        ),
        "mails: " + ", ".join(f"{n} {s}" for s, n in sorted(rep.mails.items())),
        "streams (events expected / received, reconnects): "
        + ", ".join(f"{label} {exp}/{got} ({rc})" for label, exp, got, rc in rep.streams),
    ]
    for fault, what, code, retry_after, text in run.down_probes:
        after = f", Retry-After {retry_after}" if retry_after else ""
        lines.append(f"while down ({fault}): {what} -> {code}{after}: {text[:90]}")
    if run.ledger.errors:
        lines.append(f"5xx or hangs ({len(run.ledger.errors)}), first: {run.ledger.errors[:5]}")
    for fault, what, detail in rep.problems[:30]:
        lines.append(f"  {what} [{fault}]: {detail}")
    return "\n".join(lines)


ALL_FAULTS = [f"kill -9 {k}" for k in ACTOR_KINDS] + [
    "kill -9 gateway",
    "Redis restart",
    "PostgreSQL restart",
    "sshd killed",
    "named killed",
    "nginx killed",
    "host frozen (SIGSTOP)",
]


@dataclass
class Outcome:
    run: ChaosRun
    report: Report
    rows: list[list[str]]
    text: str
    wall: float
    cpu_machine: float
    cpu_bench: float


def run_chaos(
    base: Path,
    load: Load,
    kinds: list[str],
    *,
    repeats: int = 1,
    settle: float = 2.0,
    gap: float = 1.0,
    warmup: float = 3.0,
    out: Callable[[str], None] = print,
) -> Outcome:
    """Set up the platform, run the load through the fault schedule, prove the ledger."""
    import resource

    def own_cpu() -> float:
        ru = [resource.getrusage(w) for w in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
        return sum(r.ru_utime + r.ru_stime for r in ru)

    wall0, cpu0, mine0 = time.monotonic(), machine_cpu(), own_cpu()
    run = ChaosRun(base, load, out=out)
    try:
        run.setup()
        for what, seconds in run.timings:
            out(f"  set-up: {what}: {seconds:.1f} s")
        run.start_load()
        time.sleep(warmup)
        out(f"fault schedule: {len(kinds)} kinds x {repeats}")
        t_sched = time.monotonic()
        run.run_schedule(kinds, repeats, settle=settle, gap=gap)
        out(f"schedule done in {time.monotonic() - t_sched:.1f} s; stopping the load")
        quiet = run.stop()
        out(f"load stopped and settled in {quiet:.1f} s")
        report = run.verify()
        rows = ledger_rows(run, report)
        wall, cpu, mine = time.monotonic() - wall0, machine_cpu() - cpu0, own_cpu() - mine0
        text = markdown_table(rows) + "\n\n" + summary(run, report)
        text += (
            f"\n\nwall {wall:.0f} s; CPU: the machine {cpu:.0f} s ({cpu / wall:.2f} cores "
            f"busy of {os.cpu_count()}), the bench process {mine:.0f} s"
        )
        return Outcome(run, report, rows, text, wall, cpu, mine)
    finally:
        run.teardown()
