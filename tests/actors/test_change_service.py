"""Change requests as units of work, applied by a plain ChangeExecutor to a real sshd + named."""

from __future__ import annotations

import asyncio
import hashlib
import secrets
import socket
import ssl
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from unittest.mock import ANY

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from pydantic import ValidationError
from sqlalchemy import text

from actors import names
from actors.accounts.lane import AccountSessions
from actors.changes.dto import NewChange, NewHost
from actors.changes.executor import ChangeExecutor
from actors.changes.hosts import HostRegistry
from actors.changes.requests import ChangeService
from actors.changes.settle import ChangeSettler
from actors.changes.shards import executor_name
from actors.changes.stored import rebuild_change
from actors.config import ActorConfig
from actors.directory import Directory
from actors.errors import (
    ChangeNotFound,
    HostExists,
    IdempotencyMismatch,
    InvalidChange,
    InvalidHost,
    NotAllowed,
    RateLimited,
    ServiceNotFound,
)
from actors.principal import Principal
from actors.tickets.service import TicketService
from automation.local_hosts.host import LocalHost
from store.db import Database
from store.models import Account, ChangeRequest, OutboxEvent, Service, TimelineEntry
from store.read.changes import (
    CUSTOMER_ERROR,
    SECRETS_KEY,
    ChangeDetail,
    ChangeReads,
    for_customer,
)
from store.read.tickets import TicketProjection
from store.repositories import (
    AccountRepository,
    ChangeRepository,
    HostRepository,
    MessageRepository,
    TicketEventRepository,
    TicketRepository,
    UserRepository,
)
from tests.conftest import REDIS_URL
from tests.desk import wait_until
from tests.factories import make_account, make_agent, make_customer, make_ticket
from tests.hosts import dig, new_host

ZONE = "shop.test"


@pytest.fixture(scope="module")
def host(hosts_base: Path) -> Iterator[LocalHost]:
    """sshd, named and nginx (a certificate is served by its domain's site, over HTTPS)."""
    with LocalHost(hosts_base, f"cs-host-{secrets.token_hex(3)}", zones=(ZONE,)) as h:
        yield h


class World:
    def __init__(self, db: Database, host: LocalHost) -> None:
        self.db = db
        self.host = host
        config = ActorConfig(database_url=db.url, redis_url=REDIS_URL)
        self.config = config
        self.service = ChangeService(db, config)
        self.settler = ChangeSettler(db, config)
        self.registry = HostRegistry(db)
        self.reads = ChangeReads(db)
        self.host_row = self.registry.register_host(new_host(host))

    def customer(self) -> tuple[Account, Service, Principal]:
        """A new account with its own zone (service names are unique) on the host."""
        name = f"c{secrets.token_hex(4)}.test"
        self.host.add_zone(name)
        with self.db.write() as s:
            account = make_account(s)
            user = make_customer(s, account)
            zone = AccountRepository(s).add_service(
                account.id, kind="dns_zone", name=name, host_id=self.host_row.id
            )
            by = Principal(user_id=user.id, role="customer", name="C", account_id=account.id)
        return account, zone, by

    def get(self, change_id: str, by: Principal) -> ChangeDetail:
        """A change as `by` reads it over the API: their own account's only, if a customer."""
        customer = by.role == "customer"
        got = self.reads.get(change_id, account_id=by.account_id if customer else None)
        if got is None:
            raise ChangeNotFound(f"change {change_id} not found")
        return for_customer(got) if customer else got

    def executor(self, **kw: Any) -> ChangeExecutor:
        """A plain executor shard owning every host, telling no other actor."""
        opts: dict[str, Any] = {"sweep_seconds": 0.5, "exec_timeout": 5.0,
                                "connect_timeout": 2.0, "backoff_max": 0.3}  # fmt: skip
        opts.update(kw)
        return ChangeExecutor(0, 1, self.db, changes=self.service, settler=self.settler,
                              registry=self.registry, **opts)  # fmt: skip


