"""The processes we start, and what a crash of ours leaves of them.

- ``spawn()`` starts a program that dies with us: the kernel's parent-death signal
  (``prctl(PR_SET_PDEATHSIG)``, set by util-linux ``setpriv --pdeathsig`` just before the exec).
  The kernel sends it when the *thread* that forked exits, so a program is forked from the main
  thread or, from any other thread, from one long-lived spawner thread. It is lost on a change
  of user (mariadbd ``--user``) and never reaches what the program forks itself (nginx's
  workers, Postfix's master, Dovecot's children): for those, the pid file.
- A pid file (``Record``, JSON) says what was started: pid, start time (clock ticks after boot,
  from ``/proc/PID/stat``) and boot id, the program's name, whether it runs in a session of its
  own (then every process of that session is its), optionally a directory whose files its
  processes write (a Ray session's logs), and its owner (the process that started it).
- ``stop_leftovers(run_dir)`` stops what the pid files in ``run_dir`` name whose owner is gone:
  a pid is signalled only while it still is the recorded process (same start time, same boot,
  the program's name in its command line); a pid reused by another program is left alone.
- ``python -m automation.processes guard RUN_DIR PID START``, stdin the read end of a pipe only
  its owner holds: the guardian. At the owner's death (end of file) it stops what the owner's pid
  files name, so even ``kill -9`` of the owner leaves nothing running.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

RECORD_SUFFIX = ".json"
STOP_GRACE = 3.0  # seconds between SIGTERM and SIGKILL
SETPRIV = shutil.which("setpriv")

Ident = tuple[int, int]  # (pid, start time): one process, never a later one with its pid


# -- /proc ------------------------------------------------------------------------------------
def _stat(pid: int) -> list[str] | None:
    """The fields of /proc/PID/stat after the command name (field 3, the state, is [0])."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except (OSError, ValueError):
        return None
    return text.rsplit(")", 1)[1].split()


def start_time(pid: int) -> int | None:
    """When `pid` started (clock ticks after boot), None if there is no such process."""
    fields = _stat(pid)
    return int(fields[19]) if fields else None


def alive(ident: Ident) -> bool:
    """Whether the process `ident` runs (a zombie does not: it has ended)."""
    fields = _stat(ident[0])
    return fields is not None and fields[0] not in "ZX" and int(fields[19]) == ident[1]


def boot_id() -> str:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return ""


def command_line(pid: int) -> str:
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        comm = Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""
    return raw.replace(b"\0", b" ").decode(errors="replace") + " " + comm


def _all_stats() -> dict[int, list[str]]:
    out = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit() and (fields := _stat(int(entry))) is not None:
            out[int(entry)] = fields
    return out


def descendants(pid: int) -> list[int]:
    """`pid` and all its descendants, from /proc."""
    children: dict[int, list[int]] = {}
    for child, fields in _all_stats().items():
        children.setdefault(int(fields[1]), []).append(child)
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def session_members(sid: int) -> list[Ident]:
    """The processes of session `sid` (its leader's pid), whatever their parent now is."""
    return [(p, int(f[19])) for p, f in _all_stats().items() if int(f[3]) == sid]


def writers_under(directory: Path) -> list[Ident]:
    """The processes that hold a file below `directory` open for writing (a reader, such as a
    `less` of a log, is not one)."""
    prefix = str(directory.resolve()).rstrip("/") + "/"
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fds = os.listdir(f"/proc/{entry}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{entry}/fd/{fd}")
                if not target.startswith(prefix):
                    continue
                info = Path(f"/proc/{entry}/fdinfo/{fd}").read_text()
            except OSError:
                continue
            flags = int(info.split("flags:", 1)[1].split()[0], 8)
            if flags & os.O_ACCMODE != os.O_RDONLY:
                if (start := start_time(int(entry))) is not None:
                    found.append((int(entry), start))
                break
    return found


