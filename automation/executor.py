"""Executors: one lane per managed host applies its changes in order, exactly once.

``HostLane`` owns one host: a queue, one persistent SSH connection, a cache of the managed files
it last saw or wrote. It takes every queued change (up to ``max_batch``), edits the files in
memory, and ships the result as one script: one rewrite per file, one check and one reload per
service, one journal entry per change id. A failed check splits the batch so each change stands
alone. After the apply the probes are judged; a change that fails verification is rolled back.

State: the queue and the file cache, in memory only. Recovery: the on-host journal is the truth —
after a timeout or a dropped connection the lane re-reads the journal for the changes in doubt
before retrying anything, and every script refuses ids already journaled. Housekeeping: given a
retention, a lane removes the host's journal entries older than that, at most every
``journal_prune_every`` seconds, after a round trip that worked.

``Executor`` holds many lanes (one thread each): a host that is down or frozen holds only its own
queue. Outcomes are reported through a callback as ``ChangeOutcome`` models.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, field_validator

from automation.changes import Change, ChangeBase, ProbeResults, Workspace
from automation.errors import ChangeConflict, ZoneError
from automation.host import HostSpec
from automation.journal import prune_journal_script
from automation.plan import (
    COMMAND,
    EXIT_CHECK,
    EXIT_JOURNALED,
    EXIT_LOCK,
    EXIT_RELOAD,
    EXIT_STALE,
    EXIT_SYMLINK,
    EXIT_WRITE,
    LOCK_WAIT,
    Script,
    content_hash,
    journal_script,
    parse_files,
    read_files_script,
    render,
    sections,
)
from automation.ssh import (
    HostKeyMismatch,
    HostUnreachable,
    OutcomeUnknown,
    SshConnection,
    SshError,
)

log = logging.getLogger(__name__)

_CHANGE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$")

Status = Literal["applied", "already_applied", "failed", "rolled_back", "unknown"]


class ChangeRequest(BaseModel):
    """A change to apply on one host, with its id (carried to the host's journal)."""

    model_config = ConfigDict(frozen=True)

    change_id: str
    host_id: str
    change: Change

    @field_validator("change_id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _CHANGE_ID.fullmatch(value):  # .match would let "id\n" through
            raise ValueError("change_id: 1-80 letters, digits, '_' or '-' (e.g. a UUID)")
        return value


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


class _LockBusy(Exception):
    """The host's automation lock stayed held longer than the script waited for it."""


VerifyHook = Callable[[ChangeRequest], str | None]


@dataclass
class _Item:
    request: ChangeRequest
    attempts: int = 0
    in_doubt: bool = False
    solo: bool = False

    @property
    def change(self) -> ChangeBase:
        return self.request.change

    @property
    def id(self) -> str:
        return self.request.change_id


def _redactions(changes: list[ChangeBase]) -> list[str]:
    out: list[str] = []
    for c in changes:
        out.extend(c.secret_hashes())
    return out


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
    ) -> None:
        self.spec = spec
        self.journal_keep_days = journal_keep_days  # None: the journal is kept whole
        self.journal_prune_every = journal_prune_every
        self._next_journal_prune = 0.0  # monotonic time; the first round trip that works prunes
        self.journal_pruned = 0
        # The script waits for the host's lock well inside the round trip's timeout, so a busy
        # lock is reported as such instead of as a host whose outcome is unknown.
        self.lock_wait = min(lock_wait, exec_timeout / 4)
        self.report = report
        self.exec_timeout = exec_timeout
        self.max_batch = max_batch
        self.verify_hook = verify_hook
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.conn = SshConnection(spec, connect_timeout=connect_timeout)
        self._queue: deque[_Item] = deque()
        self._cond = threading.Condition()
        self._stop = False
        self._busy = False
        self._failures = 0
        self._cache: dict[str, str | None] = {}
        self.state: LaneState = "up"
        self.last_error: str | None = None
        self.lock_busy_since: dt.datetime | None = None
        self._thread = threading.Thread(target=self._run, name=f"lane-{spec.host_id}", daemon=True)

    # --- public ---------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def submit(self, request: ChangeRequest) -> None:
        with self._cond:
            self._queue.append(_Item(request))
            self._cond.notify()

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
        files = self._read(list(dict.fromkeys(change.reads())))
        ws = Workspace(dict(files), self.spec.layout)
        change.apply(ws)
        script = self._script(ws, ["<change-id>"], {"<change-id>": f"applied {change.kind}"})
        return f"# {change.describe()}\n" + script.dry_run(_redactions([change]))

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

    def _take(self) -> list[_Item]:
        if self._queue[0].solo:
            return [self._queue[0]]
        batch: list[_Item] = []
        ids: set[str] = set()
        for item in self._queue:
            # a repeated id waits for the next round trip, where the journal answers it
            if item.solo or len(batch) >= self.max_batch or item.id in ids:
                break
            batch.append(item)
            ids.add(item.id)
        return batch

    def _finish(
        self, item: _Item, status: Status, *, output: str = "", error: str | None = None
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

    def _exec(self, script: str) -> tuple[int, str, bytes]:
        res = self.conn.run(COMMAND, stdin=script.encode(), timeout=self.exec_timeout)
        return res.exit_status, res.stdout + res.stderr, res.out

    def _read(self, paths: list[str]) -> dict[str, str | None]:
        if not paths:
            return {}
        status, text, raw = self._exec(read_files_script(self.spec.layout, paths))
        if status != 0:
            raise HostUnreachable(self.spec.host_id, f"reading files failed: {text[-500:]}")
        return parse_files(raw, paths)

    def _process(self, batch: list[_Item]) -> None:
        try:
            self._settle(batch)
            self._apply(batch)
            self._failures = 0
            self.state = "up"
            self.lock_busy_since = None
            self._prune_journal()
        except _LockBusy as exc:
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
            self._cache.clear()
            self._backoff(str(exc))

    def _settle(self, batch: list[_Item]) -> None:
        """Changes whose last attempt had an unknown outcome: ask the journal before retrying."""
        doubtful = [i for i in batch if i.in_doubt]
        if not doubtful:
            return
        entries = self._journal([i.id for i in doubtful])
        for item in doubtful:
            entry = entries.get(item.id)
            if entry is None:
                item.in_doubt = False
            elif entry.startswith("rolled_back"):
                self._finish(item, "rolled_back", output="settled from the host journal")
            else:
                self._finish(item, "applied", output="settled from the host journal")
        batch[:] = [i for i in batch if not i.in_doubt and i in self._queue]

    def _workspace(self, items: list[_Item]) -> Workspace:
        paths = list(dict.fromkeys(p for i in items for p in i.change.reads()))
        missing = [p for p in paths if p not in self._cache]
        self._cache.update(self._read(missing))
        return Workspace({p: self._cache[p] for p in paths}, self.spec.layout)

    def _edit(self, ws: Workspace, items: list[_Item], *, report: bool) -> list[_Item]:
        """Apply the changes to the workspace in order; those that do not apply are dropped."""
        kept = []
        conflicts: list[tuple[_Item, str]] = []
        for item in items:
            snap = ws.snapshot()
            try:
                item.change.apply(ws)
                kept.append(item)
            except (ChangeConflict, ZoneError) as exc:
                ws.restore(snap)
                conflicts.append((item, str(exc)))
        if report and conflicts:
            # A change that no longer fits may be one already applied (resent after a crash):
            # the journal tells, before it is reported as failed.
            entries = self._journal([i.id for i, _ in conflicts])
            for item, error in conflicts:
                item.attempts += 1
                entry = entries.get(item.id)
                if entry is None:
                    self._finish(item, "failed", error=error)
                else:
                    state: Status = (
                        "rolled_back" if entry.startswith("rolled_back") else "already_applied"
                    )
                    self._finish(item, state, output=f"journal: {entry}")
        return kept

    def _prune_journal(self) -> None:
        """Remove the host's journal entries past their retention, if it is time to."""
        if self.journal_keep_days is None or time.monotonic() < self._next_journal_prune:
            return
        self._next_journal_prune = time.monotonic() + self.journal_prune_every
        try:
            status, text, _ = self._exec(prune_journal_script(self.spec.layout,
                                                              self.journal_keep_days))  # fmt: skip
        except SshError as exc:  # the next round trip finds out what the host is up to
            log.warning("lane %s: pruning the journal failed: %s", self.spec.host_id, exc)
            return
        if status != 0 or not text.strip().isdigit():
            log.warning("lane %s: pruning the journal failed: %s", self.spec.host_id, text[-300:])
            return
        self.journal_pruned += int(text.strip())

    def _journal(self, ids: list[str]) -> dict[str, str]:
        status, text, _ = self._exec(journal_script(self.spec.layout, ids))
        if status != 0:
            raise HostUnreachable(self.spec.host_id, f"reading the journal failed: {text[-300:]}")
        return dict(line.split(" ", 1) for line in text.splitlines() if " " in line)

    def _script(self, ws: Workspace, ids: list[str], journal: dict[str, str]) -> Script:
        originals = dict(ws.originals)
        changed = ws.finish()
        zones = {z: ws.zone(z).serial for z in ws.zone_names()}
        http = {
            d: "present" if ws.read(f"nginx/sites/{d}.conf") is not None else "absent"
            for d in ws.http_probes
        }
        return render(
            self.spec.layout,
            journal=journal,
            refuse_journaled=True,
            guards={p: content_hash(originals.get(p)) for p in changed if p in originals},
            files=changed,
            modes=ws.modes,
            dirs=ws.dirs,
            checks=ws.checks,
            reloads=ws.reloads,
            zones=zones,
            http=http,
            nginx_generation=ws.nginx_generation,
            lock_wait=self.lock_wait,
        )

    def _apply(self, batch: list[_Item]) -> None:
        if not batch:
            return
        ws = self._workspace(batch)
        items = self._edit(ws, batch, report=True)
        if not items:
            return
        journal = {i.id: f"applied {i.change.kind}" for i in items}
        script = self._script(ws, [i.id for i in items], journal)
        for item in items:
            item.attempts += 1
            item.in_doubt = True
        status, text, _ = self._exec(script.text)
        for item in items:
            item.in_doubt = False
        if status == EXIT_JOURNALED:
            self._cache.clear()
            for line in text.splitlines():
                if line.startswith("GDCAS-JOURNALED "):
                    _, change_id, entry = [*line.split(" ", 2), ""][:3]
                    for item in items:
                        if item.id == change_id:
                            state: Status = (
                                "rolled_back"
                                if entry.startswith("rolled_back")
                                else "already_applied"
                            )
                            self._finish(item, state, output=f"journal: {entry}")
            return
        if status == EXIT_STALE:
            self._cache.clear()  # someone else edited a file: re-read and replan
            return
        if status == EXIT_LOCK:
            raise _LockBusy(self._lock_holders(text))
        if status != 0:
            if len(items) > 1:
                for item in items:
                    item.solo = True  # isolate the culprit
                return
            reason = self._failure(status, text)
            if status not in (EXIT_SYMLINK, EXIT_WRITE):  # those say all in their reason
                reason = f"{reason}: {text[-500:].strip()}"
            self._finish(items[0], "failed", output=text[-2000:], error=reason)
            return
        self._cache.update(script.files)
        self._verify_all(ws, items, script, text)

    def _lock_holders(self, text: str) -> str:
        holders = [
            f"pid {parts[1]} ({parts[2] if len(parts) > 2 else 'unknown user'})"
            for line in text.splitlines()
            if (parts := line.split())[:1] == ["GDCAS-LOCK-HOLDER"] and len(parts) > 1
        ]
        return (
            f"{self.spec.host_id}: the automation lock was still held after {self.lock_wait:g} s"
            f" (by {', '.join(holders) or 'a process that has let go since'})"
        )

    @staticmethod
    def _failure(status: int, text: str) -> str:
        """Why a change alone failed on the host, from the script's exit status and markers."""
        for line in text.splitlines():
            if status == EXIT_SYMLINK and line.startswith("GDCAS-SYMLINK "):
                link = line.removeprefix("GDCAS-SYMLINK ")
                return f"refused: {link} is a symbolic link (GDCAS does not write through links)"
            if status == EXIT_WRITE and line.startswith("GDCAS-WRITE-FAILED "):
                return f"could not write {line.removeprefix('GDCAS-WRITE-FAILED ')}"
        return {EXIT_CHECK: "check failed", EXIT_RELOAD: "reload failed"}.get(
            status, f"exit {status}"
        )

    def _probe(self, script: Script, text: str) -> ProbeResults:
        blocks = sections(text)
        probe = ProbeResults()
        for line in blocks.get("files", "").splitlines():
            kind, _, rest = line.partition(" ")
            if kind in ("dir", "nodir"):
                probe.dirs[rest] = kind == "dir"
            else:
                probe.file_hashes[rest] = kind
        for zone in script.zones:
            if f"dns {zone}" in blocks:
                probe.dns[zone] = blocks[f"dns {zone}"]
        for domain in script.http:
            if f"http {domain}" in blocks:
                probe.http[domain] = blocks[f"http {domain}"].strip()
        return probe

    def _verify_all(self, ws: Workspace, items: list[_Item], script: Script, text: str) -> None:
        probe = self._probe(script, text)
        generic = None
        for rel, content in script.files.items():
            if probe.file_hashes.get(rel) != content_hash(content):
                generic = f"{rel}: content on the host differs from what was written"
        for d in script.dirs:
            if not probe.dirs.get(d):
                generic = f"{d}: directory missing on the host"
        failed: dict[str, str] = {}
        for item in items:
            reason = self.verify_hook(item.request) if self.verify_hook else None
            reason = reason or generic or item.change.verify(ws, probe)
            if reason:
                failed[item.id] = reason
        n = len(items)
        for item in items:
            if item.id not in failed:
                self._finish(item, "applied", output=f"{item.change.describe()} (batch of {n})")
        if failed:
            self._rollback(ws, items, failed)

    def _rollback(self, applied_ws: Workspace, items: list[_Item], failed: dict[str, str]) -> None:
        """Put the host back as if the failed changes had never been applied; journal that."""
        keep = [i for i in items if i.id not in failed]
        bad = [i for i in items if i.id in failed]
        ws = Workspace(dict(applied_ws.originals), self.spec.layout)
        ws.serial_floor = {z: applied_ws.zone(z).serial for z in applied_ws.zone_names()}
        self._edit(ws, keep, report=False)
        for z in applied_ws.zone_names():
            ws.zone(z)  # re-render touched zones so the serial moves on
        ws.checks |= applied_ws.checks
        ws.reloads |= applied_ws.reloads
        target_changed = ws.finish()
        current = {p: self._cache.get(p) for p in set(applied_ws.files) | set(target_changed)}
        target = {
            p: ws.files[p] if p in ws.files else ws.originals.get(p, current[p]) for p in current
        }
        files = {p: c for p, c in target.items() if c != current[p]}
        script = render(
            self.spec.layout,
            journal={i.id: f"rolled_back {i.change.kind}" for i in bad},
            refuse_journaled=False,
            guards={p: content_hash(current[p]) for p in files},
            files=files,
            modes=ws.modes,
            dirs=set(),
            checks=ws.checks,
            reloads=ws.reloads,
            zones={},
            http={},
            nginx_generation=ws.nginx_generation,
            lock_wait=self.lock_wait,
        )
        try:
            status, text, _ = self._exec(script.text)
        except OutcomeUnknown:
            self._cache.clear()
            for item in bad:
                self._finish(
                    item,
                    "unknown",
                    error=f"verify failed ({failed[item.id]}); rollback outcome unknown",
                )
            raise
        if status != 0:
            self._cache.clear()
            for item in bad:
                self._finish(
                    item,
                    "failed",
                    output=text[-2000:],
                    error=f"verify failed ({failed[item.id]}) and rollback failed",
                )
            return
        self._cache.update(files)
        for item in bad:
            self._finish(item, "rolled_back", error=f"verify failed: {failed[item.id]}")


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
    ) -> None:
        self.on_outcome = on_outcome
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


__all__ = [
    "ChangeOutcome",
    "ChangeRequest",
    "Executor",
    "HostLane",
    "HostStatus",
    "OutcomeCollector",
    "VerifyHook",
]
