"""The executor shards: GDCAS executors inside Ray actors, fed with change ids from the SCDB."""

from __future__ import annotations

import logging
import queue
import threading
import time
from typing import Any

from actors import names
from actors.changes.drift import DRIFT_PATHS, Drift, compare
from actors.changes.dto import (
    ChangePlan,
    NewChange,
    NewHost,
    Recorded,
    ServedRecord,
    ServedZone,
)
from actors.changes.hosts import HostRegistry, key_problem
from actors.changes.requests import ChangeService
from actors.changes.settle import RECORD_TRIES, STATUS_OF_OUTCOME, ChangeSettler
from actors.directory import Directory, fire
from actors.errors import HostDown, HostRetired, HostUnavailable
from actors.principal import Principal
from actors.tickets.dto import QueuedTicket
from automation import identifiers
from automation.changes import Change
from automation.changes.dns import served_records
from automation.clients import crontab as crontab_client
from automation.errors import ChangeConflict
from automation.executor.batch import VerifyHook
from automation.executor.executor import Executor
from automation.executor.lane import LaneFull
from automation.executor.outcome import ChangeOutcome
from automation.facts import fact_paths, read_fact
from automation.host import HostSpec
from automation.ssh import SshError
from store.db import Database
from store.read.changes import is_change_id
from store.read.hosts import HostHealth, HostRead
from store.repositories import AccountRepository, ChangeRepository, HostRepository

log = logging.getLogger(__name__)

SWEEP_SECONDS = 5.0
RECORD_BATCH = 200


