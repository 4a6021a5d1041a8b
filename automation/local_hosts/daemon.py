"""A foreground daemon process this machine starts for a local host: spawn it and wait until it
listens, stop it with every child, freeze and thaw it (SIGSTOP/SIGCONT).

Each runs in a session of its own, dies with the process that started it (parent-death signal,
``automation.processes.spawn``) and has a pid file (``pid_file``: in its directory, or where
``LocalHost``'s ``pid_dir`` puts it), from which ``automation.processes.stop_leftovers`` stops
what a killed owner left running (the forks a parent-death signal does not reach)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from pathlib import Path
from types import TracebackType
from typing import Self

from automation.processes import descendants, remove_record, spawn

__all__ = ["Daemon", "descendants", "wait_port"]


def wait_port(port: int, timeout: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    """Return once something listens on 127.0.0.1:`port`; fail if `proc` exits first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening on {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.02)
    raise TimeoutError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


class Daemon:
    """A foreground daemon process we own: start, stop, freeze/thaw (SIGSTOP/SIGCONT)."""

    name = "daemon"
    dir: Path  # its configs and state

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None
        self._pid_file: Path | None = None
        self.label = self.name  # how its pid file names it

    @property
    def pid_file(self) -> Path:
        """Its pid file: set by the host (``LocalHost``'s ``pid_dir``), else in its directory."""
        return self._pid_file or self.dir / f"{self.name}.pid.json"

    @pid_file.setter
    def pid_file(self, path: Path) -> None:
        self._pid_file = path

    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _ready(self, proc: subprocess.Popen[bytes]) -> None:
        raise NotImplementedError

    def _spawn(self, log: Path) -> None:
        self._log = log
        with log.open("ab") as out:
            self._proc = spawn(
                self._argv(), record=self.pid_file, name=self.label, program=self.program,
                stdout=out, stderr=subprocess.STDOUT,
            )  # fmt: skip
        try:
            self._ready(self._proc)
        except Exception:
            self.stop()
            raise

    @property
    def program(self) -> str:
        """The word its command line keeps (nginx and sshd rewrite theirs)."""
        return Path(self._argv()[0]).name

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def _signal_tree(self, sig: signal.Signals) -> None:
        if self._proc is None:
            return
        for pid in descendants(self._proc.pid):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def freeze(self) -> None:
        """SIGSTOP the daemon and its children: the host hangs, connections stay open."""
        self._signal_tree(signal.SIGSTOP)

    def thaw(self) -> None:
        self._signal_tree(signal.SIGCONT)

    def stop(self) -> None:
        """Kill the daemon and every child (open sessions drop)."""
        proc = self._proc
        if proc is None:
            return
        pids = descendants(proc.pid)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
                os.kill(pid, signal.SIGTERM)
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
            proc.wait(timeout=5)
        for pid in pids[1:]:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self._proc = None
        remove_record(self.pid_file)

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc: type[BaseException] | None, val: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        raise NotImplementedError