@pytest.fixture
def world(db: Database, host: LocalHost) -> World:
    return World(db, host)


def txt(name: str, value: str, **kw: Any) -> NewChange:
    return NewChange(
        service_id=kw.pop("service_id"),
        kind=kw.pop("kind", "dns_record_add"),
        params={"record": {"name": name, "type": "TXT", "value": value}, **kw},
    )


def status_of(db: Database, change_id: str) -> str:
    with db.read() as s:
        return ChangeRepository(s).get(change_id).status


def test_self_service_dns_change_is_applied_and_recorded_once(world: World) -> None:
    account, zone, by = world.customer()
    label = f"t{secrets.token_hex(4)}"
    created = world.service.create(by, txt(label, "hello", service_id=zone.id), key="k1",
                                   request_hash="h1")  # fmt: skip
    again = world.service.create(by, txt(label, "hello", service_id=zone.id), key="k1",
                                 request_hash="h1")  # fmt: skip
    assert created.status == "queued" and created.params["zone"] == zone.name
    assert again.id == created.id and again.replayed
    with pytest.raises(IdempotencyMismatch):
        world.service.create(by, txt(label, "other", service_id=zone.id), key="k1",
                             request_hash="h2")  # fmt: skip
    ex = world.executor()
    try:
        assert ex.wait_idle(20)
        assert dig(world.host, f"{label}.{zone.name}", "TXT") == ['"hello"']
        # Handing the settled change over again does nothing.
        assert ex.submit([created.id]) == 0
    finally:
        ex.close()
    got = world.get(created.id, by)
    assert got.status == "applied" and got.applied_at is not None
    assert [a.outcome for a in got.attempts] == ["applied"]
    with world.db.read() as s:
        assert s.query(ChangeRequest).filter_by(account_id=account.id).count() == 1
        kinds = [e.kind for e in s.query(TimelineEntry).filter_by(account_id=account.id)]
        topics = [o.topic for o in s.query(OutboxEvent).filter_by(account_id=account.id)]
    # The timeline keeps what was asked and how it ended; the stream also hears it going out.
    assert kinds == ["change.requested", "change.applied"]
    assert topics == ["change.requested", "change.applying", "change.applied"]


class Local:
    """An actor handle without Ray: `handle.method.remote(...)` calls the plain object."""

    def __init__(self, target: object) -> None:
        self.target = target

    def __getattr__(self, name: str) -> Any:
        return SimpleNamespace(remote=getattr(self.target, name))


class Quiet:
    """The notifier, whose pokes this test does not follow."""

    def poke(self) -> None:
        return None


class LocalDirectory(Directory):
    """The actors a plain lane talks to, as plain objects."""

    def __init__(self, actors: dict[str, object]) -> None:
        super().__init__("local", 1)
        self._cache = {name: Local(actor) for name, actor in actors.items()}


def test_a_change_request_goes_through_its_accounts_lane_to_the_hosts_executor(
    world: World,
) -> None:
    """The one write path, without Ray: the lane records the request and wakes the executor
    that owns the host (whose sweep would not, for a minute)."""
    account, zone, by = world.customer()
    ex = world.executor(sweep_seconds=60.0)
    directory = LocalDirectory({executor_name(world.host_row.id): ex, names.NOTIFIER: Quiet()})
    lane = AccountSessions(
        0, world.db, service=TicketService(world.db, world.config), changes=world.service,
        reads=TicketProjection(world.db), directory=directory,
    )  # fmt: skip
    label = f"lane{secrets.token_hex(3)}"
    change = txt(label, "v", service_id=zone.id)
    try:
        detail = asyncio.run(lane.request_change(account.id, by, change, "lane-1", "h"))
        wait_until(lambda: status_of(world.db, detail.id) == "applied", 20, "the lane's change")
        again = asyncio.run(lane.request_change(account.id, by, change, "lane-1", "h"))
        assert again.id == detail.id and again.replayed
        other, theirs, _ = world.customer()
        said_theirs = change.model_copy(update={"account_id": other.id})
        for foreign in (txt("x", "y", service_id=theirs.id), said_theirs):
            with pytest.raises(ServiceNotFound):
                asyncio.run(lane.request_change(account.id, by, foreign))
    finally:
        ex.close()
    assert dig(world.host, f"{label}.{zone.name}", "TXT") == ['"v"']


