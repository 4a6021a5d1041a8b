"""The demo's history, told through the running desk on real demo hosts: what a newcomer
finds on the first start, and nothing more on the next."""

from __future__ import annotations

import asyncio
import pwd
import secrets
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import ray
from sqlalchemy import func, select

from automation.local_hosts.host import LocalHost
from cluster.demo_hosts import DEMO_UNIX_USERS
from gateway.demo_story import DemoStory, Told, tell_demo_story
from gateway.runner import provision_demo_ftp_accounts, provision_demo_mailboxes
from store.demo import (
    AGENTS,
    CUSTOMERS,
    DemoHost,
    DemoLogins,
    demo_domains_by_host,
    load_demo,
)
from store.models import ChangeRequest, Message, Service, Ticket, TicketEvent
from store.models.base import utcnow
from store.models.ticket import ticket_number
from store.repositories import (
    AccountRepository,
    AgentRepository,
    HostRepository,
    TicketRepository,
    UserRepository,
)
from tests.conftest import MAIL_ADDRESSES
from tests.desk import Desk, wait_until
from tests.hosts import dig, running_hosts, unix_user

pytestmark = pytest.mark.ray


@pytest.fixture
def demo(desk: Desk, hosts_base: Path) -> Iterator[tuple[list[LocalHost], DemoLogins]]:
    """The demo company on the test desk as `sitedesk up` loads it: its two hosts (sshd and
    named serving the demo zones, Dovecot and Postfix, pure-ftpd; the demo accounts' Unix users
    and their homes), its accounts and people, its mailboxes and FTP accounts requested. Put
    away afterwards: its agents offline, its hosts retired, so no later test meets them."""
    base = hosts_base / f"demo-{secrets.token_hex(3)}"
    made = (
        LocalHost(base, f"demo-host-{i + 1}", zones=tuple(domains), with_nginx=False,
                  services=("mail", "ftp"))
        for i, domains in enumerate(demo_domains_by_host(2))
    )  # fmt: skip
    with running_hosts(made) as hosts:
        for unix in DEMO_UNIX_USERS:
            unix_user(unix, *hosts)
        specs = [h.spec() for h in hosts]
        # Someone else's mailbox on a demo host: the demo must leave it alone.
        other, _ = desk.customer("Not Demo")
        with desk.db.write() as s:
            stranger = AccountRepository(s).add_service(other.id, kind="mailbox",
                                                        name=f"x@{secrets.token_hex(3)}.test",
                                                        host_id=None)  # fmt: skip
        try:
            logins = load_demo(desk.db, base / "demo-logins.json", hosts=[
                DemoHost(name=sp.host_id, address=sp.address, ssh_port=sp.port,
                         host_key=sp.host_key, credentials_ref=sp.private_key_path,
                         root_dir=sp.layout.root,
                         services_meta=sp.layout.model_dump(mode="json", exclude={"root"}))
                for sp in specs
            ])  # fmt: skip
            with desk.db.write() as s:  # hosted on a demo host, as a real customer's might be
                demo_host = HostRepository(s).by_name(specs[0].host_id)
                assert demo_host is not None
                s.get(Service, stranger.id).host_id = demo_host.id  # type: ignore[union-attr]
            assert provision_demo_mailboxes(desk.db, desk.deployment.directory) == 3
            assert provision_demo_ftp_accounts(desk.db, desk.deployment.directory) == 3
            with desk.db.read() as s:
                touched = s.scalars(select(ChangeRequest).where(
                    ChangeRequest.service_id == stranger.id)).all()  # fmt: skip
            assert touched == []
            yield hosts, logins
        finally:
            pools = desk.deployment.directory
            with desk.db.write() as s:
                users = [UserRepository(s).by_email(e) for e, *_ in AGENTS]
                agents = [AgentRepository(s).by_user(u.id) for u in users if u is not None]
                for sp in specs:  # whatever of the demo was made before a failure is put away
                    host = HostRepository(s).by_name(sp.host_id)
                    if host is not None:
                        host.status = "retired"
            ray.get([pools.pool(a.tier).set_presence.remote(a.id, "offline") for a in agents if a])


