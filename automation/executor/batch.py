"""One batch's round trip on a host, for its lane.

``BatchApplier`` takes the changes a lane hands it, edits the managed files in memory, and ships
the result as one script: one rewrite per file, one check and one reload per service, one journal
entry per change id. A failed check splits the batch so each change stands alone (the lane sends
them again one by one). After the apply the probes are judged; a change that fails verification
is rolled back. It also reads files and journal entries for the lane.

State: a cache of the managed files it last saw or wrote, in memory only; ``forget`` drops it
whenever the host may have changed behind it. Outcomes go through the lane's ``finish``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from typing import Protocol

from automation.changes import ChangeBase, ProbeResults, Workspace
from automation.clients import Endpoint
from automation.clients import dns as dns_client
from automation.errors import ChangeConflict, ZoneError
from automation.executor.outcome import Status
from automation.executor.request import ChangeRequest, QueuedRequest
from automation.host import HostSpec
from automation.journal import journal_script
from automation.plan import (
    CHECKED,
    COMMAND,
    EXIT_CHECK,
    EXIT_JOURNALED,
    EXIT_LOCK,
    EXIT_RELOAD,
    EXIT_STALE,
    EXIT_SYMLINK,
    EXIT_WRITE,
    RELOAD_WAIT_SECONDS,
    STEP_LIB,
    Script,
    check_command,
    content_hash,
    parse_files,
    parse_zone_transfer,
    q,
    read_files_script,
    reload_command,
    render,
    sections,
    zone_transfer_script,
)
from automation.ssh import HostUnreachable, OutcomeUnknown, SshConnection

VerifyHook = Callable[[ChangeRequest], str | None]


class LockBusy(Exception):
    """The host's automation lock stayed held longer than the script waited for it."""


class Finish(Protocol):
    """How the applier reports a change's outcome to its lane (which takes it off the queue)."""

    def __call__(
        self, item: QueuedRequest, status: Status, *, output: str = "", error: str | None = None
    ) -> None: ...


def _redactions(changes: list[ChangeBase]) -> list[str]:
    out: list[str] = []
    for c in changes:
        out.extend(c.secret_hashes())
    return out


