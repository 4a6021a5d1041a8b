"""The demo company's history, told once through the running desk on the first `sitedesk up`.

`load_demo` makes the company (accounts, agents, hosts) without a running desk; this makes its
past: customers open tickets and answer, agents take, reply, note, escalate, hand over and
resolve, changes run on the demo hosts (one of them fails and opens a ticket for support),
all as the demo's own people through the actors, so events, timelines, outbox, mail and SLA
timers are the real ones. Only time is not: what must have happened days or minutes ago is
moved there afterwards, in one place (`backdate_history`), and the SLA clock is told.

Once per database: an audit entry records that the story was told, and every step carries an
idempotency key, so a start that was stopped half-way finishes the story on the next start
(within the idempotency retention, 24 h by default) without doing a step twice.
"""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import smtplib
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import timedelta
from email.message import EmailMessage
from typing import Any

from actors.changes.dto import NewChange
from actors.directory import Directory
from actors.principal import Principal
from actors.tickets.commands import (
    Close,
    Escalate,
    Handover,
    LogCall,
    Reply,
    Resolve,
    Take,
    TicketCommand,
)
from actors.tickets.dto import NewTicket
from cluster.calls import call
from gateway.auth import principal_of
from store.db import Database
from store.demo import AGENTS, CUSTOMERS, DEMO_MARKER_CODE
from store.models.base import utcnow
from store.models.enums import Channel, Priority, Visibility
from store.models.ticket import ticket_id_from_number, ticket_number
from store.read.changes import PENDING
from store.repositories import (
    AccountRepository,
    AuditRepository,
    ChangeRepository,
    MessageRepository,
    TicketRepository,
    UserRepository,
)
from store.repositories.backdate import BackdateRepository

STORY_MARK = ("demo", "history")  # the audit entry's object: the story was told
KEY = "demo-story"
SETTLE_SECONDS = 30.0  # how long a change on a demo host may take before the story goes on
# Where each demo agent is when the story ends: level 1 at work (Alice's desk full, so the
# DNS and billing requests only she handles wait in the queue), levels 2 and 3 away, so the
# escalated tickets wait in theirs until a newcomer logs in as one of them and goes online.
PRESENCE = {"alice": "online", "bob": "online", "carol": "away", "dan": "offline",
            "erin": "away"}  # fmt: skip
OUTLOOK_MAIL_ID = "demo-story-outlook@acme-bakery.test"
GOOGLE_TXT = "google-site-verification=bluefern-demo-2f9"


@dataclass
class Told:
    """What the story made, for the one line `sitedesk up` prints and for the tests."""

    tickets: dict[str, int]  # slug -> ticket id
    statuses: Counter[str]
    tiers: Counter[int]
    changes: Counter[str]  # status -> how many of the story's changes
    failure_ticket: str | None
    internal_notes: int

    def line(self) -> str:
        states = ", ".join(f"{n} {s}" for s, n in sorted(self.statuses.items()))
        tiers = ", ".join(f"{n} at level {t}" for t, n in sorted(self.tiers.items()))
        changes = ", ".join(f"{n} {s}" for s, n in sorted(self.changes.items())) or "none"
        failed = f" (ticket {self.failure_ticket})" if self.failure_ticket else ""
        return (
            f"{len(self.tickets)} tickets ({states}; {tiers}), {self.internal_notes} internal "
            f"notes, changes on the demo hosts: {changes}{failed}"
        )


def story_told(db: Database) -> bool:
    with db.read() as s:
        return bool(AuditRepository(s).for_object(*STORY_MARK))


def tell_demo_story(
    db: Database, directory: Directory, *, smtp: tuple[str, int], mail_to: str
) -> Told | None:
    """Give the demo company its history through the running desk, once per database (None
    when it was told before, or when the demo company is not loaded). `smtp` is the desk's
    SMTP intake and `mail_to` one of its support addresses: one request comes in by mail."""
    if story_told(db):
        return None
    with db.read() as s:
        if AccountRepository(s).by_code(DEMO_MARKER_CODE) is None:
            return None
    return asyncio.run(DemoStory(db, directory, smtp, mail_to).tell())


