"""Bounded queues in the actors, pushed past on real Ray actors over the real SCDB and Redis:
the intake refuses what it has no room for (and files all it took), a tier pool keeps only a
window of its queue in memory (and still assigns every waiting ticket), and the outbox drains
hold one batch at a time while Redis and the mail relay are down (and lose nothing)."""

from __future__ import annotations

import secrets
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
import ray
from sqlalchemy import func, select

from actors import names
from actors.config import ActorConfig, QueueLimits
from actors.errors import QueueFull, as_raised
from actors.mail.settings import MailSettings
from actors.notify.mail_actor import MailOut
from actors.notify.notifier import Notifier
from actors.principal import SYSTEM, Principal
from actors.tickets.dto import NewTicket
from actors.tickets.intake import Intake
from actors.tickets.lifecycle import queued
from actors.tickets.service import TicketService
from actors.tickets.tier_pool import TierPool
from store.db import Database
from store.models import MailDelivery, OutboxEvent, Ticket, TicketEvent
from tests.backpressure import RedisServer, holding_the_write_lock
from tests.conftest import MAIL_ADDRESSES, MAIL_SECRET, REDIS_URL
from tests.desk import Desk, wait_until
from tests.factories import make_account, make_agent, make_contact, make_customer, make_ticket
from tests.smtp_sink import SmtpSink

pytestmark = pytest.mark.ray

# The tests of one actor over a database of their own need one backend only: the bound is the
# actor's, and the session's SQLite SCDB is the cheapest.
SQLITE = pytest.mark.parametrize("migrated_db", ["sqlite"], indirect=True)


@pytest.fixture
def actors() -> Iterator[list[Any]]:
    """Actors a test starts (in a namespace of its own), killed when it ends."""
    made: list[Any] = []
    yield made
    for handle in made:
        ray.kill(handle, no_restart=True)


def start(made: list[Any], cls: type, *args: Any, name: str, namespace: str) -> Any:
    handle = (
        ray.remote(cls)
        .options(name=name, namespace=namespace, num_cpus=0, max_concurrency=100)
        .remote(*args)
    )
    made.append(handle)
    ray.get(handle.__ray_ready__.remote())
    return handle


def subjects(db: Database, account_id: int) -> Counter[str]:
    with db.read() as s:
        return Counter(s.scalars(select(Ticket.subject).where(Ticket.account_id == account_id)))


def test_the_intake_refuses_past_its_bound_and_files_every_ticket_it_took(
    desk: Desk, actors: list[Any]
) -> None:
    config = desk.deployment.config.model_copy(update={"queues": QueueLimits(intake_queue_max=3)})
    tag = secrets.token_hex(3)
    intake = start(actors, Intake, config, name=f"bounded-intake-{tag}",
                   namespace=config.namespace)  # fmt: skip
    account, _ = desk.customer("Bounded intake")
    items = [
        NewTicket(account_id=account.id, subject=f"Held {tag} {i}", body="Phoned in",
                  channel="phone", requester=SYSTEM)
        for i in range(6)
    ]  # fmt: skip
    with holding_the_write_lock(desk.db):  # the group commit can not finish meanwhile
        refs = [intake.create.remote(item) for item in items]
        refused, held = ray.wait(refs, num_returns=3, timeout=30)
        assert len(refused) == 3, "three of six calls should be refused at once"
        for ref in refused:
            with pytest.raises(QueueFull) as exc:
                ray.get(ref)
            err = as_raised(exc.value)
            assert (err.code, err.status, err.retry_after) == ("intake_full", 503, 1)
        stats = ray.get(intake.stats.remote())
        assert stats["held"] == 3 and stats["refused"] == 3
    filed = ray.get(held, timeout=30)  # what it took is committed once the lock is free
    assert len({t.number for t in filed}) == 3
    index = {ref: i for i, ref in enumerate(refs)}
    took = {items[index[ref]].subject for ref in held}
    assert subjects(desk.db, account.id) == Counter(took)  # nothing refused was filed
    # The refused calls, sent again (as the door's client would): each filed once.
    again = ray.get([intake.create.remote(items[index[ref]]) for ref in refused])
    assert len(again) == 3
    assert subjects(desk.db, account.id) == Counter(item.subject for item in items)
    assert ray.get(intake.stats.remote())["held"] == 0