class BatchApplier:
    """Applies one host's batches in single round trips (see the module docstring)."""

    def __init__(
        self,
        spec: HostSpec,
        conn: SshConnection,
        finish: Finish,
        *,
        exec_timeout: float,
        lock_wait: float,
        verify_hook: VerifyHook | None,
    ) -> None:
        self.spec = spec
        self.conn = conn
        self.finish = finish
        self.exec_timeout = exec_timeout
        self.lock_wait = lock_wait
        self.verify_hook = verify_hook
        self.endpoint = Endpoint(spec.address, spec.layout, shell=self._shell)
        self._cache: dict[str, str | None] = {}

    def forget(self) -> None:
        """Drop the file cache: the host may have changed behind it."""
        self._cache.clear()

    def dry_run(self, change: ChangeBase) -> str:
        """The exact script this change alone would send now (secrets redacted); read-only."""
        files = self.read(list(dict.fromkeys(change.reads())))
        ws = Workspace(dict(files), self.spec.layout)
        change.apply(ws)
        script = self._script(ws, ["<change-id>"], {"<change-id>": f"applied {change.kind}"})
        return f"# {change.describe()}\n" + script.dry_run(_redactions([change]))

    # --- round trips ------------------------------------------------------------------------

    def run(self, script: str) -> tuple[int, str, bytes]:
        res = self.conn.run(COMMAND, stdin=script.encode(), timeout=self.exec_timeout)
        return res.exit_status, res.stdout + res.stderr, res.out

    def _shell(self, script: str) -> tuple[int, str]:
        status, text, _ = self.run(script)
        return status, text

    def read(self, paths: list[str]) -> dict[str, str | None]:
        if not paths:
            return {}
        status, text, raw = self.run(read_files_script(self.spec.layout, paths))
        if status != 0:
            raise HostUnreachable(self.spec.host_id, f"reading files failed: {text[-500:]}")
        return parse_files(raw, paths)

    def served_zone(self, zone: str) -> str:
        """The zone as the host's name server serves it now (AXFR text); read-only."""
        status, text, _ = self.run(zone_transfer_script(self.spec.layout, zone))
        try:
            answer = parse_zone_transfer(text)
        except ValueError:
            answer = None
        if status != 0 or answer is None:
            raise HostUnreachable(self.spec.host_id, f"reading zone {zone} failed: {text[-300:]}")
        return answer

    def journal(self, ids: list[str]) -> dict[str, str]:
        status, text, _ = self.run(journal_script(self.spec.layout, ids))
        if status != 0:
            raise HostUnreachable(self.spec.host_id, f"reading the journal failed: {text[-300:]}")
        return dict(line.split(" ", 1) for line in text.splitlines() if " " in line)

    # --- a batch ---------------------------------------------------------------------------

    def apply(self, batch: list[QueuedRequest]) -> None:
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
        status, text, _ = self.run(script.text)
        for item in items:
            item.in_doubt = False
        if status == EXIT_JOURNALED:
            self._cache.clear()
            found: dict[str, str] = {}
            for line in text.splitlines():
                if line.startswith("GDCAS-JOURNALED "):
                    _, change_id, entry = [*line.split(" ", 2), ""][:3]
                    found[change_id] = entry
            self.journaled([i for i in items if i.id in found], found)
            return
        if status == EXIT_STALE:
            self._cache.clear()  # someone else edited a file: re-read and replan
            return
        if status == EXIT_LOCK:
            raise LockBusy(self._lock_holders(text))
        if status != 0:
            if len(items) > 1:
                for item in items:
                    item.solo = True  # isolate the culprit
                return
            reason = self._failure(status, text)
            if status not in (EXIT_SYMLINK, EXIT_WRITE):  # those say all in their reason
                reason = f"{reason}: {text[-500:].strip()}"
            self.finish(items[0], "failed", output=text[-2000:], error=reason)
            return
        self._cache.update(script.files)
        self._verify_all(ws, items, script, text)

    def _workspace(self, items: list[QueuedRequest]) -> Workspace:
        paths = list(dict.fromkeys(p for i in items for p in i.change.reads()))
        missing = [p for p in paths if p not in self._cache]
        self._cache.update(self.read(missing))
        return Workspace({p: self._cache[p] for p in paths}, self.spec.layout)

    def _edit(
        self, ws: Workspace, items: list[QueuedRequest], *, report: bool
    ) -> list[QueuedRequest]:
        """Apply the changes to the workspace in order; those that do not apply are dropped."""
        kept = []
        conflicts: list[tuple[QueuedRequest, str]] = []
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
            entries = self.journal([i.id for i, _ in conflicts])
            for item, error in conflicts:
                item.attempts += 1
                if item.id not in entries:
                    self.finish(item, "failed", error=error)
            self.journaled([i for i, _ in conflicts if i.id in entries], entries)
        return kept

    def journaled(
        self,
        items: list[QueuedRequest],
        entries: dict[str, str],
        applied: Status = "already_applied",
    ) -> None:
        """Finish changes the host's journal already records: a rolled-back one as such; an
        applied one once its services are made live again (an earlier attempt may have ended
        between the journal and the reload) and its client check passes."""
        done = [i for i in items if not entries[i.id].startswith("rolled_back")]
        for item in items:
            if item not in done:
                self.finish(item, "rolled_back", output=f"journal: {entries[item.id]}")
        problems = self.converge([i.change for i in done])
        for item in done:
            problem = problems.get(id(item.change))
            output = f"journal: {entries[item.id]}"
            if problem is None:
                self.finish(item, applied, output=output)
            else:
                error = f"the host's journal records it as applied, but {problem}"
                self.finish(item, "failed", output=output, error=error)

    def converge(self, changes: list[ChangeBase]) -> dict[int, str]:
        """Run the reloads that make `changes` live (idempotent), then their client checks;
        the problems found, by ``id(change)``."""
        layout = self.spec.layout
        needs: dict[int, set[tuple[str, ...]]] = {}
        for change in changes:
            with contextlib.suppress(ChangeConflict):
                needs[id(change)] = change.services(layout)
        steps = set().union(*needs.values()) if needs else set()
        bad: set[tuple[str, ...]] = set()
        if steps:
            # The earlier attempt may have ended before the host's own check: check first (a
            # configuration that fails it is not reloaded), then reload.
            script = []
            for step in sorted(steps):
                tag = q(" ".join(step))
                reload = f"{{ {reload_command(layout, step)}; }} >/dev/null 2>&1"
                if step[0] in CHECKED:
                    check = f"{{ {check_command(layout, step)}; }} >/dev/null 2>&1"
                    script.append(
                        f"if ! {check}; then echo GDCAS-CHECK-FAILED {tag}; "
                        f"elif ! {reload}; then echo GDCAS-RELOAD-FAILED {tag}; fi\n"
                    )
                else:
                    script.append(f"{reload} || echo GDCAS-RELOAD-FAILED {tag}\n")
            _, text, _ = self.run(STEP_LIB + "".join(script))
            for line in text.splitlines():
                word, _, step_text = line.partition(" ")
                if word in ("GDCAS-CHECK-FAILED", "GDCAS-RELOAD-FAILED"):
                    bad.add(tuple(step_text.split(" ")))
        problems: dict[int, str] = {}
        for change in changes:
            failing = needs.get(id(change), set()) & bad
            if failing:
                which = " ".join(sorted(failing)[0])
                problems[id(change)] = f"the host's check or reload of {which} fails now"
            elif problem := self._client_check(change):
                problems[id(change)] = problem
        return problems

    def _client_check(self, change: ChangeBase) -> str | None:
        try:
            return change.check_by_client(self.endpoint)
        except Exception as exc:  # a client that fails says why; it must not stop the lane
            return f"the check by the service's client failed: {exc!r}"

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

    def _probe(self, script: Script, text: str, items: list[QueuedRequest]) -> ProbeResults:
        blocks = sections(text)
        probe = ProbeResults()
        for line in blocks.get("files", "").splitlines():
            kind, _, rest = line.partition(" ")
            if kind in ("dir", "nodir"):
                probe.dirs[rest] = kind == "dir"
            else:
                probe.file_hashes[rest] = kind
        keys: dict[str, set[tuple[str, str]]] = {}
        for item in items:
            for zone, wanted in item.change.lookups().items():
                keys.setdefault(zone, set()).update(wanted)
        for zone, want in script.zones.items():
            # The serial the reload should serve, then what named answers for the changed names.
            served = dns_client.answers(
                self.endpoint, zone, want, keys.get(zone, set()), RELOAD_WAIT_SECONDS
            )
            if served is not None:
                probe.dns[zone] = "(asked)"
                probe.parsed[zone] = served  # the verifiers read these answers
        for domain in script.http:
            if f"http {domain}" in blocks:
                probe.http[domain] = blocks[f"http {domain}"].strip()
        return probe

    def _verify_all(
        self, ws: Workspace, items: list[QueuedRequest], script: Script, text: str
    ) -> None:
        probe = self._probe(script, text, items)
        generic = None
        for rel, content in script.files.items():
            if probe.file_hashes.get(rel) != content_hash(content):
                generic = f"{rel}: content on the host differs from what was written"
        for d in script.dirs:
            if not probe.dirs.get(d):
                generic = f"{d}: directory missing on the host"
        failed: dict[str, str] = {}
        # Only the last change to each thing a client observes is checked by the client.
        last = {key: i for i, item in enumerate(items) if (key := item.change.observes())}
        for i, item in enumerate(items):
            reason = self.verify_hook(item.request) if self.verify_hook else None
            reason = reason or generic or item.change.verify(ws, probe)
            key = item.change.observes()
            if not reason and (key is None or last[key] == i):
                reason = self._client_check(item.change)
            if reason:
                failed[item.id] = reason
        n = len(items)
        for item in items:
            if item.id not in failed:
                self.finish(item, "applied", output=f"{item.change.describe()} (batch of {n})")
        if failed:
            self._rollback(ws, items, failed)

    def _rollback(
        self, applied_ws: Workspace, items: list[QueuedRequest], failed: dict[str, str]
    ) -> None:
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
            modes={**applied_ws.modes, **ws.modes},  # a restored file keeps its mode (secrets)
            dirs=set(),
            checks=ws.checks,
            reloads=ws.reloads,
            zones={},
            http={},
            nginx_generation=ws.nginx_generation,
            lock_wait=self.lock_wait,
        )
        try:
            status, text, _ = self.run(script.text)
        except OutcomeUnknown:
            self._cache.clear()
            for item in bad:
                self.finish(
                    item,
                    "unknown",
                    error=f"verify failed ({failed[item.id]}); rollback outcome unknown",
                )
            raise
        if status != 0:
            self._cache.clear()
            for item in bad:
                self.finish(
                    item,
                    "failed",
                    output=text[-2000:],
                    error=f"verify failed ({failed[item.id]}) and rollback failed",
                )
            return
        self._cache.update(files)
        for item in bad:
            self.finish(item, "rolled_back", error=f"verify failed: {failed[item.id]}")
