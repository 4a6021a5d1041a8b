"""A host lane: applies one managed host's changes in order, exactly once, on its own thread.

``HostLane`` owns one host: a queue, one persistent SSH connection, and the host's health
(up, down, lock busy, host key mismatch). It takes every queued change (up to ``max_batch``, a
change isolated by a failed batch alone) and hands the batch to its ``BatchApplier``
(automation/executor/batch.py), which ships it in one round trip; each change's outcome is
reported through a callback as a ``ChangeOutcome``.

State: the queue, in memory only (and the applier's file cache), at most ``max_queue`` changes
(in a batch under way or waiting): one more is refused with ``LaneFull`` and stays with whoever
offered it (the executor shard leaves it queued in the SCDB). Recovery: the on-host journal
is the truth — after a timeout or a dropped connection the lane re-reads the journal for the
changes in doubt before retrying anything, and every script refuses ids already journaled.
Housekeeping: given a retention, a lane removes the host's journal entries older than that, at
most every ``journal_prune_every`` seconds, after a round trip that worked.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from automation.changes import ChangeBase
from automation.clients import Endpoint
from automation.executor.batch import BatchApplier, LockBusy, VerifyHook
from automation.executor.outcome import ChangeOutcome, HostStatus, LaneState, Status
from automation.executor.request import ChangeRequest, QueuedRequest
from automation.host import HostSpec
from automation.journal import prune_journal_script
from automation.plan import LOCK_WAIT
from automation.ssh import (
    HostKeyMismatch,
    HostUnreachable,
    OutcomeUnknown,
    SshConnection,
    SshError,
)

log = logging.getLogger(__name__)


class LaneFull(Exception):
    """The host's lane holds `max_queue` changes already: offer this one again later."""

    def __init__(self, host_id: str, limit: int) -> None:
        super().__init__(host_id, limit)
        self.host_id, self.limit = host_id, limit

    def __str__(self) -> str:
        return f"the lane of host {self.host_id} holds {self.limit} changes already"


