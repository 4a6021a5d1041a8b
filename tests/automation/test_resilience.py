"""Hosts that go down, hang or lie about their key; an executor killed mid-batch."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from automation.executor.executor import Executor
from automation.executor.outcome import OutcomeCollector
from automation.executor.request import ChangeRequest
from automation.host import HostSpec
from automation.local_hosts.host import LocalHost
from automation.local_hosts.sshd import LocalSshd
from tests.automation.conftest import ZONE, dns_add, journal, request
from tests.desk import wait_until
from tests.hosts import dig, lock_free


@pytest.fixture
def spare(tmp_path: Path) -> Iterator[LocalHost]:
    with LocalHost(tmp_path, "spare", zones=(ZONE,), with_nginx=False) as host:
        yield host


def records(host: LocalHost) -> list[str]:
    text = (host.root / "zones" / f"{ZONE}.zone").read_text()
    return [line for line in text.splitlines() if " TXT " in line]


class HeldCheck:
    """A zone check that, while `hold()` is on, stops every script in its middle: the new zone
    is installed and journaled, nothing checked or reloaded yet. `reached` appears once a
    script waits there, so that a test knows a batch is running on the host before it cuts."""

    def __init__(self, directory: Path) -> None:
        self.flag, self.reached = directory / "hold", directory / "reached"
        self.command = directory / "held-checkzone"
        self.command.write_text(
            "#!/bin/sh\n"
            f"if [ -e {self.flag} ]; then touch {self.reached}\n"
            f"  while [ -e {self.flag} ]; do sleep 0.01; done\nfi\n"
            'exec named-checkzone "$@"\n'
        )
        self.command.chmod(0o755)

    def spec(self, host: LocalHost) -> HostSpec:
        layout = host.layout().model_copy(update={"named_checkzone": (str(self.command),)})
        return host.spec().model_copy(update={"layout": layout})

    def hold(self) -> None:
        self.reached.unlink(missing_ok=True)
        self.flag.touch()

    def release(self) -> None:
        self.flag.unlink(missing_ok=True)


def entries(host: LocalHost) -> int:
    """How many change ids the host's journal holds."""
    return len(list(journal(host).iterdir())) if journal(host).is_dir() else 0


def test_down_host_holds_its_queue_and_drains(spare: LocalHost) -> None:
    col = OutcomeCollector()
    ex = Executor(col, exec_timeout=3.0, connect_timeout=1.0, backoff_max=0.3)
    ex.add_host(spare.spec())
    try:
        first = [request(spare, dns_add(f"a{i}", "TXT", f"a{i}")) for i in range(10)]
        ex.submit_many(first)
        col.wait([r.change_id for r in first])
        spare.stop_ssh()  # the host goes away with changes still coming
        later = [request(spare, dns_add(f"b{i}", "TXT", f"b{i}")) for i in range(20)]
        ex.submit_many(later)
        lane = ex.lane(spare.host_id)
        # The lane tried the host (up until now) and found it down: the changes are held.
        wait_until(lambda: lane.status().state == "down", what="the host seen down")
        assert not any(col.last(r.change_id) for r in later)  # held, not failed
        assert lane.queued == 20
        spare.start_ssh()
        got = col.wait([r.change_id for r in later], timeout=20)
        assert {o.status for o in got.values()} == {"applied"}
        assert max(o.attempts for o in got.values()) >= 2
        assert len(records(spare)) == 30
        assert dig(spare, "b19.example.com", "TXT") == ['"b19"']
    finally:
        ex.close()


