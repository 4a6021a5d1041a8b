"""What the executor reports: a change's ``ChangeOutcome`` (with its ``Status``), a host's
``HostStatus``, and ``OutcomeCollector``, a callback that keeps outcomes by change id."""

from __future__ import annotations

import datetime as dt
import threading
import time
from typing import Literal

from pydantic import BaseModel

Status = Literal["applied", "already_applied", "failed", "rolled_back", "unknown"]


class ChangeOutcome(BaseModel):
    change_id: str
    host_id: str
    kind: str
    status: Status
    attempts: int
    output: str = ""
    error: str | None = None


LaneState = Literal["up", "down", "lock_busy", "host_key_mismatch", "stopped"]


class HostStatus(BaseModel):
    """A host's health. ``lock_busy``: the host's automation lock has been held by someone else
    for longer than a script waits for it (``lock_busy_since`` says since when, ``last_error``
    who holds it); its changes wait meanwhile."""

    host_id: str
    state: LaneState
    queued: int
    last_error: str | None = None
    lock_busy_since: dt.datetime | None = None


class OutcomeCollector:
    """A thread-safe callback that keeps outcomes by change id (tests, bench, simple callers)."""

    def __init__(self) -> None:
        self.outcomes: dict[str, list[ChangeOutcome]] = {}
        self._cond = threading.Condition()

    def __call__(self, outcome: ChangeOutcome) -> None:
        with self._cond:
            self.outcomes.setdefault(outcome.change_id, []).append(outcome)
            self._cond.notify_all()

    def last(self, change_id: str) -> ChangeOutcome | None:
        with self._cond:
            got = self.outcomes.get(change_id)
            return got[-1] if got else None

    def wait(self, change_ids: list[str], timeout: float = 30.0) -> dict[str, ChangeOutcome]:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                if all(i in self.outcomes for i in change_ids):
                    return {i: self.outcomes[i][-1] for i in change_ids}
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    missing = [i for i in change_ids if i not in self.outcomes]
                    raise TimeoutError(f"no outcome for {len(missing)} changes: {missing[:5]}")
                self._cond.wait(remaining)