def test_access_rules(world: World) -> None:
    _, zone, by = world.customer()
    _, _, other = world.customer()
    with pytest.raises(ServiceNotFound):  # another account's service: not found, not forbidden
        world.service.create(other, txt("a", "b", service_id=zone.id))
    with pytest.raises(NotAllowed, match="not a self-service change"):
        world.service.create(
            by,
            NewChange(service_id=zone.id, kind="account_suspend", params={}),
        )
    with pytest.raises(InvalidChange) as bad:  # aiming at another zone through one's own
        world.service.create(by, txt("a", "b", service_id=zone.id, zone="other.test"))
    assert f"zone: must be '{zone.name}'" in bad.value.errors[0]
    for value, problem in [("x\ny", "control characters"), ("$(rm -rf /)", None)]:
        change = txt("www", value, service_id=zone.id)
        if problem is None:  # a TXT value may hold any printable text: it is quoted, not run
            world.service.create(by, change)
            continue
        with pytest.raises(InvalidChange) as bad:
            world.service.create(by, change)
        assert problem in str(bad.value)
    with pytest.raises(InvalidChange, match="label"):
        world.service.create(by, txt("bad;name", "x", service_id=zone.id))
    with pytest.raises(ChangeNotFound):
        world.get("not-a-uuid", by)
    mine = world.service.create(by, txt("ok", "x", service_id=zone.id))
    with pytest.raises(ChangeNotFound):
        world.get(mine.id, other)


def test_failed_self_service_change_opens_a_tier1_ticket(world: World) -> None:
    account, zone, by = world.customer()
    missing = txt(f"gone{secrets.token_hex(3)}", "x", service_id=zone.id, kind="dns_record_delete")
    created = world.service.create(by, missing)
    ex = world.executor()
    try:
        assert ex.wait_idle(20)
    finally:
        ex.close()
    got = world.get(created.id, by)
    assert got.status == "failed" and got.error
    assert got.ticket_number is not None
    with world.db.read() as s:
        tickets = TicketRepository(s).for_account(account.id)
        assert len(tickets) == 1
        t = tickets[0]
        assert t.tier == 1 and t.status == "new" and t.number == got.ticket_number
        assert "Self-service change failed" in t.subject
        messages = MessageRepository(s).messages(t.id, include_internal=True)
        files = [a.filename for m in messages for a in m.attachments]
        assert files == [f"change-{created.id}.log"]
        summary = [
            e.summary for e in s.query(TimelineEntry).filter_by(account_id=account.id)
            if e.kind == "change.failed"
        ]  # fmt: skip
    assert summary and t.number in summary[0]


def test_agent_change_holds_the_ticket_in_pending_change(world: World) -> None:
    account, zone, _ = world.customer()
    with world.db.write() as s:
        agent = make_agent(s, tier=2)
        ticket = make_ticket(s, s.get(Account, account.id), tier=2)
        ticket.owner_agent_id, ticket.status = agent.id, "open"
        number = ticket.number
    by = Principal(user_id=agent.user_id, role="agent", name="A", agent_id=agent.id, tier=2)
    with pytest.raises(InvalidChange, match="ticket"):
        world.service.create(by, txt("a", "b", service_id=zone.id))
    change = txt(f"agent{secrets.token_hex(3)}", "by agent", service_id=zone.id)
    change.ticket = number
    created = world.service.create(by, change)
    with world.db.read() as s:
        assert TicketRepository(s).by_number(number).status == "pending_change"  # type: ignore[union-attr]
    ex = world.executor()
    try:
        assert ex.wait_idle(20)
    finally:
        ex.close()
    assert world.get(created.id, by).status == "applied"
    with world.db.read() as s:
        t = TicketRepository(s).by_number(number)
        assert t is not None and t.status == "open"
        kinds = [e.kind for e in TicketEventRepository(s).events(t.id, include_internal=True)]
    assert kinds == ["pending_change", "change_applied"]