def test_host_killed_mid_run_applies_each_change_once(spare: LocalHost, tmp_path: Path) -> None:
    check = HeldCheck(tmp_path)
    col = OutcomeCollector()
    ex = Executor(col, exec_timeout=5.0, connect_timeout=1.0, backoff_max=0.3, max_batch=5)
    ex.add_host(check.spec(spare))
    try:
        reqs = [request(spare, dns_add(f"k{i}", "TXT", f"k{i}")) for i in range(60)]
        ex.submit_many(reqs[:10])
        col.wait([r.change_id for r in reqs[:10]])
        check.hold()
        ex.submit_many(reqs[10:])
        wait_until(check.reached.exists, what="a batch stopped in its middle on the host")
        # Killed there, with its session: the batch's zone is installed and journaled in the
        # same step (before the check); the next attempt checks, reloads and reports it once.
        spare.stop_ssh()
        assert len(col.outcomes) == 10 and len(list(journal(spare).iterdir())) == 15
        check.release()
        spare.start_ssh()
        got = col.wait([r.change_id for r in reqs], timeout=30)
        assert {o.status for o in got.values()} == {"applied"}
        # The cut batch is settled from the journal, not sent again; made live by its reload.
        settled = [o for o in got.values() if o.output.startswith("journal: applied")]
        assert 1 <= len(settled) <= 5
        assert sorted(records(spare)) == sorted(set(records(spare)))
        assert len(records(spare)) == 60
        assert len(list(journal(spare).iterdir())) == 60
    finally:
        ex.close()


def test_frozen_host_stalls_only_its_own_lane(spare: LocalHost, hosts: list[LocalHost]) -> None:
    col = OutcomeCollector()
    ex = Executor(col, exec_timeout=1.5, connect_timeout=1.0, backoff_max=0.3)
    ex.add_host(spare.spec())
    ex.add_host(hosts[0].spec())
    try:
        warm = request(spare, dns_add("warm", "TXT", "warm"))
        ex.submit(warm)
        col.wait([warm.change_id])
        spare.freeze()  # SIGSTOP: TCP still accepts, nothing answers
        stuck = [request(spare, dns_add(f"f{i}", "TXT", f"f{i}")) for i in range(5)]
        ex.submit_many(stuck)
        lane = ex.lane(spare.host_id)
        wait_until(lambda: not lane.idle(), what="a round trip to the frozen host")
        others = [request(hosts[0], dns_add(f"free{i}", "TXT", "free")) for i in range(20)]
        ex.submit_many(others)
        # The other host's lane finishes while this one is still frozen: had it waited on
        # the frozen host, nothing of it could finish before the thaw below.
        got = col.wait([r.change_id for r in others], timeout=30)
        assert {o.status for o in got.values()} == {"applied"}
        assert not any(col.last(r.change_id) for r in stuck)
        spare.thaw()
        back = col.wait([r.change_id for r in stuck], timeout=20)
        assert {o.status for o in back.values()} == {"applied"}
        assert len(records(spare)) == 6
    finally:
        spare.thaw()
        ex.close()


def test_tampered_host_key_is_refused(hosts: list[LocalHost], tmp_path: Path) -> None:
    impostor = LocalSshd(tmp_path / "impostor")
    impostor._keys()
    h = hosts[1]
    spec = h.spec().model_copy(update={"host_key": impostor.host_key_line})
    col = OutcomeCollector()
    ex = Executor(col, exec_timeout=3.0)
    ex.add_host(spec)
    try:
        r = request(h, dns_add("evil", "A", "192.0.2.66"))
        ex.submit(r)
        out = col.wait([r.change_id])[r.change_id]
        assert out.status == "failed"
        assert "host key mismatch" in (out.error or "") and h.host_id in (out.error or "")
        assert ex.status()[0].state == "host_key_mismatch"
        assert dig(h, "evil.example.com", "A") == []
        assert not (journal(h) / r.change_id).exists()
    finally:
        ex.close()


_CHILD = """
import json, sys, threading
from automation.executor.request import ChangeRequest
from automation.executor.executor import Executor
from automation.executor.outcome import OutcomeCollector
from automation.host import HostSpec
spec = HostSpec.model_validate_json(sys.argv[1])
reqs = [ChangeRequest.model_validate(r) for r in json.loads(sys.stdin.read())]
ex = Executor(OutcomeCollector(), max_batch=7)
ex.add_host(spec)
ex.submit_many(reqs)
print("submitted", flush=True)
threading.Event().wait()
"""