class ChangeExecutor:
    """One executor shard: the managed hosts whose id hashes to it, one SSH lane per host.

    State: the hosts' lanes (queues, open SSH connections, file caches), the ids in flight and
    the outcomes not yet committed. Persisted: every change and its outcome are in the SCDB;
    the on-host journal holds which change ids were applied.
    Recovery: on start (and every few seconds) it re-reads its hosts and hands every change
    still `queued` or `applying` back to its lane; a change applied before a crash is found in
    the host's journal and recorded as applied, never applied twice.
    Hosts: new ones are registered here (refused while the client key is not usable where the
    executors run); a host whose key becomes unusable later is reported down, its lane
    stopped and its changes left queued until the key is back, the other hosts untouched.
    Isolation: a host that can not be set up (its key file unreadable) is reported down and
    holds only its own queue; an outcome that fails to record is retried alone and, after
    `RECORD_TRIES` tries, recorded failed with the reason (dead-lettered), so one bad change
    never holds up the others.
    Bound: a host's lane holds at most `lane_queue_max` changes (`queues.host_queue_max`, the
    bound at which new requests for the host are refused); what does not fit stays queued in
    the SCDB, untouched, and is handed over as the lane drains (and by the sweep).
    """

    def __init__(
        self,
        index: int,
        shards: int,
        db: Database,
        *,
        changes: ChangeService,
        settler: ChangeSettler,
        registry: HostRegistry,
        directory: Directory | None = None,
        exec_timeout: float = 20.0,
        connect_timeout: float = 5.0,
        backoff_max: float = 2.0,
        sweep_seconds: float = SWEEP_SECONDS,
        verify_hook: VerifyHook | None = None,
        journal_keep_days: float | None = None,
        journal_prune_every: float = 3600.0,
        lane_queue_max: int = 1000,
    ) -> None:
        """`directory` None: tell no other actor about outcomes (tests of the plain class).
        `journal_keep_days`: how long the hosts keep journal entries (None: for ever).
        `lane_queue_max`: changes each host's lane holds in memory."""
        self.index = index
        self.shards = shards
        self.db = db
        self.changes = changes
        self.settler = settler
        self.hosts = registry
        self.directory = directory
        self.executor = Executor(
            self._reported,
            exec_timeout=exec_timeout,
            connect_timeout=connect_timeout,
            backoff_max=backoff_max,
            verify_hook=verify_hook,
            journal_keep_days=journal_keep_days,
            journal_prune_every=journal_prune_every,
            max_queue=lane_queue_max,
        )
        self.sweep_seconds = sweep_seconds
        self.backlog: set[int] = set()  # hosts with changes left in the SCDB for want of room
        self.specs: dict[int, HostSpec] = {}
        self.names: dict[str, int] = {}
        self.inflight: dict[str, int] = {}  # change id -> host id, handed to its lane
        self.broken: dict[int, tuple[str, str]] = {}  # host id -> (name, why it is not set up)
        self.record_failures: dict[str, int] = {}  # change id -> failed tries to record it
        self.outcomes: queue.Queue[ChangeOutcome] = queue.Queue()
        self.recorded = 0
        self._lock = threading.RLock()
        self._stop = threading.Event()
        self.sync_hosts()
        self._resubmit(older_than=0.0)
        self._threads = [
            threading.Thread(target=self._record_loop, name="change-recorder", daemon=True),
            threading.Thread(target=self._sweep_loop, name="change-sweeper", daemon=True),
        ]
        for t in self._threads:
            t.start()

    # -- hosts --------------------------------------------------------------------------
    def owns(self, host_id: int) -> bool:
        return names.shard_of(host_id, self.shards) == self.index

    def sync_hosts(self) -> list[str]:
        """Follow the SCDB: add new hosts, re-add changed ones, drop retired ones. A host whose
        client key is not usable here (any more: deleted, made readable by others) is down, its
        lane stopped, until the key is back; the other hosts go on."""
        wanted = {i: spec for i, spec in self.hosts.host_specs().items() if self.owns(i)}
        with self._lock:
            for host_id, spec in wanted.items():
                problem = key_problem(spec)
                if problem is not None:
                    if host_id not in self.broken:
                        log.warning("host %s is down: %s", spec.host_id, problem)
                    self._drop(host_id)
                    self.broken[host_id] = (spec.host_id, f"client key not usable: {problem}")
                    continue
                if self.specs.get(host_id) != spec:
                    try:
                        self.executor.add_host(spec)
                    except Exception as exc:  # e.g. a bad key path: this host only is down
                        self._drop(host_id)
                        self.broken[host_id] = (spec.host_id, f"host not set up: {exc}")
                        continue
                    self.broken.pop(host_id, None)
                    self.specs[host_id] = spec
                    self.names[spec.host_id] = host_id
            for host_id in [h for h in self.broken if h not in wanted]:
                self.broken.pop(host_id)
            for host_id in [h for h in self.specs if h not in wanted]:
                spec = self.specs.pop(host_id)
                self.names.pop(spec.host_id, None)
                self.executor.remove_host(spec.host_id)
            return sorted(s.host_id for s in self.specs.values())

    def _drop(self, host_id: int) -> None:
        """Stop the host's lane; what it held stays pending in the SCDB and is handed over
        again once the host is back (a change applied meanwhile is in the host's journal)."""
        spec = self.specs.pop(host_id, None)
        if spec is not None:
            self.names.pop(spec.host_id, None)
            self.executor.remove_host(spec.host_id)
        for change_id in [c for c, h in self.inflight.items() if h == host_id]:
            del self.inflight[change_id]

    def add_host(self, host_id: int) -> list[str]:
        """A host was registered or changed: pick it up now (the sweep would, a bit later)."""
        return self.sync_hosts()

    def register_host(
        self, host: NewHost, by: Principal, key: str | None = None, request_hash: str = ""
    ) -> HostRead:
        """Register a managed host, its client key checked here, where the executors run (see
        HostRegistry.register_host); this shard sets it up at once if it owns it."""
        read = self.hosts.register_host(host, by, key=key, request_hash=request_hash)
        if self.owns(read.id):
            self.sync_hosts()
        return read

    # -- changes ------------------------------------------------------------------------
    def submit(
        self, change_ids: list[str], secrets: dict[str, dict[str, str]] | None = None
    ) -> int:
        """Hand these changes to their hosts' lanes; ids in flight or settled are skipped.
        ``secrets`` are the requests' passwords in memory (see ``shards.hand_over``), put back
        into the rebuilt changes for their client checks. Returns how many were handed over."""
        with self._lock:
            fresh = [i for i in dict.fromkeys(change_ids) if i not in self.inflight]
            if not fresh:
                return 0
            where = self._hosts_of(fresh)
            if any(h not in self.specs for h in where.values()):
                self.sync_hosts()
            # A change of a host that is down (not set up here) stays queued until it is back;
            # one its lane has no room for stays queued, untouched, until the lane drains.
            room = {h: self._room(h) for h in set(where.values()) if h in self.specs}
            taken = []
            for change_id in fresh:
                host_id = where.get(change_id)
                if host_id not in room:
                    continue
                if room[host_id] <= 0:
                    self.backlog.add(host_id)
                    continue
                room[host_id] -= 1
                taken.append(change_id)
            started = self.settler.start(taken)
            n = 0
            for host_id, request in started:
                given = (secrets or {}).get(request.change_id)
                if given:
                    change = request.change.with_secrets(given)
                    request = request.model_copy(update={"change": change})
                if host_id not in self.specs:
                    log.warning("change %s: host %s is not on this shard", request.change_id,
                                host_id)  # fmt: skip
                    continue
                try:
                    self.executor.submit(request)
                except KeyError:  # its host is not set up (see `broken`): it stays pending
                    continue
                except LaneFull:  # taken meanwhile: `applying` in the SCDB, swept again later
                    self.backlog.add(host_id)
                    continue
                self.inflight[request.change_id] = host_id
                n += 1
            return n

    def _room(self, host_id: int) -> int:
        spec = self.specs[host_id]
        try:
            return self.executor.lane(spec.host_id).room
        except KeyError:
            return 0

    def _refill(self) -> None:
        """Hand over what waited in the SCDB for room in a lane that has room again."""
        with self._lock:
            ready = [h for h in self.backlog if h in self.specs and self._room(h) > 0]
            if not ready:
                return
            self.backlog.difference_update(ready)
            ids = [i for i, _ in self.settler.pending_for(ready)]
            self.submit([i for i in ids if i not in self.inflight])

    def _hosts_of(self, change_ids: list[str]) -> dict[str, int]:
        """The host id of each of these changes (ids of no change, or of none, left out)."""
        with self.db.read() as s:
            repo = ChangeRepository(s)
            rows = [repo.find(i) if is_change_id(i) else None for i in change_ids]
            return {r.id: r.host_id for r in rows if r is not None and r.host_id is not None}

    def _resubmit(self, older_than: float) -> int:
        with self._lock:
            ids = [i for i, _ in self.settler.pending_for(list(self.specs), older_than=older_than)]
            return self.submit([i for i in ids if i not in self.inflight]) if ids else 0

    def dry_run(self, host_id: int, change: Change) -> str:
        """The exact script this change would send to the host now (secrets redacted)."""
        spec = self._spec(host_id)
        try:
            return self.executor.dry_run(spec.host_id, change)
        except SshError as exc:
            raise HostUnavailable(str(exc)) from None

    def plan(self, by: Principal, req: NewChange) -> ChangePlan:
        """A dry run of `req` for `by`, checked as a request would be: what it would change on
        its host now, in words, and (for staff) the exact script. Applies and records nothing."""
        target = self.changes.plan_target(by, req)
        script = self.dry_run(target.host_id, target.change)
        return ChangePlan(
            kind=target.change.kind,
            service_id=target.service_id,
            host=target.host_name,
            summary=target.change.describe(),
            # The script holds whole files of the host, other tenants' lines of shared ones (a
            # passwd file: their addresses and hashes) among them: staff only.
            plan=script if by.is_staff else None,
        )

    def _spec(self, host_id: int) -> HostSpec:
        spec = self.specs.get(host_id)
        if spec is None:
            self.sync_hosts()
            spec = self.specs.get(host_id)
        if spec is None and host_id in self.broken:
            name, why = self.broken[host_id]
            raise HostDown(f"host {name} cannot be managed now: {why}")
        if spec is None and self.owns(host_id):  # not among the active hosts: retired
            raise HostRetired(f"host {host_id} is retired: nothing is managed there")
        if spec is None:
            raise HostUnavailable(f"host {host_id} is not managed by executor {self.index}")
        return spec

    def served_zone(self, host_id: int, service_id: int, zone: str) -> ServedZone:
        """The zone as the host's name server serves it now (read-only; the caller checked that
        the service is the caller's and its zone is `zone`)."""
        spec = self._spec(host_id)
        try:
            axfr = self.executor.served_zone(spec.host_id, identifiers.hostname(zone))
        except SshError as exc:
            raise HostUnavailable(str(exc)) from None
        records = [ServedRecord.model_validate(r) for r in served_records(zone, axfr)]
        soa = next((r for r in records if r.type == "SOA"), None)
        serial = int(soa.value.split()[2]) if soa is not None else None
        return ServedZone(service_id=service_id, zone=zone, serial=serial, records=records)

    def facts(self, host_id: int, kind: str, key: str) -> list[dict[str, Any]]:
        """What the host has of one kind of fact (`automation.facts.READERS`: cron, forwarders,
        mailboxes, ftp_accounts, certificate) for `key` (an account's user or a domain),
        read now; read-only. The caller checked that the key is the caller's."""
        spec = self._spec(host_id)
        canonical, paths = fact_paths(kind, key)
        try:
            if kind == "cron":  # what cron has (crontab -l -u), not only GDCAS's file
                tab = crontab_client.read(self.executor.endpoint(spec.host_id), canonical,
                                          paths[0])  # fmt: skip
                installed = "".join(f"{line}\n" for line in tab.installed or [])
                files = {paths[0]: installed or None}
            else:
                files = self.executor.read(spec.host_id, paths)
        except (SshError, RuntimeError) as exc:
            raise HostUnavailable(str(exc)) from None
        try:
            return read_fact(kind, canonical, files)
        except ChangeConflict as exc:  # a file edited on the host against GDCAS's contract
            raise HostUnavailable(str(exc)) from None

    def drift(self, host_id: int) -> Drift:
        """The host's mailboxes and FTP accounts against the SCDB's (read-only, one read)."""
        spec = self._spec(host_id)
        with self.db.read() as s:
            host = HostRepository(s).get(host_id).name
            services = AccountRepository(s).services_on_host(host_id)
            try:
                files = self.executor.read(spec.host_id, DRIFT_PATHS)
            except SshError as exc:
                raise HostUnavailable(str(exc)) from None
            return compare(host, services, files)

    def status(self) -> dict[str, HostHealth]:
        """Queue and health of each host of this shard, by host name."""
        out = {
            st.host_id: HostHealth(
                state=st.state,
                queued=st.queued,
                last_error=st.last_error,
                lock_busy_since=st.lock_busy_since,
            )
            for st in self.executor.status()
        }
        for name, why in list(self.broken.values()):
            out[name] = HostHealth(state="down", last_error=why)
        return out

    def stats(self) -> dict[str, Any]:
        return {"hosts": len(self.specs), "inflight": len(self.inflight),
                "recorded": self.recorded, "backlog": len(self.backlog)}  # fmt: skip

    def wait_idle(self, timeout: float = 30.0) -> bool:
        """True once nothing is queued, in flight or waiting to be recorded (tests)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.inflight and self.outcomes.empty():
                return True
            time.sleep(0.02)
        return False

    def close(self) -> None:
        self._stop.set()
        self.executor.close()
        for t in self._threads:
            t.join(5)

    # -- outcomes -------------------------------------------------------------------------
    def _reported(self, outcome: ChangeOutcome) -> None:
        self.outcomes.put(outcome)  # from a lane thread: never block the lane on the database

    def _record_loop(self) -> None:
        delay = 0.1
        while not self._stop.is_set():
            try:
                first = self.outcomes.get(timeout=0.5)
            except queue.Empty:
                continue
            batch = [first]
            while len(batch) < RECORD_BATCH:
                try:
                    batch.append(self.outcomes.get_nowait())
                except queue.Empty:
                    break
            while batch and not self._stop.is_set():
                recorded, batch = self._record(batch)
                self._announce(recorded)
                if self.backlog:
                    try:
                        self._refill()
                    except Exception:  # the database away: the sweep hands them over
                        log.exception("executor %d: refilling the lanes failed", self.index)
                if batch:  # the database away, or a poison outcome not yet dead-lettered
                    self._stop.wait(delay)
                    delay = min(delay * 2, 5.0)
                else:
                    delay = 0.1

    def _record(self, batch: list[ChangeOutcome]) -> tuple[Recorded, list[ChangeOutcome]]:
        """Record the batch in one transaction, or else each outcome alone; returns what was
        recorded and the outcomes still to retry."""
        try:
            recorded = self.settler.record(batch)
            self._done(batch)
            return recorded, []
        except Exception:
            if len(batch) > 1:
                log.warning("recording %d outcomes together failed; one by one", len(batch))
        merged = Recorded()  # one bad outcome must not hold the others back
        retry: list[ChangeOutcome] = []
        for outcome in batch:
            try:
                one = self.settler.record([outcome])
            except Exception as exc:
                if not self._dead_letter(outcome, exc):
                    retry.append(outcome)
                continue
            self._done([outcome])
            merged.tickets += one.tickets
            merged.accounts |= one.accounts
            merged.settled += one.settled
        return merged, retry

    def _dead_letter(self, outcome: ChangeOutcome, exc: Exception) -> bool:
        """Count a failed try to record `outcome`; after RECORD_TRIES, record the change failed
        with the reason. True when the outcome needs no retry any more."""
        change_id = outcome.change_id
        tries = self.record_failures.get(change_id, 0) + 1
        self.record_failures[change_id] = tries
        log.warning("recording the outcome of change %s failed (try %d): %s", change_id, tries,
                    exc)  # fmt: skip
        if tries < RECORD_TRIES:
            return False
        word = STATUS_OF_OUTCOME.get(outcome.status, outcome.status)
        reason = (
            f"the host reported the change {word}, but recording that failed {tries} times: "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
        )
        try:
            self.settler.dead_letter(change_id, reason[:1000])
        except Exception:  # the database itself away: keep the outcome, try again later
            log.exception("dead-lettering change %s failed", change_id)
            return False
        log.error("change %s dead-lettered: %s", change_id, reason)
        self._done([outcome])
        return True

    def _done(self, outcomes: list[ChangeOutcome]) -> None:
        with self._lock:
            for o in outcomes:
                self.inflight.pop(o.change_id, None)
                self.record_failures.pop(o.change_id, None)
        self.recorded += len(outcomes)

    def _announce(self, recorded: Recorded) -> None:
        d = self.directory
        if d is None:
            return
        if recorded.tickets:  # failure tickets (level 1), tickets back without an owner
            by_tier: dict[int, list[QueuedTicket]] = {}
            for t in recorded.tickets:
                by_tier.setdefault(t.tier, []).append(t)
            for tier, queued in by_tier.items():
                fire(d.pool(tier).enqueue, queued)
            fire(d.sla().track, [t.id for t in recorded.tickets])
        fire(d.notifier().poke)

    def _sweep_loop(self) -> None:
        while not self._stop.wait(self.sweep_seconds):
            try:
                self.sync_hosts()
                self._resubmit(older_than=self.sweep_seconds)
            except Exception:  # the database away: the next sweep tries again
                log.exception("executor %d: sweep failed", self.index)