def dovecot_knows(host: LocalHost, address: str) -> bool:
    """Whether the host's Dovecot has the mailbox (its own admin tool: ``doveadm user``)."""
    argv = [*host.layout().doveadm, "user", address]
    return subprocess.run(argv, capture_output=True, check=False).returncode == 0


def pure_ftpd_user(host: LocalHost, username: str) -> dict[str, str]:
    """The FTP user as pure-ftpd's own tool shows it from the host's user database (the file
    its PureDB is made from): {"UID": "998 (acme)", "Directory": ..., ...}; {} when absent."""
    source = host.root / "ftp" / "pureftpd.passwd"
    argv = [*host.layout().pure_pw, "show", username, "-f", str(source)]
    out = subprocess.run(argv, capture_output=True, text=True, check=False)
    if out.returncode != 0:
        return {}
    fields = (line.partition(":") for line in out.stdout.splitlines())
    return {k.strip(): v.strip() for k, sep, v in fields if sep}


def counts(desk: Desk) -> tuple[int, ...]:
    with desk.db.read() as s:
        return tuple(
            s.scalar(select(func.count()).select_from(model)) or 0
            for model in (Ticket, Message, TicketEvent, ChangeRequest)
        )


def waiting_at(desk: Desk, tier: int) -> set[str]:
    with desk.db.read() as s:
        return {t.number for t in TicketRepository(s).queue(tier)}


def password(logins: DemoLogins, email: str) -> str:
    return next(x.password for x in logins.logins if x.email == email)


