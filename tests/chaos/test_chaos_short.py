"""The chaos ledger, short (bench/chaos.py runs the long one): `sitedesk up` on its own
PostgreSQL, Redis and Ray head, a small mixed load through the public doors (tickets, replies,
self-service changes over HTTP, mail over SMTP, live streams), and one fault of each component
class: an actor killed, the gateway killed and restarted, Redis and PostgreSQL restarted, a
managed host's sshd killed, a host frozen with SIGSTOP. Nothing acknowledged is lost or doubled,
every stream sees every event of its audience in order, and while a part is down the doors
answer 503 with Retry-After (SMTP 451), never a 500 or a hang."""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest

from bench._chaos import Load, run_chaos

FAULTS = [
    "kill -9 account sessions",
    "kill -9 gateway",
    "Redis restart",
    "PostgreSQL restart",
    "sshd killed",
    "host frozen (SIGSTOP)",
]
READY_WITHIN_SECONDS = 90  # the gateway restart is the slowest: `sitedesk up` joining Ray


@pytest.mark.timeout(900)
def test_nothing_acknowledged_is_lost_while_every_component_is_struck() -> None:
    base = Path(tempfile.mkdtemp(prefix="chaos-", dir=os.environ.get("SITEDESK_TEST_TMP")))
    t0 = time.monotonic()
    try:
        outcome = run_chaos(
            base,
            Load(customers=3, phone_agents=1, streams=2, change_every=4.0),
            FAULTS,
            settle=1.0,
            gap=0.5,
            warmup=2.0,
        )
    finally:
        shutil.rmtree(base, ignore_errors=True)
    print(outcome.text)
    print(f"chaos short: {time.monotonic() - t0:.0f} s")
    run, report = outcome.run, outcome.report
    problems = "\n".join(f"{what} [{fault}]: {detail}" for fault, what, detail in report.problems)
    assert not report.problems, problems  # lost, doubled, gaps, out of order
    assert not run.ledger.errors, run.ledger.errors  # a 500, a 503 without Retry-After, a hang
    acked = [r for r in run.ledger.requests if r.final == "acked"]
    kinds = {r.kind for r in acked}
    assert kinds >= {"ticket", "phone_ticket", "reply", "change", "mail"}, kinds
    assert all(r.final != "given_up" for r in run.ledger.requests)

    # While PostgreSQL and Redis were down, each door said so: 503 with Retry-After, mail 451
    # (Redis down: the intake takes mail without it).
    probes = {(fault, what): (code, after) for fault, what, code, after, _ in run.down_probes}
    for fault in ("PostgreSQL restart", "Redis restart"):
        for what in ("GET /api/v1/tickets", "POST /api/v1/tickets"):
            code, after = probes[(fault, what)]
            assert code == 503 and after, (fault, what, run.down_probes)
    assert probes[("PostgreSQL restart", "SMTP DATA")][0] == 451, run.down_probes

    for fault in run.faults:
        assert fault.ready_after < READY_WITHIN_SECONDS, fault