def test_executor_killed_mid_batch_loses_nothing_applies_nothing_twice(
    spare: LocalHost, tmp_path: Path
) -> None:
    check = HeldCheck(tmp_path)
    reqs = [request(spare, dns_add(f"x{i}", "TXT", f"x{i}")) for i in range(150)]
    payload = json.dumps([r.model_dump(mode="json") for r in reqs])
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, check.spec(spare).model_dump_json()],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write(payload)
    child.stdin.close()
    assert child.stdout.readline().strip() == "submitted"
    wait_until(lambda: entries(spare) >= 20, what="some batches applied")
    check.hold()
    wait_until(check.reached.exists, what="a batch running on the host")
    # Mid-batch: its script waits on the host at the check, its files and journal in place.
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    done_before = entries(spare)
    assert 20 <= done_before < 150
    check.release()  # the orphaned script runs to its end (it ignores the lost connection)
    wait_until(lambda: lock_free(spare), what="the orphaned batch finished")
    assert entries(spare) == done_before  # journaled once, in the step that installed it
    # The caller's outbox resends everything to a new executor.
    col = OutcomeCollector()
    ex = Executor(col)
    ex.add_host(spare.spec())
    try:
        ex.submit_many([ChangeRequest.model_validate(r.model_dump()) for r in reqs])
        got = col.wait([r.change_id for r in reqs], timeout=30)
    finally:
        ex.close()
    statuses = [o.status for o in got.values()]
    assert set(statuses) <= {"applied", "already_applied"}
    assert statuses.count("already_applied") == done_before  # each one recognised, not redone
    assert len(records(spare)) == 150 and len(set(records(spare))) == 150
    assert len([p for p in journal(spare).iterdir() if not p.name.endswith(".tmp")]) == 150


def test_batch_with_a_rejected_zone_is_split_and_the_rest_applies(spare: LocalHost) -> None:
    spare.add_zone("bad.test")
    # The host's zone check rejects bad.test (as named-checkzone would reject a broken zone).
    reject = 'case "$5" in bad.test) echo "bad.test: rejected by policy"; exit 1;; esac'
    layout = spare.layout().model_copy(
        update={"named_checkzone": ("sh", "-c", f'{reject}; exec named-checkzone "$@"', "check")}
    )
    col = OutcomeCollector()
    ex = Executor(col)
    ex.add_host(spare.spec().model_copy(update={"layout": layout}))
    try:
        reqs = [
            request(spare, dns_add("ok1", "TXT", "ok1")),
            request(spare, dns_add("www", "A", "192.0.2.9", zone="bad.test")),
            request(spare, dns_add("ok2", "TXT", "ok2")),
        ]
        ex.submit_many(reqs)
        got = col.wait([r.change_id for r in reqs], timeout=30)
        assert [got[r.change_id].status for r in reqs] == ["applied", "failed", "applied"]
        assert "rejected by policy" in (got[reqs[1].change_id].error or "")
        assert dig(spare, "ok2.example.com", "TXT") == ['"ok2"']
        assert dig(spare, "www.bad.test", "A") == []
        assert "www" not in (spare.root / "zones/bad.test.zone").read_text()
    finally:
        ex.close()


def test_a_change_that_trips_a_bug_fails_alone(
    spare: LocalHost, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bug in one change's planning (an exception no rule expected) fails that change only,
    not the other tenants' changes that rode in the same batch."""
    from automation.changes.dns import DnsRecordAdd

    real_apply = DnsRecordAdd.apply

    def buggy(self: DnsRecordAdd, ws: Any) -> None:
        if self.record.value == "boom":
            raise RuntimeError("a bug in one change kind")
        real_apply(self, ws)

    monkeypatch.setattr(DnsRecordAdd, "apply", buggy)
    col = OutcomeCollector()
    ex = Executor(col, exec_timeout=10.0)
    ex.add_host(spare.spec())
    try:
        reqs = [request(spare, dns_add(f"t{i}", "TXT", "boom" if i == 2 else f"t{i}"))
                for i in range(5)]  # fmt: skip
        ex.submit_many(reqs)
        got = col.wait([r.change_id for r in reqs], timeout=30)
        assert got[reqs[2].change_id].status == "failed"
        assert "internal error" in (got[reqs[2].change_id].error or "")
        assert {got[r.change_id].status for i, r in enumerate(reqs) if i != 2} == {"applied"}
        assert dig(spare, "t4.example.com", "TXT") == ['"t4"']
    finally:
        ex.close()