class HostLane:
    """Applies one host's changes in order (see the module docstring)."""

    def __init__(
        self,
        spec: HostSpec,
        report: Callable[[ChangeOutcome], None],
        *,
        exec_timeout: float = 20.0,
        connect_timeout: float = 5.0,
        max_batch: int = 200,
        verify_hook: VerifyHook | None = None,
        backoff_base: float = 0.1,
        backoff_max: float = 2.0,
        lock_wait: float = LOCK_WAIT,
        journal_keep_days: float | None = None,
        journal_prune_every: float = 3600.0,
        max_queue: int = 1000,
    ) -> None:
        self.spec = spec
        self.max_queue = max_queue
        self.journal_keep_days = journal_keep_days  # None: the journal is kept whole
        self.journal_prune_every = journal_prune_every
        self._next_journal_prune = 0.0  # monotonic time; the first round trip that works prunes
        self.journal_pruned = 0
        self.report = report
        self.max_batch = max_batch
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.conn = SshConnection(spec, connect_timeout=connect_timeout)
        self._applier = BatchApplier(
            spec,
            self.conn,
            self._finish,
            exec_timeout=exec_timeout,
            # The script waits for the host's lock well inside the round trip's timeout, so a
            # busy lock is reported as such instead of as a host whose outcome is unknown.
            lock_wait=min(lock_wait, exec_timeout / 4),
            verify_hook=verify_hook,
        )
        self._queue: deque[QueuedRequest] = deque()
        self._cond = threading.Condition()
        self._stop = False
        self._busy = False
        self._failures = 0
        self.state: LaneState = "up"
        self.last_error: str | None = None
        self.lock_busy_since: dt.datetime | None = None
        self._thread = threading.Thread(target=self._run, name=f"lane-{spec.host_id}", daemon=True)

    # --- public ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def submit(self, request: ChangeRequest) -> None:
        """Queue a change; LaneFull (nothing taken) when the lane holds `max_queue` already."""
        with self._cond:
            if len(self._queue) >= self.max_queue:
                raise LaneFull(self.spec.host_id, self.max_queue)
            self._queue.append(QueuedRequest(request))
            self._cond.notify()

    @property
    def room(self) -> int:
        """How many more changes the lane takes now."""
        with self._cond:
            return max(0, self.max_queue - len(self._queue))

    def stop(self, timeout: float = 5.0) -> None:
        with self._cond:
            self._stop = True
            self._cond.notify()
        self._thread.join(timeout)
        self.conn.close()
        self.state = "stopped"

    @property
    def queued(self) -> int:
        with self._cond:
            return len(self._queue)

    def idle(self) -> bool:
        with self._cond:
            return not self._queue and not self._busy

    def status(self) -> HostStatus:
        return HostStatus(
            host_id=self.spec.host_id,
            state=self.state,
            queued=self.queued,
            last_error=self.last_error,
            lock_busy_since=self.lock_busy_since,
        )

    def dry_run(self, change: ChangeBase) -> str:
        """The exact script this change alone would send now (secrets redacted); read-only."""
        return self._applier.dry_run(change)

    def served_zone(self, zone: str) -> str:
        """The zone as the host's name server serves it now (AXFR text); read-only."""
        return self._applier.served_zone(zone)

    def read(self, paths: list[str]) -> dict[str, str | None]:
        """Files of the host as they are now (None: absent); read-only."""
        return self._applier.read(paths)

    @property
    def endpoint(self) -> Endpoint:
        return self._applier.endpoint

    # --- the loop ---------------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                while not self._queue and not self._stop:
                    self._cond.wait()
                if self._stop:
                    return
                batch = self._take()
                self._busy = True
            try:
                self._process(batch)
            except Exception as exc:  # a bug must not kill the lane silently
                log.exception("lane %s: unexpected error", self.spec.host_id)
                if len(batch) > 1:
                    # Retry them one by one, so that only the change that trips the bug fails
                    # (one already sent is recognised by the host's journal, never applied twice).
                    for item in batch:
                        item.solo = True
                else:
                    for item in batch:
                        self._finish(item, "failed", error=f"internal error: {exc!r}")
            finally:
                with self._cond:
                    self._busy = False

    def _take(self) -> list[QueuedRequest]:
        if self._queue[0].solo:
            return [self._queue[0]]
        batch: list[QueuedRequest] = []
        ids: set[str] = set()
        for item in self._queue:
            # a repeated id waits for the next round trip, where the journal answers it
            if item.solo or len(batch) >= self.max_batch or item.id in ids:
                break
            batch.append(item)
            ids.add(item.id)
        return batch

    def _finish(
        self, item: QueuedRequest, status: Status, *, output: str = "", error: str | None = None
    ) -> None:
        with self._cond:
            try:
                self._queue.remove(item)
            except ValueError:
                return
        self.report(
            ChangeOutcome(
                change_id=item.id,
                host_id=self.spec.host_id,
                kind=item.change.kind,
                status=status,
                attempts=max(item.attempts, 1),
                output=output,
                error=error,
            )
        )

    def _backoff(self, error: str) -> None:
        self.last_error = error
        self._failures += 1
        delay = min(self.backoff_base * 2 ** (self._failures - 1), self.backoff_max)
        with self._cond:
            self._cond.wait_for(lambda: self._stop, timeout=delay)

    def _process(self, batch: list[QueuedRequest]) -> None:
        try:
            self._settle(batch)
            self._applier.apply(batch)
            self._failures = 0
            self.state = "up"
            self.lock_busy_since = None
            self._prune_journal()
        except LockBusy as exc:
            self.state = "lock_busy"
            self.lock_busy_since = self.lock_busy_since or dt.datetime.now(dt.UTC)
            self._backoff(str(exc))
        except HostKeyMismatch as exc:
            self.state = "host_key_mismatch"
            self.last_error = str(exc)
            for item in batch:
                self._finish(item, "failed", error=str(exc))
        except HostUnreachable as exc:
            self.state = "down"
            for item in batch:
                item.attempts += 1
            self._backoff(str(exc))
        except OutcomeUnknown as exc:
            self.state = "down"
            self._applier.forget()
            self._backoff(str(exc))

    def _settle(self, batch: list[QueuedRequest]) -> None:
        """Changes whose last attempt had an unknown outcome: ask the journal before retrying."""
        doubtful = [i for i in batch if i.in_doubt]
        if not doubtful:
            return
        entries = self._applier.journal([i.id for i in doubtful])
        for item in doubtful:
            if item.id not in entries:
                item.in_doubt = False
        settled = [i for i in doubtful if i.id in entries]
        self._applier.journaled(settled, entries, applied="applied")
        batch[:] = [i for i in batch if not i.in_doubt and i in self._queue]

    def _prune_journal(self) -> None:
        """Remove the host's journal entries past their retention, if it is time to."""
        if self.journal_keep_days is None or time.monotonic() < self._next_journal_prune:
            return
        self._next_journal_prune = time.monotonic() + self.journal_prune_every
        script = prune_journal_script(self.spec.layout, self.journal_keep_days)
        try:
            status, text, _ = self._applier.run(script)
        except SshError as exc:  # the next round trip finds out what the host is up to
            log.warning("lane %s: pruning the journal failed: %s", self.spec.host_id, exc)
            return
        if status != 0 or not text.strip().isdigit():
            log.warning("lane %s: pruning the journal failed: %s", self.spec.host_id, text[-300:])
            return
        self.journal_pruned += int(text.strip())
