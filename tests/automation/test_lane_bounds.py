"""A host lane holds a bounded queue: pushed past it on a real local host (sshd + named), the
change beyond is refused and nothing it took is lost. An executor shard leaves what its lanes
have no room for queued in the SCDB and hands it over as they drain; a request for a host
whose queue is full is refused (503 `host_queue_full`) before anything is recorded."""

from __future__ import annotations

import secrets
from typing import Any

import pytest

from actors.changes.dto import NewChange
from actors.changes.executor import ChangeExecutor
from actors.changes.hosts import HostRegistry
from actors.changes.requests import ChangeService
from actors.changes.settle import ChangeSettler
from actors.config import ActorConfig, QueueLimits
from actors.errors import QueueFull, as_raised
from actors.principal import Principal
from automation.executor.executor import Executor
from automation.executor.lane import LaneFull
from automation.executor.outcome import OutcomeCollector
from automation.local_hosts.host import LocalHost
from store.db import Database
from store.models import ChangeRequest
from store.repositories import AccountRepository
from tests.automation.conftest import ZONE, dns_add, journal, request
from tests.conftest import REDIS_URL
from tests.desk import wait_until
from tests.factories import make_account, make_customer
from tests.hosts import dig, holding_the_lock, new_host


def primed(host: LocalHost) -> LocalHost:
    """The host after one round trip, which makes its automation lock file (to hold it)."""
    if not (host.root / ".gdcas" / "lock").exists():
        col = OutcomeCollector()
        ex = Executor(col, exec_timeout=5.0, connect_timeout=2.0)
        ex.add_host(host.spec())
        try:
            first = request(host, dns_add(f"prime{secrets.token_hex(3)}", "TXT", "prime"))
            ex.submit(first)
            assert col.wait([first.change_id])[first.change_id].status == "applied"
        finally:
            ex.close()
    return host


def test_a_lane_past_its_bound_refuses_and_applies_all_it_took(hosts: list[LocalHost]) -> None:
    host = primed(hosts[0])
    col = OutcomeCollector()
    ex = Executor(col, exec_timeout=5.0, connect_timeout=2.0, backoff_max=0.3, max_queue=3)
    ex.add_host(host.spec())
    tag = secrets.token_hex(3)
    reqs = [request(host, dns_add(f"bound{tag}{i}", "TXT", f"v{i}")) for i in range(5)]
    try:
        lane = ex.lane(host.host_id)
        # Another tool holds the host's lock: the lane's first batch waits there, so what it
        # took stays in its queue, and the bound is met for certain.
        with holding_the_lock(host):
            for r in reqs[:3]:
                ex.submit(r)
            assert lane.room == 0
            for r in reqs[3:]:
                with pytest.raises(LaneFull):
                    ex.submit(r)
            assert lane.status().queued == 3  # the refused ones are not held either
        done = col.wait([r.change_id for r in reqs[:3]])
        assert {o.status for o in done.values()} == {"applied"}
        for i, r in enumerate(reqs):
            applied = i < 3
            assert (journal(host) / r.change_id).exists() is applied
            assert dig(host, f"bound{tag}{i}.{ZONE}") == ([f'"v{i}"'] if applied else [])
        assert col.last(reqs[3].change_id) is None  # refused: never reported, never applied
        # Offered again once there is room (as the executor shard does): applied once each.
        for r in reqs[3:]:
            ex.submit(r)
        again = col.wait([r.change_id for r in reqs[3:]])
        assert {o.status for o in again.values()} == {"applied"}
        assert dig(host, f"bound{tag}4.{ZONE}") == ['"v4"']
    finally:
        ex.close()