# -- pid files --------------------------------------------------------------------------------
@dataclass(frozen=True)
class Record:
    """One pid file: what was started, and by whom."""

    name: str  # what it is, for people: "redis-server", "demo-host-1 sshd"
    pid: int  # 0: no process of its own (only `writes_under`)
    start: int
    boot: str
    program: str  # a word its command line keeps (nginx and sshd rewrite theirs)
    session: bool  # leader of a session of its own: every process of that session is its
    owner_pid: int
    owner_start: int
    writes_under: str = ""  # also every process writing below this directory

    @property
    def ident(self) -> Ident:
        return (self.pid, self.start)

    @property
    def owner(self) -> Ident:
        return (self.owner_pid, self.owner_start)

    def is_running(self) -> bool:
        """Whether its pid is still the process recorded (not one that reused the pid)."""
        return (
            self.pid > 0
            and self.boot == boot_id()
            and alive(self.ident)
            and self.program in command_line(self.pid)
        )

    def owner_running(self) -> bool:
        return self.boot == boot_id() and alive(self.owner)

    def processes(self) -> list[Ident]:
        """Every process that is this record's now (its own first)."""
        if self.boot != boot_id():
            return []  # a pid file of an earlier boot names nothing that runs now
        running = self.is_running()
        found: list[Ident] = []
        if running:
            found += [(p, s) for p in descendants(self.pid) if (s := start_time(p)) is not None]
        # While one process of a session lives, the kernel gives its leader's pid to no other
        # process: members are the session's as long as the leader is ours (alive, or a zombie
        # nobody reaped) or gone.
        leader = start_time(self.pid) if self.pid > 0 else None
        if self.session and self.pid > 0 and leader in (None, self.start):
            found += session_members(self.pid)
        if self.writes_under and Path(self.writes_under).is_dir():
            found += writers_under(Path(self.writes_under))
        mine = {os.getpid(), os.getppid()}
        return [i for i in dict.fromkeys(found) if i[0] not in mine and alive(i)]


def this_process() -> Ident:
    pid = os.getpid()
    start = start_time(pid)
    assert start is not None
    return (pid, start)


def write_record(
    path: Path,
    name: str,
    pid: int,
    program: str,
    *,
    session: bool = True,
    writes_under: Path | None = None,
    owner: Ident | None = None,
) -> Record:
    """Write the pid file `path` for `pid` (started by `owner`, by default this process)."""
    owner_pid, owner_start = owner or this_process()
    record = Record(
        name=name,
        pid=pid,
        start=(start_time(pid) or 0) if pid else 0,
        boot=boot_id(),
        program=program,
        session=session,
        owner_pid=owner_pid,
        owner_start=owner_start,
        writes_under=str(writes_under.resolve()) if writes_under else "",
    )
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(asdict(record)) + "\n")
    tmp.replace(path)
    return record


def read_record(path: Path) -> Record | None:
    try:
        return Record(**json.loads(path.read_text()))
    except (OSError, ValueError, TypeError):
        return None


def remove_record(path: Path | None) -> None:
    """Remove the pid file `path` if it is this process's (a later owner's stays)."""
    if path is None:
        return
    record = read_record(path)
    if record is not None and record.owner == this_process():
        path.unlink(missing_ok=True)


# -- stopping ---------------------------------------------------------------------------------
def _signal(idents: Iterable[Ident], sig: signal.Signals) -> None:
    for ident in idents:
        if alive(ident):  # checked right before: never a pid some other program took since
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.kill(ident[0], sig)