def test_the_demo_has_a_history_on_its_first_start_and_only_then(
    desk: Desk, demo: tuple[list[LocalHost], DemoLogins]
) -> None:
    hosts, logins = demo
    directory = desk.deployment.directory
    smtp = ("127.0.0.1", desk.smtp_port)
    support = next(iter(MAIL_ADDRESSES))
    started = time.monotonic()
    told = tell_demo_story(desk.db, directory, smtp=smtp, mail_to=support)
    took = time.monotonic() - started
    assert isinstance(told, Told)
    print(f"demo history in {took:.1f} s: {told.line()}")
    assert took < 60, took  # a few seconds on a quiet machine; it runs on every first start
    admin = desk.login("admin@sitedesk.demo", password(logins, "admin@sitedesk.demo"))
    with desk.http(admin) as c:
        tickets = {slug: c.get(f"/api/v1/tickets/{ticket_number(i)}").json()
                   for slug, i in told.tickets.items()}  # fmt: skip

    # Every state a ticket rests in, at every level, over several accounts and channels.
    assert {t["status"] for t in tickets.values()} >= {
        "new", "open", "pending_customer", "resolved", "closed"
    }  # fmt: skip
    assert {t["tier"] for t in tickets.values()} == {1, 2, 3}
    assert len({t["account_id"] for t in tickets.values()}) == 3
    assert {t["channel"] for t in tickets.values()} >= {"portal", "email", "phone"}
    kinds = {e["kind"] for t in tickets.values() for e in t["events"]}
    assert {"assigned", "escalated", "resolved", "closed", "pending_change",
            "change_applied", "call_logged", "sla_warning", "sla_breach"} <= kinds  # fmt: skip
    taken = [e["data"] for e in tickets["tls"]["events"] if e["kind"] == "assigned"]
    assert [d["agent"].split()[0] for d in taken] == ["Alice", "Carol", "Dan"]
    assert taken[-1]["from_agent_id"] is not None  # Carol handed it over to Dan

    # Internal notes are there for the agents, and only for them.
    notes = [m for t in tickets.values() for m in t["messages"] if m["visibility"] == "internal"]
    assert len(notes) == told.internal_notes >= 10
    assert {m["direction"] for m in notes} == {"internal"}
    ben = desk.login("ben@bluefern.test", password(logins, "ben@bluefern.test"))
    with desk.http(ben) as c:
        mine = c.get(f"/api/v1/tickets/{tickets['txt']['number']}").json()
        adas = c.get(f"/api/v1/tickets/{tickets['invoice']['number']}")
    assert [m["visibility"] for m in mine["messages"]] == ["public", "public"]
    assert len(tickets["txt"]["messages"]) == 3 and adas.status_code == 404

    # Changes applied on the demo hosts: what named answers; one failed and opened a ticket.
    acme_host, bluefern_host = hosts
    assert dig(bluefern_host, "bluefern.test") == ['"google-site-verification=bluefern-demo-2f9"']
    assert dig(acme_host, "shop.corvid.test", "CNAME") == ["shops.example.net."]
    assert told.changes == {"applied": 3, "failed": 1}

    # Each account's mailbox and FTP account on its host's real servers: Dovecot knows the
    # mailbox; pure-ftpd has the FTP user as the account's Unix user, chrooted to its home.
    for i, (_, _, unix, *_, domain) in enumerate(CUSTOMERS):
        host, user = hosts[i % len(hosts)], pwd.getpwnam(unix)
        wait_until(lambda h=host, d=domain: dovecot_knows(h, f"info@{d}"), what=f"info@{domain}")
        ftp = wait_until(lambda h=host, u=unix: pure_ftpd_user(h, f"{u}_ftp"), what=f"{unix}_ftp")
        assert ftp["UID"].split()[0] == str(user.pw_uid), ftp
        assert ftp["Directory"].rstrip("/.") == str(host.root / "home" / unix), ftp
    assert told.failure_ticket is not None
    with desk.http(admin) as c:
        failed = c.get(f"/api/v1/tickets/{told.failure_ticket}").json()
    assert failed["subject"].startswith("Self-service change failed: add shop")
    assert (failed["tier"], failed["status"], failed["owner"]) == (1, "new", None)
    assert [a["filename"] for m in failed["messages"] for a in m["attachments"]]

    # SLA clocks: a warning given and a due time minutes away, one breach escalated, one
    # ticket resolved days ago closed by the clock.
    now = utcnow()
    soon = [t["number"] for t in tickets.values() if t["status"] not in ("resolved", "closed")
            for due in (t["first_response_due"], t["resolution_due"]) if due is not None
            and now < _at(due) < now + timedelta(hours=1)]  # fmt: skip
    assert {tickets["bounce"]["number"], tickets["zone"]["number"]} <= set(soon)
    assert "sla_warning" in {e["kind"] for e in tickets["bounce"]["events"]}
    breached = tickets["site_down"]
    assert (breached["tier"], breached["status"], breached["owner"]) == (2, "new", None)
    assert breached["sla_breached_at"] is not None
    outlook = tickets["outlook"]
    assert outlook["status"] == "closed" and outlook["channel"] == "email"
    assert now - _at(outlook["created_at"]) > timedelta(days=5)
    assert now - _at(tickets["restore"]["closed_at"]) > timedelta(days=1)

    # The queues a newcomer opens: waiting work at every level, level 1 staffed.
    alice = desk.login("alice@sitedesk.demo", password(logins, "alice@sitedesk.demo"))
    with desk.http(alice) as c:
        queues = {tier: c.get(f"/api/v1/queues/{tier}").json() for tier in (1, 2, 3)}
        my_tickets = c.get("/api/v1/tickets", params={"owner": "me"}).json()
    waiting = {tier: {t["number"] for t in q["waiting"]} for tier, q in queues.items()}
    assert {told.failure_ticket, tickets["zone"]["number"], tickets["billing"]["number"]} <= (
        waiting[1]
    )
    assert breached["number"] in waiting[2]
    assert tickets["php_files"]["number"] in waiting[3]
    demo_agents = {name for _, name, _, _ in AGENTS}
    presence = {a["name"].split()[0]: a["presence"] for q in queues.values()
                for a in q["agents"] if a["name"] in demo_agents}  # fmt: skip
    assert presence == {"Alice": "online", "Bob": "online", "Carol": "away", "Dan": "offline",
                        "Erin": "away"}  # fmt: skip
    assert my_tickets["total"] >= 5

    # A second start tells nothing; telling it again (a start stopped half-way) replays
    # every step and adds nothing either (once Bob has what waited for him: the demo's
    # phone ticket about the slow shop).
    only_alices = {told.failure_ticket, tickets["zone"]["number"], tickets["billing"]["number"]}
    wait_until(lambda: waiting_at(desk, 1) == only_alices, what="level 1 handed out")
    before = counts(desk)
    assert tell_demo_story(desk.db, directory, smtp=smtp, mail_to=support) is None
    again = asyncio.run(DemoStory(desk.db, directory, smtp, support).tell())
    assert again.tickets == told.tickets and counts(desk) == before


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)