def test_verify_failure_rolls_back_and_reports(world: World) -> None:
    _, zone, by = world.customer()
    label = f"rb{secrets.token_hex(3)}"
    created = world.service.create(by, txt(label, "x", service_id=zone.id))
    ex = world.executor(verify_hook=lambda r: "forced" if r.change_id == created.id else None)
    try:
        assert ex.wait_idle(20)
    finally:
        ex.close()
    got = world.get(created.id, by)
    assert got.status == "rolled_back" and got.ticket_number is not None
    assert dig(world.host, f"{label}.{zone.name}", "TXT") == []


def test_queued_changes_are_resumed_when_the_executor_starts(world: World) -> None:
    _, zone, by = world.customer()
    labels = [f"q{i}{secrets.token_hex(3)}" for i in range(5)]
    ids = [world.service.create(by, txt(x, x, service_id=zone.id)).id for x in labels]
    # A crash after the first was applied but before its outcome was recorded:
    started = world.settler.start(ids[:1])
    assert status_of(world.db, ids[0]) == "applying"
    from automation.executor.executor import Executor
    from automation.executor.outcome import OutcomeCollector

    col = OutcomeCollector()
    raw = Executor(col, exec_timeout=5.0)
    raw.add_host(world.host.spec().model_copy(update={"host_id": started[0][1].host_id}))
    raw.submit(started[0][1])
    col.wait(ids[:1])
    raw.close()
    ex = world.executor()
    try:
        assert ex.wait_idle(20)
    finally:
        ex.close()
    assert {status_of(world.db, i) for i in ids} == {"applied"}
    first = world.get(ids[0], by)
    assert [a.outcome for a in first.attempts] == ["already_applied"]
    journal = Path(world.host.root) / ".gdcas" / "journal"
    assert all((journal / i).exists() for i in ids)
    for x in labels:
        assert dig(world.host, f"{x}.{zone.name}", "TXT") == [f'"{x}"']


def test_secrets_rest_as_hashes(world: World) -> None:
    account, zone, _ = world.customer()
    with world.db.write() as s:
        mailbox = AccountRepository(s).add_service(
            account.id, kind="mailbox", name=f"info@{zone.name}", host_id=world.host_row.id
        )
        user = make_customer(s, s.get(Account, account.id))
    by = Principal(user_id=user.id, role="customer", name="C", account_id=account.id)
    req = NewChange(service_id=mailbox.id, kind="mailbox_password",
                    params={"password": "correct horse battery"})  # fmt: skip
    created = world.service.create(by, req)
    with world.db.read() as s:
        row = ChangeRepository(s).get(created.id)
        stored = dict(row.params)
    assert "correct horse" not in str(stored) and "correct horse" not in str(created)
    assert stored["address"] == f"info@{zone.name}" and stored[SECRETS_KEY]["password"].startswith(
        "$argon2id$"
    )
    again = rebuild_change("mailbox_password", stored)
    assert again.secret_hash("password") == stored[SECRETS_KEY]["password"]


def test_change_requests_are_audited(world: World) -> None:
    from store.repositories import AuditRepository

    account, zone, by = world.customer()
    created = world.service.create(by, txt("audit", "x", service_id=zone.id))
    with world.db.read() as s:
        rows = AuditRepository(s).for_object("change", created.id)
    assert [(r.action, r.actor_user_id, r.account_id) for r in rows] == [
        ("change_requested", by.user_id, account.id)
    ]