@dataclass
class _Ticket:
    slug: str
    id: int
    account_id: int
    steps: int = 0

    @property
    def number(self) -> str:
        return ticket_number(self.id)


@dataclass
class _Window:
    """Where a ticket's recorded past is moved: from `started` to `ended` before now."""

    started: timedelta
    ended: timedelta
    changes: list[str] = field(default_factory=list)


def _digest(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


class DemoStory:
    """The story itself. `tell()` tells it whether or not it was told before: every step
    replays from its idempotency key, so telling it again finishes a story stopped half-way
    and adds nothing to one that was told (`tell_demo_story` tells it once)."""

    def __init__(
        self, db: Database, directory: Directory, smtp: tuple[str, int], mail_to: str
    ) -> None:
        self.db = db
        self.directory = directory
        self.smtp = smtp
        self.mail_to = mail_to
        self.made: dict[str, _Ticket] = {}
        self.windows: dict[str, _Window] = {}
        self.change_ids: list[str] = []
        with db.read() as s:
            users = UserRepository(s)
            self.people: dict[str, Principal] = {}
            for email, *_ in AGENTS:
                self.people[email.split("@")[0]] = principal_of(s, _user(users, email))
            for _code, _company, _unix, person, email, *_rest in CUSTOMERS:
                who = principal_of(s, _user(users, email))
                self.people[person.split()[0].lower()] = who.model_copy(
                    update={"via": Channel.portal}
                )
            accounts = AccountRepository(s)
            self.contacts = {  # account id -> its primary contact
                a.id: next(c.id for c in accounts.contacts(a.id) if c.is_primary)
                for code, *_ in CUSTOMERS
                if (a := accounts.by_code(code)) is not None
            }
            self.services = {
                (sv.kind, sv.name): (sv.id, sv.host_id is not None)
                for code, *_ in CUSTOMERS
                if (a := accounts.by_code(code)) is not None
                for sv in accounts.services(a.id)
            }

    # -- the steps, as the desk's own people take them -------------------------------------
    async def open(
        self,
        slug: str,
        who: str,
        subject: str,
        body: str,
        *,
        account: str | None = None,
        channel: Channel = Channel.portal,
        category: str | None = None,
        priority: Priority | None = None,
    ) -> _Ticket:
        """A ticket opened by a customer in the portal, or by an agent for `account` (a
        customer's first name) on the phone."""
        by = self.people[who]
        account_id = by.account_id if account is None else self.people[account].account_id
        assert account_id is not None
        item = NewTicket(
            account_id=account_id, subject=subject, body=body, channel=channel,
            priority=priority, category=category, contact_id=self.contacts[account_id],
            requester=by,
            idempotency_key=f"{KEY}:{slug}", request_hash=_digest(f"{slug}:{subject}:{body}"),
        )  # fmt: skip
        read = await call(self.directory.intake().create, item)
        return self._made(slug, read.number, account_id)

    def _made(self, slug: str, number: str, account_id: int) -> _Ticket:
        ticket_id = ticket_id_from_number(number)
        assert ticket_id is not None
        t = self.made[slug] = _Ticket(slug, ticket_id, account_id)
        return t

    async def step(self, t: _Ticket, who: str, command: TicketCommand) -> Any:
        t.steps += 1
        key = f"{KEY}:{t.slug}:{t.steps}"
        lane = self.directory.sessions_for(t.account_id)
        digest = _digest(command.model_dump_json())
        outcome = await call(
            lane.operate, t.account_id, t.id, command, self.people[who], key, digest
        )
        return outcome.ticket

    async def take(self, t: _Ticket, who: str) -> None:
        await self.step(t, who, Take())

    async def reply(
        self, t: _Ticket, who: str, body: str, *, waits: bool = False, by_mail: bool = False
    ) -> None:
        """A public reply; staff's may wait on the customer's answer, or go out by mail."""
        channel = Channel.email if by_mail else None
        await self.step(t, who, Reply(body=body, pending_customer=waits, channel=channel))

    async def note(self, t: _Ticket, who: str, body: str) -> None:
        await self.step(t, who, Reply(body=body, visibility=Visibility.internal))

    async def escalate(self, t: _Ticket, who: str, reason: str) -> None:
        await self.step(t, who, Escalate(reason=reason))

    async def handover(self, t: _Ticket, who: str, to: str) -> None:
        agent_id = self.people[to].agent_id
        assert agent_id is not None
        await self.step(t, who, Handover(agent_id=agent_id))

    async def resolve(self, t: _Ticket, who: str, note: str | None = None) -> None:
        await self.step(t, who, Resolve(note=note))

    async def log_call(self, t: _Ticket, who: str, caller: str, seconds: int, notes: str) -> None:
        number = next(c[5] for c in CUSTOMERS if c[3].split()[0].lower() == caller)
        call_log = LogCall(caller_number=number, duration_seconds=seconds, notes=notes)
        await self.step(t, who, call_log)

    async def change(
        self,
        slug: str,
        who: str,
        service: tuple[str, str],
        kind: str,
        params: dict[str, Any],
        *,
        ticket: _Ticket | None = None,
    ) -> str | None:
        """Request a change through the account's lane and wait until the demo host settled
        it; returns its id (None without demo hosts: the service is on no host)."""
        service_id, hosted = self.services[service]
        if not hosted:
            return None
        by = self.people[who]
        with self.db.read() as s:
            sv = AccountRepository(s).service(service_id)
            assert sv is not None
            account_id = sv.account_id
        new = NewChange(
            service_id=service_id, kind=kind, params=params, account_id=account_id,
            ticket=ticket.number if ticket else None,
        )  # fmt: skip
        key = f"{KEY}:change:{slug}"
        lane = self.directory.sessions_for(account_id)
        # The digest names the request, not its secrets (a password is drawn anew per start).
        detail = await call(lane.request_change, account_id, by, new, key, _digest(key))
        self.change_ids.append(detail.id)
        await self.settled(detail.id)
        return str(detail.id)

    async def settled(self, change_id: str) -> str:
        """The change's status once its host's executor recorded the outcome."""
        deadline = time.monotonic() + SETTLE_SECONDS
        while True:
            with self.db.read() as s:
                row = ChangeRepository(s).find(change_id)
                status = row.status if row is not None else "missing"
            if status not in PENDING or time.monotonic() > deadline:
                return status
            await asyncio.sleep(0.05)

    async def mailbox_ready(self, address: str) -> bool:
        """Whether the demo's mailbox `address` exists on its host (`sitedesk up` requests the
        demo mailboxes before the story; wait for that one to be applied)."""
        service_id, hosted = self.services[("mailbox", address)]
        if not hosted:
            return False
        with self.db.read() as s:
            sv = AccountRepository(s).service(service_id)
            assert sv is not None
            creates = [
                c.id
                for c in ChangeRepository(s).recent_for_account(sv.account_id, limit=100)
                if c.kind == "mailbox_create" and c.service_id == service_id
            ]
        for change_id in creates:
            if await self.settled(change_id) == "applied":
                return True
        return False

    async def mail(self, slug: str, sender: str, subject: str, body: str) -> _Ticket:
        """A request sent to the desk's SMTP intake, as the customer's mail server would."""
        msg = EmailMessage()
        msg["From"], msg["To"], msg["Subject"] = sender, self.mail_to, subject
        msg["Message-ID"] = f"<{OUTLOOK_MAIL_ID}>"
        msg.set_content(body)

        def send() -> None:
            with smtplib.SMTP(*self.smtp, timeout=60) as smtp:
                refused = smtp.send_message(msg)
                assert not refused, refused

        await asyncio.to_thread(send)  # a second send is the same message: one ticket
        with self.db.read() as s:
            message = MessageRepository(s).message_by_email_id(OUTLOOK_MAIL_ID)
            assert message is not None, "the SMTP intake answered 250 without a ticket"
            ticket = TicketRepository(s).get(message.ticket_id)
            return self._made(slug, ticket.number, ticket.account_id)

    def aged(self, t: _Ticket, started: timedelta, ended: timedelta, *changes: str | None) -> None:
        """This ticket's past is moved to between `started` and `ended` ago, at the end."""
        self.windows[t.slug] = _Window(started, ended, [c for c in changes if c])

    async def presence(self, who: str, presence: str) -> None:
        by = self.people[who]
        assert by.tier is not None
        await call(self.directory.pool(by.tier).set_presence, by.agent_id, presence)

    # -- the story ---------------------------------------------------------------------------
    async def tell(self) -> Told:
        # The story's agents take their tickets themselves: while it is told nobody is online,
        # so no tier pool hands them out meanwhile. They step away in the reverse order of
        # coming back (Bob before Alice): never is Bob the only one online at level 1, who
        # would get the DNS and billing work that waits for Alice.
        for who in reversed(PRESENCE):
            await self.presence(who, "away")
        chapters: list[Callable[[], Awaitable[None]]] = [
            # Oldest first: ticket numbers and the accounts' timelines follow the story's time.
            self.outlook_by_mail, self.database_restore, self.password_reset,
            self.bouncing_mail_call, self.site_down, self.zone_unreachable,
            self.shop_subdomain, self.google_txt, self.invoice_twice, self.point_www,
            self.webmail_password, self.ftp_call, self.wordpress_database, self.certificate,
            self.slow_database, self.unknown_php_files, self.billing_address,
        ]  # fmt: skip
        for chapter in chapters:
            await chapter()
        backdate_history(self.db, self.made, self.windows)
        aged = [self.made[slug].id for slug in self.windows]
        await call(self.directory.sla().track, aged)
        await self.sla_caught_up()
        for tier in (1, 2, 3):  # the pools see every owner's load before anyone is online
            await call(self.directory.pool(tier).resync)
        for who, presence in PRESENCE.items():  # Alice first: see PRESENCE
            await self.presence(who, presence)
        return self.finish()

    async def sla_caught_up(self) -> None:
        """Wait (a few seconds at most) until the SLA clock acted on the moved tickets: the
        breached one escalated, the long-resolved one closed, the warning given."""
        deadline = time.monotonic() + 15
        site, outlook, bounce = (self.made[s].id for s in ("site_down", "outlook", "bounce"))
        while time.monotonic() < deadline:
            with self.db.read() as s:
                tickets = TicketRepository(s)
                if (
                    tickets.get(site).tier == 2
                    and tickets.get(outlook).status == "closed"
                    and tickets.get(bounce).sla_warned_at is not None
                ):
                    return
            await asyncio.sleep(0.05)

    def finish(self) -> Told:
        with self.db.write() as s:
            tickets = TicketRepository(s)
            ids = {slug: t.id for slug, t in self.made.items()}
            failure = None
            for change_id in self.change_ids:
                row = ChangeRepository(s).find(change_id)
                if row is not None and row.status == "failed" and row.ticket_id is not None:
                    failure = row.ticket_id
                    ids["failed_change"] = failure
            rows = [tickets.get(i) for i in ids.values()]
            changes = Counter(
                row.status
                for c in self.change_ids
                if (row := ChangeRepository(s).find(c)) is not None
            )
            notes = sum(
                1
                for i in ids.values()
                for m in MessageRepository(s).messages(i, include_internal=True)
                if m.visibility == Visibility.internal
            )
            told = Told(
                tickets=ids,
                statuses=Counter(r.status for r in rows),
                tiers=Counter(r.tier for r in rows),
                changes=changes,
                failure_ticket=ticket_number(failure) if failure else None,
                internal_notes=notes,
            )
            if not AuditRepository(s).for_object(*STORY_MARK):
                AuditRepository(s).record(
                    actor_label="sitedesk up", action="demo_history_told",
                    object_type=STORY_MARK[0], object_id=STORY_MARK[1],
                    data={"tickets": ids, "changes": self.change_ids},
                )  # fmt: skip
        return told

    # -- the chapters: one request each, oldest first ---------------------------------------
    # fmt: off
    async def outlook_by_mail(self) -> None:
        """Five days ago Ada asked by mail how to read info@ in Outlook; Alice answered and
        resolved it; it stayed quiet, so the SLA clock closes it now."""
        t = await self.mail("outlook", "Ada Baker <ada@acme-bakery.test>",
                            "Setting up info@acme-bakery.test in Outlook",
                            "Hello,\n\nwhich server settings do I enter in Outlook for "
                            "info@acme-bakery.test?\n\nAda")
        await self.take(t, "alice")
        await self.reply(t, "alice", "Hello Ada,\n\nincoming: IMAP, mail.acme-bakery.test, "
                         "port 993, SSL/TLS. Outgoing: SMTP, port 587, STARTTLS. The user "
                         "name is the full address.\n\nAlice")
        await self.resolve(t, "alice")
        self.aged(t, timedelta(days=5, hours=2), timedelta(days=5))

    async def database_restore(self) -> None:
        """Two days ago Ben needed last night's database back: level 1 escalated, Carol
        restored it and resolved, Ben closed the ticket himself."""
        t = await self.open("restore", "ben", "Please restore last night's backup of our "
                            "database", "A plugin update broke our shop's data. Could you "
                            "restore bluefern_db as it was last night?")
        await self.take(t, "bob")
        await self.note(t, "bob", "Database restores are done by level 2.")
        await self.escalate(t, "bob", "restore of bluefern_db needs level 2")
        await self.take(t, "carol")
        await self.reply(t, "carol", "Restored bluefern_db from last night's backup (02:00). "
                         "Orders placed after 02:00 need entering again, sorry.")
        await self.resolve(t, "carol")
        await self.step(t, "ben", Close())
        self.aged(t, timedelta(days=2, hours=5), timedelta(days=2))

    async def password_reset(self) -> None:
        """This morning Ada asked how to change a mailbox password, changed it herself in
        SiteControl (a change applied on the demo host), confirmed, and Alice resolved."""
        t = await self.open("password", "ada", "How do I change the password of "
                            "info@acme-bakery.test?", "Our trainee left; we want a new "
                            "password on info@acme-bakery.test.")
        await self.take(t, "alice")
        await self.reply(t, "alice", "You can set it yourself: SiteControl, Services, "
                         "info@acme-bakery.test, Change password. It works at once.",
                         waits=True)
        change = None
        if await self.mailbox_ready("info@acme-bakery.test"):
            change = await self.change("password", "ada", ("mailbox", "info@acme-bakery.test"),
                                       "mailbox_password",
                                       {"password": secrets.token_urlsafe(16)})
        await self.reply(t, "ada", "Done, the new password works in Outlook. Thanks!")
        await self.resolve(t, "alice", "Glad it works. Have a good day, Ada!")
        self.aged(t, timedelta(hours=3), timedelta(hours=2, minutes=20), change)

    async def bouncing_mail_call(self) -> None:
        """Three hours ago Cleo rang: mail to her company bounces. Alice logged the call,
        took the urgent ticket and answered; its resolution is due in 45 minutes."""
        t = await self.open("bounce", "alice", "Phone call from Cleo Crow: mail to "
                            "info@corvid.test bounces", "Cleo called: since this morning "
                            "every mail to info@corvid.test comes back.", account="cleo",
                            channel=Channel.phone, category="email", priority=Priority.urgent)
        await self.log_call(t, "alice", "cleo", 190, "Bounces say 'mailbox full'; the quota "
                            "of info@corvid.test is 1 GB. Promised a call back.")
        await self.take(t, "alice")
        await self.reply(t, "alice", "Guten Tag Frau Crow, wie besprochen prüfen wir das "
                         "Postfach info@corvid.test und melden uns heute.", by_mail=True)
        self.aged(t, timedelta(minutes=195), timedelta(minutes=186))

    async def site_down(self) -> None:
        """Forty minutes ago Ben's site went down; nobody answered in the 30 minutes urgent
        allows, so the SLA clock escalates it to level 2 (where it waits)."""
        t = await self.open("site_down", "ben", "Our website is down: 503 on every page",
                            "bluefern.test answers 503 Service Unavailable since a few minutes.")
        self.aged(t, timedelta(minutes=40), timedelta(minutes=40))

    async def zone_unreachable(self) -> None:
        """Twenty minutes ago Cleo reported her domain gone: its first response is due in ten
        minutes, and it waits in the level-1 queue."""
        t = await self.open("zone", "cleo", "corvid.test ist nicht mehr erreichbar",
                            "Seit 9 Uhr ist unsere Website down: corvid.test wird nicht mehr "
                            "aufgelöst.", category="dns")
        self.aged(t, timedelta(minutes=20), timedelta(minutes=20))

    async def shop_subdomain(self) -> None:
        """Cleo pointed shop.corvid.test at her shop provider (a CNAME, applied), then added
        an address beside it: that change fails on the host and opens a ticket for level 1."""
        zone = ("dns_zone", "corvid.test")
        cname = {"record": {"name": "shop", "type": "CNAME", "value": "shops.example.net"}}
        if await self.change("cname", "cleo", zone, "dns_record_add", cname) is None:
            return
        beside = {"record": {"name": "shop", "type": "A", "value": "203.0.113.7"}}
        await self.change("beside_cname", "cleo", zone, "dns_record_add", beside)

    async def google_txt(self) -> None:
        """Alice added Ben's TXT record for Google (the ticket waited on the change), and now
        waits for Ben to say Google verified it."""
        t = await self.open("txt", "ben", "TXT record for Google Search Console",
                            f"Google asks us to add the TXT record {GOOGLE_TXT} to "
                            "bluefern.test. Could you do that for us?")
        await self.take(t, "alice")
        await self.note(t, "alice", "He could do it in SiteControl, but asked us: adding it.")
        record = {"record": {"name": "@", "type": "TXT", "value": GOOGLE_TXT}}
        await self.change("txt", "alice", ("dns_zone", "bluefern.test"), "dns_record_add",
                          record, ticket=t)
        await self.reply(t, "alice", "Done: bluefern.test answers with the record now. Please "
                         "click Verify in Search Console and tell us how it went.", waits=True)

    async def invoice_twice(self) -> None:
        t = await self.open("invoice", "ada", "Invoice 2024-117 charges our domain twice",
                            "Lines 2 and 3 of our latest invoice both charge acme-bakery.test. "
                            "Could you check?")
        await self.take(t, "alice")
        await self.note(t, "alice", "Line 3 is a renewal booked twice by the old billing run. "
                        "Asked accounting to credit it (their ref ACC-2291).")
        await self.reply(t, "alice", "You are right, Ada: the domain was charged twice. We "
                         "credit one year within two working days.")

    async def point_www(self) -> None:
        t = await self.open("www", "ada", "Please point www.acme-bakery.test to our new shop",
                            "Our new shop runs at 203.0.113.25. Can you point "
                            "www.acme-bakery.test there?", category="dns")
        await self.take(t, "alice")
        await self.reply(t, "alice", "Happy to. Should the old site stay reachable, under "
                         "old.acme-bakery.test for instance?", waits=True)

    async def webmail_password(self) -> None:
        t = await self.open("webmail", "ben", "Webmail says my password is wrong",
                            "Since this morning webmail refuses the password of "
                            "info@bluefern.test, but Outlook still gets mail.")
        await self.take(t, "alice")
        await self.note(t, "alice", "Outlook has the old password cached; probably changed "
                        "on another device. Offer a reset.")
        await self.reply(t, "alice", "Could you set a new password in SiteControl (Services, "
                         "info@bluefern.test)? If webmail still refuses it, tell us when.")

    async def ftp_call(self) -> None:
        t = await self.open("ftp", "bob", "Phone call from Ben Fern: FTP upload fails",
                            "Ben called: uploads with FileZilla fail with '530 Login "
                            "incorrect'.", account="ben", channel=Channel.phone,
                            category="ftp")
        await self.log_call(t, "bob", "ben", 240, "He logs in as 'bluefern'; the FTP account "
                            "is bluefern_ftp. Walked him through the site manager.")
        await self.take(t, "bob")
        await self.reply(t, "bob", "As discussed on the phone: the FTP user name is "
                         "bluefern_ftp. Tell us if uploads still fail.", by_mail=True)

    async def wordpress_database(self) -> None:
        t = await self.open("wordpress", "ben", "Error establishing a database connection",
                            "bluefern.test shows only 'Error establishing a database "
                            "connection'.")
        await self.take(t, "bob")
        await self.reply(t, "bob", "Thanks Ben, we are looking into it.")
        await self.note(t, "bob", "wp-config points at bluefern_db; level 1 can not see the "
                        "grants.")
        await self.escalate(t, "bob", "database grants: needs level 2")
        await self.take(t, "carol")
        await self.note(t, "carol", "Grants are fine; max_connections reached: a cron job of "
                        "theirs opens a connection a minute and never closes it.")
        await self.reply(t, "carol", "Found it: your scheduled 'sync-stock' job leaves "
                         "database connections open. We raised the limit for today; please "
                         "stop the job until its author fixes it.")

    async def certificate(self) -> None:
        t = await self.open("tls", "cleo", "TLS-Zertifikat für corvid.test läuft ab",
                            "Unser TLS-Zertifikat läuft nächste Woche ab. Können Sie es "
                            "verlängern?")
        await self.take(t, "alice")
        await self.escalate(t, "alice", "certificates are installed by level 2")
        await self.take(t, "carol")
        await self.note(t, "carol", "Dan looks after our certificates: handing over.")
        await self.handover(t, "carol", "dan")
        await self.reply(t, "dan", "Guten Tag Frau Crow, wir stellen das Zertifikat auf "
                         "automatische Verlängerung um. Soll es auch www.corvid.test "
                         "abdecken?", waits=True)

    async def slow_database(self) -> None:
        t = await self.open("slow_db", "ada", "Our shop's database is slow since Tuesday",
                            "Product pages take 8 seconds; our developer says the database "
                            "waits on disk.")
        await self.take(t, "bob")
        await self.reply(t, "bob", "Thanks Ada, we are checking the database server.")
        await self.escalate(t, "bob", "database performance: level 2")
        await self.take(t, "carol")
        await self.note(t, "carol", "acme_db itself is fine (indexes used); the shared "
                        "MariaDB host is at 90% IO wait.")
        await self.escalate(t, "carol", "shared MariaDB host at 90% IO wait: level 3")
        await self.take(t, "erin")
        await self.note(t, "erin", "Moving the busiest databases to the SSD volume tonight, "
                        "acme_db first.")
        await self.reply(t, "erin", "We found the cause on our side: the database server's "
                         "disk is overloaded. We move your database to faster storage "
                         "tonight at 22:00 (a few seconds without the shop).")

    async def unknown_php_files(self) -> None:
        t = await self.open("php_files", "cleo", "Unbekannte PHP-Dateien in unserem "
                            "Webspace", "In www/corvid.test/uploads liegen PHP-Dateien, die "
                            "wir nicht kennen. Wurden wir gehackt?", priority=Priority.high)
        await self.take(t, "alice")
        await self.reply(t, "alice", "Bitte ändern Sie sofort Ihre FTP- und "
                         "WordPress-Passwörter; wir prüfen Ihren Webspace.")
        await self.escalate(t, "alice", "possible compromise of corvid.test: level 2")
        await self.take(t, "dan")
        await self.note(t, "dan", "Found a web shell (uploads/cache.php) and FTP logins from "
                        "an unknown address. Security incidents go to level 3.")
        await self.escalate(t, "dan", "security incident (web shell): level 3")

    async def billing_address(self) -> None:
        await self.open("billing", "cleo", "Neue Rechnungsadresse", "Bitte schicken Sie "
                        "unsere Rechnungen ab sofort an buchhaltung@corvid.test.",
                        category="billing")
    # fmt: on


def backdate_history(db: Database, made: dict[str, _Ticket], windows: dict[str, _Window]) -> None:
    """The one place the demo rewrites time: the tickets that must have happened days,
    hours or minutes ago are moved there (their messages, events, timeline, calls and
    changes with them), in one unit of work, through the store's repository for it."""
    now = utcnow()
    with db.write() as s:
        repo = BackdateRepository(s)
        for slug, w in windows.items():
            repo.backdate_ticket(
                made[slug].id, started=now - w.started, ended=now - w.ended, changes=w.changes
            )


def _user(users: UserRepository, email: str) -> Any:
    user = users.by_email(email)
    if user is None:
        raise LookupError(f"the demo's {email} is missing")
    return user
