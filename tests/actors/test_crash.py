"""Actors killed mid-load lose nothing: every acknowledged ticket exists once and is assigned."""

from __future__ import annotations

import threading
import time
import uuid
from collections import Counter

import httpx
import pytest
from sqlalchemy import func, select

from actors import names
from store.models import Message, Ticket, TicketEvent
from tests.desk import Desk, wait_until

pytestmark = pytest.mark.ray

TICKETS = 120
MESSAGES = 40


def post_until_acknowledged(
    client: httpx.Client, url: str, body: dict[str, str], key: str
) -> httpx.Response:
    """What a careful client does: retry with the same Idempotency-Key until it gets an answer,
    after the wait a 503 asks for (Retry-After) while a component restarts."""
    for _ in range(50):
        try:
            r = client.post(url, json=body, headers={"Idempotency-Key": key})
        except httpx.TransportError:  # no answer within the client's timeout: ask again
            continue
        if r.status_code < 500:
            return r
        time.sleep(float(r.headers.get("Retry-After", "1")))
    raise AssertionError(f"no answer for {key}")


def loading(threads: list[threading.Thread]) -> bool:
    """Requests are in flight: some of the clients are still sending."""
    return any(t.is_alive() for t in threads)


def test_killing_pool_sessions_and_router_mid_load(desk: Desk) -> None:
    accounts = [desk.customer(f"Crash {i}") for i in range(4)]
    for _ in range(3):
        desk.agent(1, capacity=1000)
    acked: dict[str, str] = {}  # idempotency key -> ticket number
    lock = threading.Lock()

    def customer_load(token: str, n: int) -> None:
        with desk.http(token) as c:
            for i in range(n):
                key = str(uuid.uuid4())
                r = post_until_acknowledged(
                    c, "/api/v1/tickets", {"subject": f"Load {i}", "body": "crash test"}, key
                )
                assert r.status_code == 201, r.text
                with lock:
                    acked[key] = r.json()["number"]

    threads = [
        threading.Thread(target=customer_load, args=(token, TICKETS // len(accounts)))
        for _, token in accounts
    ]
    for t in threads:
        t.start()
    wait_until(lambda: len(acked) >= TICKETS // 4, what="load under way")
    d = desk.deployment
    assert loading(threads) and len(acked) < TICKETS  # the kills land mid-load
    d.kill(names.tier_pool(1))
    d.kill(names.session_shard(0))
    d.kill(names.session_shard(1))
    wait_until(lambda: len(acked) >= TICKETS // 2, what="load continues")
    assert loading(threads) and len(acked) < TICKETS
    d.kill(names.INTAKE)

    # Replies into the session shards while they are being killed again.
    numbers = list(acked.values())[:MESSAGES]
    owner_token = {}
    for account, token in accounts:
        owner_token[account.id] = token
    sent: dict[str, str] = {}

    def reply(number: str, token: str) -> None:
        key = str(uuid.uuid4())
        with desk.http(token) as c:
            r = post_until_acknowledged(
                c, f"/api/v1/tickets/{number}/messages", {"body": f"reply {key}"}, key
            )
        assert r.status_code == 201, r.text
        with lock:
            sent[key] = number

    with desk.db.read() as s:
        account_of = dict(s.execute(select(Ticket.id, Ticket.account_id)).all())
    repliers = [
        threading.Thread(target=reply, args=(n, owner_token[account_of[int(n[3:])]]))
        for n in numbers
    ]
    for t in repliers:
        t.start()
    assert loading(repliers) and len(sent) < len(numbers)  # replies on their way
    d.kill(names.session_shard(0))
    for t in threads + repliers:
        t.join(120)
        assert not t.is_alive()

    assert len(acked) == TICKETS // len(accounts) * len(accounts)
    account_ids = [a.id for a, _ in accounts]
    with desk.db.read() as s:
        rows = s.execute(
            select(Ticket.id, Ticket.subject).where(Ticket.account_id.in_(account_ids))
        )
        ids = [r[0] for r in rows]
    # Exactly once: as many tickets as acknowledged requests, each number acknowledged once.
    assert len(ids) == len(acked)
    assert sorted(f"TT-{i:06d}" for i in ids) == sorted(acked.values())

    def all_assigned() -> bool:
        with desk.db.read() as s:
            unowned = s.scalar(
                select(func.count()).where(
                    Ticket.account_id.in_(account_ids), Ticket.owner_agent_id.is_(None)
                )
            )
        return unowned == 0

    wait_until(all_assigned, timeout=30, what="every ticket assigned after the crashes")
    with desk.db.read() as s:
        assigned = Counter(
            s.scalars(
                select(TicketEvent.ticket_id).where(
                    TicketEvent.ticket_id.in_(ids), TicketEvent.kind == "assigned"
                )
            )
        )
        replies = Counter(s.scalars(select(Message.body).where(Message.body.like("reply %"))))
    assert set(assigned.values()) == {1}, "a ticket was assigned twice"
    assert len(assigned) == len(ids)
    for key in sent:  # every acknowledged reply exists exactly once
        assert replies[f"reply {key}"] == 1