def stop_processes(idents: list[Ident], grace: float = STOP_GRACE) -> None:
    """SIGTERM (with SIGCONT, so a frozen one can act on it), then SIGKILL what is left after
    `grace` seconds; return once all have ended."""
    _signal(idents, signal.SIGCONT)
    _signal(idents, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while any(alive(i) for i in idents) and time.monotonic() < deadline:
        time.sleep(0.05)
    _signal(idents, signal.SIGKILL)
    deadline = time.monotonic() + 5
    while any(alive(i) for i in idents) and time.monotonic() < deadline:
        time.sleep(0.02)


def stop_leftovers(
    run_dir: Path, *, only_owner: Ident | None = None, grace: float = STOP_GRACE
) -> list[str]:
    """Stop what the pid files in `run_dir` name whose owner has ended (all of a given
    `only_owner`), remove those pid files, and say what was still running ("name (pid N)").
    A pid file whose owner still runs belongs to a live start and is left alone."""
    if not run_dir.is_dir():
        return []
    targets: list[Ident] = []
    said, done = [], []
    for path in sorted(run_dir.glob(f"*{RECORD_SUFFIX}")):
        record = read_record(path)
        if record is None:
            path.unlink(missing_ok=True)
            continue
        ours = record.owner == only_owner if only_owner else not record.owner_running()
        if not ours:
            continue
        found = record.processes()
        if found:
            said.append(f"{record.name} ({len(found)} process{'es' if len(found) > 1 else ''}"
                        f", pid {found[0][0]})")  # fmt: skip
        targets += found
        done.append(path)
    if targets:
        stop_processes(list(dict.fromkeys(targets)), grace)
    for path in done:
        path.unlink(missing_ok=True)
    return said


# -- starting ---------------------------------------------------------------------------------
_spawner: ThreadPoolExecutor | None = None
_spawner_lock = threading.Lock()


def _in_long_lived_thread(fn: Callable[[], subprocess.Popen[bytes]]) -> subprocess.Popen[bytes]:
    """Run `fn` in the main thread, or else in the one spawner thread, which lives as long as
    the process: the parent-death signal fires when the forking thread ends."""
    if threading.current_thread() is threading.main_thread():
        return fn()
    global _spawner
    with _spawner_lock:
        if _spawner is None:
            _spawner = ThreadPoolExecutor(max_workers=1, thread_name_prefix="spawner")
    return _spawner.submit(fn).result()


def _parent_death_signal() -> Callable[[], None]:
    """The fallback without setpriv: prctl called between fork and exec (looked up before the
    fork: the child imports nothing)."""
    prctl = ctypes.CDLL(None, use_errno=True).prctl
    pr_set_pdeathsig = 1

    def set_it() -> None:
        prctl(pr_set_pdeathsig, signal.SIGKILL, 0, 0, 0)

    return set_it


def spawn(
    argv: list[str],
    *,
    record: Path | None,
    name: str,
    program: str | None = None,
    die_with_parent: bool = True,
    **popen: Any,
) -> subprocess.Popen[bytes]:
    """Start `argv` in a session of its own (SIGKILLed when this process ends, if
    `die_with_parent`) and write its pid file `record`. `program` is the word of its command
    line that names it (default: the name of argv[0])."""
    full = list(argv)
    if die_with_parent and SETPRIV:
        full = [SETPRIV, "--pdeathsig", "KILL", "--", *argv]
    elif die_with_parent:
        popen["preexec_fn"] = _parent_death_signal()
    popen.setdefault("start_new_session", True)

    def start() -> subprocess.Popen[bytes]:
        return subprocess.Popen(full, **popen)

    proc = _in_long_lived_thread(start)
    if record is not None:
        write_record(
            record,
            name,
            proc.pid,
            program or Path(argv[0]).name,
            session=bool(popen["start_new_session"]),
        )
    return proc


def start_guardian(run_dir: Path) -> subprocess.Popen[bytes]:
    """Start the guardian of this process's pid files in `run_dir` (see the module docstring).
    The write end of its pipe stays open in this process alone until it ends."""
    read_end, write_end = os.pipe()  # neither end is inherited by other children
    pid, start = this_process()
    argv = [sys.executable, "-m", "automation.processes", "guard", str(run_dir), str(pid)]
    try:
        guardian = subprocess.Popen(
            [*argv, str(start)],
            stdin=read_end,
            stdout=subprocess.DEVNULL,
            start_new_session=True,  # a Ctrl-C in the terminal is not for it
        )
    finally:
        os.close(read_end)
    _guardian_pipes.append(write_end)
    return guardian


_guardian_pipes: list[int] = []  # held open until this process ends


def _guard(run_dir: Path, owner: Ident) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    while sys.stdin.buffer.read(4096):
        pass  # the owner never writes: end of file is its end
    said = stop_leftovers(run_dir, only_owner=owner)
    if said:
        print(f"stopped after pid {owner[0]} ended: {', '.join(said)}", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) != 5 or sys.argv[1] != "guard":
        sys.exit("usage: python -m automation.processes guard RUN_DIR OWNER_PID OWNER_START")
    _guard(Path(sys.argv[2]), (int(sys.argv[3]), int(sys.argv[4])))