def test_tls_private_key_is_scrubbed_once_the_change_settles(world: World) -> None:
    from automation.executor.outcome import ChangeOutcome
    from tests.automation.test_validation import make_cert

    account, zone, _ = world.customer()
    cert, key = make_cert([zone.name])
    with world.db.write() as s:
        row = ChangeRepository(s).create(
            account_id=account.id, kind="tls_install", source="agent", host_id=world.host_row.id,
            params={"domain": zone.name, "certificate": cert, "private_key": key},
        )  # fmt: skip
    outcome = ChangeOutcome(
        change_id=row.id, host_id="h", kind="tls_install", status="applied", attempts=1,
        output="", error=None,
    )  # fmt: skip
    world.settler.record([outcome])
    with world.db.read() as s:
        stored = ChangeRepository(s).get(row.id)
        assert stored.status == "applied"
        params = dict(stored.params)
    assert "PRIVATE KEY" not in str(params)
    assert params["private_key_sha256"] == hashlib.sha256(key.encode()).hexdigest()
    assert params["certificate"] == cert  # the public part stays on record


# -- hardening (issue 7) ---------------------------------------------------------------------
class Clock:
    def __init__(self) -> None:
        self.at = datetime(2026, 11, 2, 10, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.at


def agent_principal(world: World, tier: int, account: Account) -> tuple[Principal, str]:
    """A level-`tier` agent and the number of an open ticket of `account` they own."""
    with world.db.write() as s:
        agent = make_agent(s, tier=tier)
        ticket = make_ticket(s, s.get(Account, account.id), tier=tier)
        ticket.owner_agent_id, ticket.status = agent.id, "open"
        number = ticket.number
    by = Principal(user_id=agent.user_id, role="agent", name="A", agent_id=agent.id, tier=tier)
    return by, number


def test_a_certificate_that_expired_while_queued_is_applied_beside_the_others(
    world: World,
) -> None:
    from tests.automation.test_validation import make_cert

    account, zone, by = world.customer()
    cert, key = make_cert([zone.name], days=-1, start_days=-10)  # valid when it was accepted
    with world.db.write() as s:  # the site that serves it, requested before it
        site = ChangeRepository(s).create(
            account_id=account.id, kind="vhost_create", source="agent", host_id=world.host_row.id,
            params={"account": account.unix_user, "domain": zone.name},
        )  # fmt: skip
        tls = ChangeRepository(s).create(
            account_id=account.id, kind="tls_install", source="agent", host_id=world.host_row.id,
            params={"domain": zone.name, "certificate": cert, "private_key": key},
        )  # fmt: skip
    label = f"tls{secrets.token_hex(3)}"
    dns = world.service.create(by, txt(label, "beside", service_id=zone.id))
    ex = world.executor()
    try:
        assert ex.wait_idle(20)
    finally:
        ex.close()
    assert [status_of(world.db, c.id) for c in (site, tls, dns)] == ["applied"] * 3
    assert dig(world.host, f"{label}.{zone.name}", "TXT") == ['"beside"']
    assert (
        served_sha256(world.host, zone.name)
        == hashlib.sha256(
            x509.load_pem_x509_certificate(cert.encode()).public_bytes(Encoding.DER)
        ).hexdigest()
    )  # nginx presents it, expired as it is


def served_sha256(host: LocalHost, domain: str) -> str:
    """The SHA-256 of the certificate the host's nginx presents for `domain` (SNI), unchecked."""
    assert host.nginx is not None
    context = ssl.create_default_context()
    context.check_hostname, context.verify_mode = False, ssl.CERT_NONE
    with socket.create_connection(("127.0.0.1", host.nginx.https_port), timeout=5) as raw:
        with context.wrap_socket(raw, server_hostname=domain) as tls:
            der = tls.getpeercert(binary_form=True)
    assert der is not None
    return hashlib.sha256(der).hexdigest()


def host_with_key(world: World, key_path: str, name: str | None = None) -> NewHost:
    """The world's host under another name, logging in with the client key at `key_path`."""
    spec = world.host.spec()
    return NewHost(
        name=name or f"keyed-{secrets.token_hex(3)}", address=spec.address, ssh_port=spec.port,
        host_key=spec.host_key, credentials_ref=key_path, root_dir=spec.layout.root,
        layout=spec.layout.model_dump(mode="json", exclude={"root"}),
    )  # fmt: skip


def make_admin_principal(world: World) -> Principal:
    with world.db.write() as s:
        user = UserRepository(s).create(
            email=f"admin.{secrets.token_hex(4)}@sitedesk.test", display_name="Admin", role="admin"
        )
    return Principal(user_id=user.id, role="admin", name="Admin")


def copy_key(world: World, path: Path, mode: int = 0o600) -> str:
    path.write_bytes(Path(world.host.spec().private_key_path).read_bytes())
    path.chmod(mode)
    return str(path)


def test_a_host_whose_client_key_is_unusable_is_refused_at_registration(
    world: World, tmp_path: Path
) -> None:
    """Issue 8 defect 1: such a host was recorded, and broke its executor shard."""
    shared = copy_key(world, tmp_path / "shared-key", mode=0o644)
    refusals = [
        (str(tmp_path / "no-such-key"), "cannot read private key"),
        (shared, "mode 0600 or 0400"),
        (str(tmp_path), "not a regular file"),
    ]
    for path, why in refusals:
        new = host_with_key(world, path)
        with pytest.raises(InvalidHost) as refused:
            world.registry.register_host(new)
        assert refused.value.status == 422 and why in refused.value.message
        assert refused.value.detail == [{"field": "credentials_ref", "problem": ANY}]
        assert path in refused.value.detail[0]["problem"]
        with world.db.read() as s:
            assert HostRepository(s).by_name(new.name) is None


def test_a_client_key_that_disappears_stops_only_its_hosts_lane(
    world: World, tmp_path: Path
) -> None:
    """Issue 8 defect 1: a key that goes away later marks its host down and holds only its
    changes; once the key is back, they are applied."""
    account, zone, by = world.customer()
    key = Path(copy_key(world, tmp_path / "client-key"))
    keyed = world.registry.register_host(host_with_key(world, str(key)))
    name = f"k{secrets.token_hex(4)}.test"
    world.host.add_zone(name)
    with world.db.write() as s:
        elsewhere = AccountRepository(s).add_service(
            account.id, kind="dns_zone", name=name, host_id=keyed.id
        )
    ex = world.executor()
    try:
        first = world.service.create(by, txt("before", "x", service_id=elsewhere.id))
        wait_until(lambda: status_of(world.db, first.id) == "applied", 20, "the keyed change")
        key.unlink()
        ex.sync_hosts()  # the sweep's check
        health = ex.status()[keyed.name]
        assert health.state == "down" and str(key) in (health.last_error or "")
        held = world.service.create(by, txt("held", "x", service_id=elsewhere.id))
        assert ex.submit([held.id]) == 0
        label = f"ok{secrets.token_hex(3)}"
        fine = world.service.create(by, txt(label, "fine", service_id=zone.id))
        assert ex.submit([fine.id]) == 1
        wait_until(lambda: status_of(world.db, fine.id) == "applied", 20, "the other host's change")
        assert ex.status()[world.host_row.name].state == "up"
        assert status_of(world.db, held.id) == "queued"  # held, like a host that is down
        copy_key(world, key)
        wait_until(lambda: status_of(world.db, held.id) == "applied", 20, "the held change")
        assert ex.status()[keyed.name].state == "up"
    finally:
        ex.close()
    assert dig(world.host, f"held.{name}", "TXT") == ['"x"']
    assert dig(world.host, f"{label}.{zone.name}", "TXT") == ['"fine"']


def test_a_retried_registration_is_answered_from_its_record(world: World) -> None:
    """Issue 8 defect 11 (the actor's part): the same key and request answer the first
    registration; the same key with another request is refused."""
    admin = make_admin_principal(world)
    new = host_with_key(world, world.host.spec().private_key_path)
    first = world.registry.register_host(new, admin, key="h1", request_hash="a")
    again = world.registry.register_host(new, admin, key="h1", request_hash="a")
    assert again == first
    with pytest.raises(IdempotencyMismatch):
        world.registry.register_host(new, admin, key="h1", request_hash="b")
    with pytest.raises(HostExists):
        world.registry.register_host(new, admin, key="h2", request_hash="a")


@pytest.mark.parametrize("migrated_db", ["postgresql"], indirect=True)
def test_an_outcome_that_can_not_be_recorded_is_dead_lettered(world: World) -> None:
    _, zone, by = world.customer()
    poison = world.service.create(by, txt(f"p{secrets.token_hex(3)}", "p", service_id=zone.id))
    fine = world.service.create(by, txt(f"f{secrets.token_hex(3)}", "f", service_id=zone.id))
    with world.db.write() as s:  # a real database fault that hits this one change's record only
        s.execute(text(f"""
            CREATE OR REPLACE FUNCTION refuse_poison() RETURNS trigger AS $$
            BEGIN
              IF NEW.change_id = '{poison.id}' AND NEW.kind = 'change.applied' THEN
                RAISE EXCEPTION 'poison outcome';
              END IF;
              RETURN NEW;
            END $$ LANGUAGE plpgsql"""))  # fmt: skip
        s.execute(text("CREATE TRIGGER refuse_poison BEFORE INSERT ON timeline_entries "
                       "FOR EACH ROW EXECUTE FUNCTION refuse_poison()"))  # fmt: skip
    ex = world.executor()
    try:
        wait_until(lambda: status_of(world.db, poison.id) != "applying", 30, "the dead letter")
        later = world.service.create(by, txt(f"l{secrets.token_hex(3)}", "l", service_id=zone.id))
        assert ex.submit([later.id]) == 1
        wait_until(lambda: status_of(world.db, later.id) == "applied", 20, "the next change")
    finally:
        ex.close()
        with world.db.write() as s:
            s.execute(text("DROP TRIGGER refuse_poison ON timeline_entries"))
            s.execute(text("DROP FUNCTION refuse_poison()"))
    assert status_of(world.db, fine.id) == "applied"
    staff = Principal(role="admin", name="Admin")
    dead = world.get(poison.id, staff)
    assert dead.status == "failed" and "recording that failed 3 times" in (dead.error or "")
    assert "poison outcome" in (dead.error or "")


def test_repeated_failures_of_one_service_make_one_ticket_and_customers_see_plain_words(
    world: World,
) -> None:
    account, zone, by = world.customer()
    ids = []
    for _ in range(2):
        gone = txt(f"gone{secrets.token_hex(3)}", "x", service_id=zone.id, kind="dns_record_delete")
        ids.append(world.service.create(by, gone).id)
        ex = world.executor()
        try:
            assert ex.wait_idle(20)
        finally:
            ex.close()
    first, second = (world.get(i, by) for i in ids)
    assert first.status == second.status == "failed"
    assert first.ticket_number is not None and second.ticket_number == first.ticket_number
    with world.db.read() as s:
        [ticket] = TicketRepository(s).for_account(account.id)
        messages = MessageRepository(s).messages(ticket.id, include_internal=True)
        files = [a.filename for m in messages for a in m.attachments]
    assert files == [f"change-{ids[0]}.log", f"change-{ids[1]}.log"]
    # The customer reads plain words; staff read what the host said.
    assert first.error == CUSTOMER_ERROR["failed"]
    assert [(a.output, a.error) for a in first.attempts] == [("Not applied.", CUSTOMER_ERROR["failed"])]  # fmt: skip # noqa: E501
    staff = world.get(ids[0], Principal(role="admin", name="Admin"))
    assert staff.error and staff.error != CUSTOMER_ERROR["failed"] and "gone" in staff.error
    with world.db.read() as s:
        public = [e.data for e in s.query(TimelineEntry).filter_by(account_id=account.id)
                  if e.kind == "change.failed"]  # fmt: skip
    assert [d["error"] for d in public] == [CUSTOMER_ERROR["failed"]] * 2


def test_self_service_changes_are_limited_per_account_and_hour(world: World) -> None:
    clock = Clock()
    config = ActorConfig(database_url=world.db.url, redis_url=REDIS_URL,
                         customer_changes_per_hour=2)  # fmt: skip
    service = ChangeService(world.db, config, now=clock)
    _, zone, by = world.customer()
    service.create(by, txt("one", "1", service_id=zone.id))
    clock.at += timedelta(minutes=30)
    service.create(by, txt("two", "2", service_id=zone.id))
    with pytest.raises(RateLimited) as limited:
        service.create(by, txt("three", "3", service_id=zone.id))
    assert limited.value.retry_after == 30 * 60 + 1
    admin = Principal(role="admin", name="Admin")
    service.create(admin, txt("staff", "s", service_id=zone.id))  # staff are not limited
    clock.at += timedelta(minutes=30, seconds=1)
    service.create(by, txt("three", "3", service_id=zone.id))


def test_what_each_tier_may_change_and_aliases_of_the_accounts_domains(world: World) -> None:
    account, _, _ = world.customer()
    domain = f"w{secrets.token_hex(4)}.test"
    with world.db.write() as s:
        site = AccountRepository(s).add_service(
            account.id, kind="web_hosting", name=domain, host_id=world.host_row.id
        )
    l1, t1 = agent_principal(world, 1, account)
    l2, t2 = agent_principal(world, 2, account)

    def vhost(ticket: str, *aliases: str) -> NewChange:
        return NewChange(service_id=site.id, kind="vhost_create", ticket=ticket,
                         params={"aliases": list(aliases)})  # fmt: skip

    with pytest.raises(NotAllowed, match="level 2"):
        world.service.plan_target(l1, vhost(t1))
    with pytest.raises(NotAllowed, match="level 3"):
        world.service.plan_target(
            l2, NewChange(service_id=site.id, kind="account_suspend", ticket=t2, params={})
        )
    ok = world.service.plan_target(l2, vhost(t2, f"www.{domain}", domain))
    assert ok.change.kind == "vhost_create"
    with pytest.raises(InvalidChange) as bad:
        world.service.plan_target(l2, vhost(t2, f"www.{domain}", "victim-bank.test"))
    assert bad.value.errors == [
        "aliases: 'victim-bank.test' is not one of the account's domains or a subdomain"
    ]
    with pytest.raises(InvalidChange):  # a suffix is not a subdomain
        world.service.plan_target(l2, vhost(t2, f"evil{domain}"))


@pytest.mark.parametrize(
    "params",
    [
        {"record": {"name": "a", "type": "TXT", "value": "x\x00y"}},
        {"record": {"name": "a", "type": "TXT", "value": "x\u2028y"}},
        {"a": {"b": {"c": {"d": {"e": {"f": {"g": 1}}}}}}},
        {"record": {"name": "a", "type": "TXT", "value": "x" * 300_000}},
        {"Bad Key": 1},
    ],
)
def test_change_params_are_bounded(params: dict[str, Any]) -> None:
    with pytest.raises(ValidationError) as err:
        NewChange(service_id=1, kind="dns_record_add", params=params)
    assert err.value.errors()[0]["loc"] == ("params",)
