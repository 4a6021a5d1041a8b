"""The host journal is kept for its retention: a lane removes older entries on the host, after
a round trip that worked (the host's clock is set back for the test by the entries' times)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from automation.executor.executor import Executor
from automation.executor.outcome import OutcomeCollector
from automation.local_hosts.host import LocalHost
from tests.automation.conftest import ZONE, dns_add, journal, request
from tests.desk import wait_until

DAY = 24 * 3600.0


@pytest.fixture
def host(tmp_path: Path) -> Iterator[LocalHost]:
    with LocalHost(tmp_path, "journal", zones=(ZONE,), with_nginx=False) as h:
        yield h


def age(entry: Path, days: float) -> None:
    """Make a journal entry look `days` old to the host."""
    then = time.time() - days * DAY
    os.utime(entry, (then, then))


def apply(ex: Executor, col: OutcomeCollector, host: LocalHost, label: str) -> Path:
    r = request(host, dns_add(label, "TXT", label))
    ex.submit(r)
    assert col.wait([r.change_id])[r.change_id].status == "applied"
    return journal(host) / r.change_id


def test_entries_past_the_retention_are_removed_on_the_host(host: LocalHost) -> None:
    col = OutcomeCollector()
    ex = Executor(col, journal_keep_days=90, journal_prune_every=0.0)
    ex.add_host(host.spec())
    try:
        old, recent = apply(ex, col, host, "old"), apply(ex, col, host, "recent")
        age(old, 91)
        age(recent, 89)
        fresh = apply(ex, col, host, "fresh")  # the round trip after which the lane prunes
        lane = ex.lane(host.host_id)
        wait_until(lambda: lane.journal_pruned == 1, what="the journal pruned")
        assert not old.exists() and recent.exists() and fresh.exists()
    finally:
        ex.close()


def test_a_lane_prunes_at_most_every_interval_and_not_without_a_retention(
    host: LocalHost,
) -> None:
    col = OutcomeCollector()
    ex = Executor(col, journal_keep_days=90, journal_prune_every=3600.0)
    ex.add_host(host.spec())
    try:
        first = apply(ex, col, host, "first")  # the first round trip prunes (nothing yet)
        assert ex.wait_idle(10)  # the lane is done with that round, its pruning included
        age(first, 91)
        apply(ex, col, host, "second")
        assert ex.wait_idle(10) and first.exists()  # not again within the hour
    finally:
        ex.close()
    col = OutcomeCollector()
    keep = Executor(col, journal_prune_every=0.0)  # no retention given: the journal stays whole
    keep.add_host(host.spec())
    try:
        apply(keep, col, host, "third")
        assert keep.wait_idle(10) and first.exists()
    finally:
        keep.close()