class Shard:
    """A change-executor shard (plain object) on the SCDB, over the host, telling no actor."""

    def __init__(self, db: Database, host: LocalHost, **queues: Any) -> None:
        self.db = db
        self.config = ActorConfig(
            database_url=db.url, redis_url=REDIS_URL, queues=QueueLimits(**queues)
        )
        self.changes = ChangeService(db, self.config)
        self.registry = HostRegistry(db)
        self.host = self.registry.register_host(new_host(host))
        with db.write() as s:
            account = make_account(s)
            user = make_customer(s, account)
            self.zone = AccountRepository(s).add_service(
                account.id, kind="dns_zone", name=ZONE, host_id=self.host.id
            )
            self.by = Principal(user_id=user.id, role="customer", name="C", account_id=account.id)

    def request(self, label: str) -> str:
        change = NewChange(
            service_id=self.zone.id,
            kind="dns_record_add",
            params={"record": {"name": label, "type": "TXT", "value": label}},
        )
        return self.changes.create(self.by, change).id

    def executor(self, lane_queue_max: int) -> ChangeExecutor:
        return ChangeExecutor(
            0, 1, self.db, changes=self.changes, settler=ChangeSettler(self.db, self.config),
            registry=self.registry, sweep_seconds=60.0, exec_timeout=5.0, connect_timeout=2.0,
            backoff_max=0.3, lane_queue_max=lane_queue_max,
        )  # fmt: skip

    def statuses(self, ids: list[str]) -> list[str]:
        with self.db.read() as s:
            return [s.get(ChangeRequest, i).status for i in ids]  # type: ignore[union-attr]


def test_an_executor_leaves_what_its_lane_has_no_room_for_queued_then_applies_it(
    db: Database, hosts: list[LocalHost]
) -> None:
    host = primed(hosts[1])
    shard = Shard(db, host, host_queue_max=50)
    tag = secrets.token_hex(3)
    ids = [shard.request(f"wait{tag}{i}") for i in range(5)]  # acknowledged: queued in the SCDB
    with holding_the_lock(host):
        ex = shard.executor(lane_queue_max=2)  # on start it hands its hosts' pending changes over
        try:
            lane = ex.executor.lane(shard.host.name)
            assert lane.status().queued == 2 and ex.backlog == {shard.host.id}
            # What did not fit is untouched in the SCDB (not marked applying), waiting.
            assert sorted(shard.statuses(ids)) == ["applying"] * 2 + ["queued"] * 3
            assert ex.submit(ids) == 0  # handed over again: still no room, nothing taken
        except BaseException:
            ex.close()
            raise
    try:
        # The lane drains; as its outcomes are recorded the shard hands the rest over (the
        # sweep, every 60 s here, is not what does it).
        wait_until(lambda: shard.statuses(ids) == ["applied"] * 5, timeout=30,
                   what="every acknowledged change applied")  # fmt: skip
    finally:
        ex.close()
    for i, change_id in enumerate(ids):
        assert (journal(host) / change_id).exists()
        assert dig(host, f"wait{tag}{i}.{ZONE}") == [f'"wait{tag}{i}"']
    assert not ex.backlog


def test_a_request_for_a_host_with_a_full_queue_is_refused_before_it_is_recorded(
    db: Database, hosts: list[LocalHost]
) -> None:
    shard = Shard(db, hosts[1], host_queue_max=3)
    tag = secrets.token_hex(3)
    taken = [shard.request(f"full{tag}{i}") for i in range(3)]
    with pytest.raises(QueueFull) as refused:
        shard.request(f"full{tag}3")
    err = as_raised(refused.value)
    assert (err.code, err.status, err.retry_after) == ("host_queue_full", 503, 30)
    with db.read() as s:
        kept = s.query(ChangeRequest).filter(ChangeRequest.host_id == shard.host.id).count()
    assert kept == 3 and shard.statuses(taken) == ["queued"] * 3
    # One settles (applied, say): there is room for one more.
    with db.write() as s:
        row = s.get(ChangeRequest, taken[0])
        assert row is not None
        row.status = "applied"
    assert shard.request(f"full{tag}3")
    with pytest.raises(QueueFull):
        shard.request(f"full{tag}4")
