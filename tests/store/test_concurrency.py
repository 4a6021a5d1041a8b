"""Concurrent writers on one ticket lose nothing (threads against the real database)."""

from __future__ import annotations

import threading

import pytest

from store.db import Database
from store.errors import ConflictError
from store.repositories import MessageRepository, TicketRepository, TimelineRepository
from tests.factories import make_account, make_ticket

WRITERS, EACH = 6, 15


def _run_threads(target: object, n: int) -> list[BaseException]:
    errors: list[BaseException] = []
    start = threading.Barrier(n)

    def wrapped(i: int) -> None:
        start.wait()
        try:
            target(i)  # type: ignore[operator]
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=wrapped, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return errors


def test_concurrent_messages_keep_every_message_and_the_count(db: Database) -> None:
    with db.write() as s:
        account = make_account(s)
        ticket_id = make_ticket(s, account).id

    def writer(i: int) -> None:
        for j in range(EACH):
            with db.write() as s:
                MessageRepository(s).add_message(
                    TicketRepository(s).get(ticket_id),
                    direction="inbound",
                    channel="email",
                    body=f"writer {i} message {j}",
                    author_name=f"w{i}",
                )

    assert _run_threads(writer, WRITERS) == []
    with db.read() as s:
        messages = MessageRepository(s).messages(ticket_id, include_internal=True)
        assert TicketRepository(s).get(ticket_id).message_count == WRITERS * EACH
    assert len(messages) == WRITERS * EACH
    assert len({m.body for m in messages}) == WRITERS * EACH


def test_concurrent_timeline_appends_are_all_kept_in_order(db: Database) -> None:
    with db.write() as s:
        account_id = make_account(s).id

    def writer(i: int) -> None:
        for j in range(EACH):
            with db.write() as s:
                TimelineRepository(s).append(account_id, kind="note", summary=f"{i}:{j}")

    assert _run_threads(writer, WRITERS) == []
    with db.read() as s:
        entries = TimelineRepository(s).page(account_id, limit=1000)
    assert len(entries) == WRITERS * EACH
    for i in range(WRITERS):  # each writer's own entries appear in the order it wrote them
        mine = [
            int(e.summary.split(":")[1]) for e in reversed(entries) if e.summary.startswith(f"{i}:")
        ]
        assert mine == list(range(EACH))


def test_a_stale_update_is_refused_not_silently_lost(db: Database) -> None:
    with db.write() as s:
        ticket_id = make_ticket(s, make_account(s)).id
    with db.read() as s1:
        stale = TicketRepository(s1).get(ticket_id)
        s1.expunge(stale)
    with db.write() as s2:
        TicketRepository(s2).get(ticket_id).priority = "urgent"
    with pytest.raises(ConflictError), db.write() as s3:
        merged = s3.merge(stale, load=False)
        merged.priority = "low"
    with db.read() as s:
        assert TicketRepository(s).get(ticket_id).priority == "urgent"
