"""The executor: many host lanes, one thread each, so that a host that is down or frozen holds
only its own queue. Outcomes are reported through a callback as ``ChangeOutcome`` models."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from automation.changes import ChangeBase
from automation.clients import Endpoint
from automation.executor.batch import VerifyHook
from automation.executor.lane import HostLane
from automation.executor.outcome import ChangeOutcome, HostStatus
from automation.executor.request import ChangeRequest
from automation.host import HostSpec


class Executor:
    """Many host lanes, one thread each; outcomes go to ``on_outcome`` (called from lane threads).

    ``verify_hook`` (tests) may return a reason to force a change's verification to fail.
    """

    def __init__(
        self,
        on_outcome: Callable[[ChangeOutcome], None],
        *,
        exec_timeout: float = 20.0,
        connect_timeout: float = 5.0,
        max_batch: int = 200,
        verify_hook: VerifyHook | None = None,
        backoff_max: float = 2.0,
        journal_keep_days: float | None = None,
        journal_prune_every: float = 3600.0,
        max_queue: int = 1000,
    ) -> None:
        self.on_outcome = on_outcome
        self.max_queue = max_queue  # changes each host lane holds (HostLane.max_queue)
        self.journal_keep_days = journal_keep_days
        self.journal_prune_every = journal_prune_every
        self._opts = dict(
            exec_timeout=exec_timeout,
            connect_timeout=connect_timeout,
            max_batch=max_batch,
            backoff_max=backoff_max,
        )
        self.verify_hook = verify_hook
        self._lanes: dict[str, HostLane] = {}
        self._lock = threading.Lock()

    def add_host(self, spec: HostSpec) -> None:
        """Register (or re-register with new details) a managed host."""
        with self._lock:
            old = self._lanes.pop(spec.host_id, None)
        if old is not None:
            old.stop()
        lane = HostLane(
            spec,
            self.on_outcome,
            exec_timeout=float(self._opts["exec_timeout"]),
            connect_timeout=float(self._opts["connect_timeout"]),
            max_batch=int(self._opts["max_batch"]),
            backoff_max=float(self._opts["backoff_max"]),
            verify_hook=self.verify_hook,
            journal_keep_days=self.journal_keep_days,
            journal_prune_every=self.journal_prune_every,
            max_queue=self.max_queue,
        )
        lane.start()
        with self._lock:
            self._lanes[spec.host_id] = lane

    def remove_host(self, host_id: str) -> None:
        with self._lock:
            lane = self._lanes.pop(host_id, None)
        if lane is not None:
            lane.stop()

    def lane(self, host_id: str) -> HostLane:
        with self._lock:
            lane = self._lanes.get(host_id)
        if lane is None:
            raise KeyError(f"unknown host {host_id}")
        return lane

    def submit(self, request: ChangeRequest) -> None:
        self.lane(request.host_id).submit(request)

    def submit_many(self, requests: list[ChangeRequest]) -> None:
        for r in requests:
            self.submit(r)

    def dry_run(self, host_id: str, change: ChangeBase) -> str:
        return self.lane(host_id).dry_run(change)

    def served_zone(self, host_id: str, zone: str) -> str:
        return self.lane(host_id).served_zone(zone)

    def read(self, host_id: str, paths: list[str]) -> dict[str, str | None]:
        return self.lane(host_id).read(paths)

    def endpoint(self, host_id: str) -> Endpoint:
        """Where the services' clients reach this host (and its read-only shell)."""
        return self.lane(host_id).endpoint

    def status(self) -> list[HostStatus]:
        with self._lock:
            lanes = list(self._lanes.values())
        return [lane.status() for lane in lanes]

    def wait_idle(self, timeout: float = 30.0, host_ids: list[str] | None = None) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                lanes = [ln for h, ln in self._lanes.items() if host_ids is None or h in host_ids]
            if all(lane.idle() for lane in lanes):
                return True
            time.sleep(0.01)
        return False

    def close(self) -> None:
        with self._lock:
            lanes = list(self._lanes.values())
            self._lanes.clear()
        for lane in lanes:
            lane.stop()