@SQLITE
def test_a_pool_keeps_a_window_of_its_queue_and_assigns_every_waiting_ticket(
    db: Database, ray_session: None, actors: list[Any]
) -> None:
    ns = f"bounds-pool-{secrets.token_hex(3)}"
    config = ActorConfig(database_url=db.url, redis_url=REDIS_URL, namespace=ns,
                         queues=QueueLimits(pool_queue_max=4))  # fmt: skip
    with db.write() as s:
        account = make_account(s)
        agent_id = make_agent(s, 1, capacity=100, skills=["general"]).id  # offline
        ids = [make_ticket(s, account, subject=f"Waiting {i}").id for i in range(10)]
    pool = start(actors, TierPool, 1, config, name=names.tier_pool(1), namespace=ns)
    snap = ray.get(pool.snapshot.remote())
    assert snap["waiting"] == ids[:4] and snap["more_in_scdb"]  # the first four, in order
    # Handed more than the window holds: it keeps the first in queue order, the rest wait in
    # the SCDB (an urgent ticket goes first, a late normal one stays out).
    with db.write() as s:
        urgent = make_ticket(s, account, subject="Urgent", priority="urgent")
        late = make_ticket(s, account, subject="Late")
    ray.get(pool.enqueue.remote([queued(urgent), queued(late)]))
    snap = ray.get(pool.snapshot.remote())
    assert snap["waiting"] == sorted([urgent.id, *ids[:3]]) and snap["more_in_scdb"]
    everyone = [*ids, urgent.id, late.id]

    ray.get(pool.set_presence.remote(agent_id, "online"))

    def unowned() -> int:
        with db.read() as s:
            return int(
                s.scalar(select(func.count()).where(Ticket.id.in_(everyone),
                                                    Ticket.owner_agent_id.is_(None))) or 0
            )  # fmt: skip

    wait_until(lambda: unowned() == 0, timeout=30, what="every waiting ticket assigned")
    with db.read() as s:
        assigned = Counter(
            s.scalars(select(TicketEvent.ticket_id).where(TicketEvent.kind == "assigned"))
        )
    assert assigned == Counter(everyone)  # each once
    snap = ray.get(pool.snapshot.remote())
    assert snap["waiting"] == [] and not snap["more_in_scdb"]
    assert snap["agents"][agent_id]["owned"] == sorted(everyone)


@SQLITE
def test_the_outbox_drains_hold_one_batch_while_redis_and_the_relay_are_down(
    db: Database, ray_session: None, actors: list[Any]
) -> None:
    redis_server = RedisServer()  # not started yet: Redis is down
    relay = SmtpSink()  # not started yet: the relay refuses connections
    ns = f"bounds-outbox-{secrets.token_hex(3)}"
    mail = MailSettings(
        mail_secret=MAIL_SECRET.hex(), mail_addresses=MAIL_ADDRESSES,
        mail_from="support@sitedesk.test", mail_domain="sitedesk.test",
        smtp_relay=f"smtp://127.0.0.1:{relay.port}", mail_retry_seconds=0.5,
    )  # fmt: skip
    batch = 20
    config = ActorConfig(
        database_url=db.url, redis_url=redis_server.url, namespace=ns, mail=mail,
        queues=QueueLimits(outbox_publish_batch=batch, outbox_mail_batch=batch),
        customer_tickets_per_hour=0,
    )  # fmt: skip
    with db.write() as s:
        account = make_account(s)
        contact = make_contact(s, account, is_primary=True)
        user = make_customer(s, account, contact_id=contact.id, email=contact.email)
        by = Principal(user_id=user.id, role="customer", name="C", account_id=account.id,
                       via="api")  # fmt: skip
    # 40 tickets: 40 outbox rows, two batches' worth, waiting while nothing can take them.
    items = [
        NewTicket(account_id=account.id, subject=f"Outage {i}", body="Down?", channel="api",
                  requester=by)
        for i in range(40)
    ]  # fmt: skip
    filed = TicketService(db, config).create_many(items)
    assert not [r for r in filed if isinstance(r, Exception)]
    with db.read() as s:
        rows = int(s.scalar(select(func.count()).select_from(OutboxEvent)) or 0)
    assert rows >= 40
    notifier = start(actors, Notifier, config, name=names.NOTIFIER, namespace=ns)
    mailer = start(actors, MailOut, config, name=names.MAILER, namespace=ns)
    try:

        def deliveries() -> list[tuple[str, int]]:
            with db.read() as s:
                return [tuple(r) for r in s.execute(select(MailDelivery.status,  # type: ignore[misc]
                                                           MailDelivery.attempts))]  # fmt: skip

        wait_until(lambda: ray.get(notifier.stats.remote())["failed_drains"] >= 1,
                   what="the notifier to find Redis down")  # fmt: skip
        # Every row planned (in batches: one opening mail a ticket), none sent; the relay's
        # refusal tried once per wait, not once per mail: the others' attempts are unspent.
        wait_until(lambda: len(d := deliveries()) >= len(items) and any(a >= 1 for _, a in d),
                   what="every mail planned and the absent relay tried")  # fmt: skip
        planned = deliveries()
        assert {status for status, _ in planned} == {"queued"}
        assert sum(a == 0 for _, a in planned) >= len(planned) - 3
        with db.read() as s:
            waiting = s.scalar(select(func.count()).where(OutboxEvent.published_at.is_(None)))
        assert waiting == rows  # nothing marked published while Redis took nothing
        redis_server.start()
        relay.start()

        def drained() -> bool:
            with db.read() as s:
                left = s.scalar(select(func.count()).where(OutboxEvent.published_at.is_(None)))
            return left == 0 and {st for st, _ in deliveries()} == {"sent"}

        wait_until(drained, timeout=30, what="the outbox published and every mail sent")
        ids = [r.message()["Message-ID"] for r in relay.received]
        assert len(ids) == len(planned) and len(set(ids)) == len(ids)  # each mail once
        published = ray.get(notifier.stats.remote())
        assert published["published"] == rows  # each row once (no crash: no repeat)
        # What either drain held at once never passed its bound, however long the outage.
        assert published["largest_drain"] == batch
        assert ray.get(mailer.stats.remote())["largest_batch"] == batch
    finally:
        relay.stop()
        redis_server.stop()
