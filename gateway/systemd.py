"""systemd's service notification protocol (`sd_notify`), spoken without libsystemd.

Under a `Type=notify` unit (cluster/systemd/sitedesk.service) systemd passes `NOTIFY_SOCKET`
and, with `WatchdogSec=`, `WATCHDOG_USEC`. `sitedesk up` then says `READY=1` only once its own
`/readyz` answers ready (database, Redis and Ray reachable), and `WATCHDOG=1` every half
watchdog interval while its own `/healthz` answers: a gateway whose event loop hangs stops
petting the watchdog and systemd kills and restarts it. A dependency that is down does not
(that is readiness, not liveness: the gateway answers 503 and recovers by itself). Without
`NOTIFY_SOCKET` nothing of this runs.
"""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Callable, MutableMapping

import httpx

READY_POLL = 0.5  # seconds between two asks of /readyz while starting


class ServiceNotifier:
    """Tells systemd (or whoever listens on `NOTIFY_SOCKET`) how the service is doing. Takes
    its variables out of `environ`, so no child process (Ray, Redis, the demo hosts) sees
    them."""

    def __init__(self, environ: MutableMapping[str, str] = os.environ) -> None:
        self.address = environ.pop("NOTIFY_SOCKET", None)
        usec, pid = environ.pop("WATCHDOG_USEC", None), environ.pop("WATCHDOG_PID", None)
        mine = pid is None or pid == str(os.getpid())
        self.watchdog = int(usec) / 1e6 if usec and usec.isdigit() and mine else None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    @property
    def active(self) -> bool:
        return bool(self.address)

    def notify(self, *fields: str) -> bool:
        """Send one message (`READY=1`, `STATUS=...`); False when there is no one to tell."""
        if not self.address:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
            try:
                s.sendto("\n".join(fields).encode(), target)
            except OSError:
                return False
        return True

    def watch(self, base_url: str, started: Callable[[], bool]) -> None:
        """In a thread: READY=1 once the server has `started` and `base_url`/readyz answers
        200, then WATCHDOG=1 while `base_url`/healthz answers."""
        if not self.active:
            return
        self._thread = threading.Thread(
            target=self._run, args=(base_url, started), name="sd-notify", daemon=True
        )
        self._thread.start()

    def _run(self, base_url: str, started: Callable[[], bool]) -> None:
        with httpx.Client(base_url=base_url, timeout=5, trust_env=False) as client:
            while not started():
                if self._stop.wait(0.1):
                    return
            while True:
                try:
                    answer = client.get("/readyz")
                    if answer.status_code == 200:
                        break
                    detail = answer.json().get("checks", {})
                    waiting = ", ".join(k for k, v in detail.items() if not v.get("ok"))
                except (httpx.HTTPError, ValueError, AttributeError) as exc:
                    waiting = type(exc).__name__
                self.notify(f"STATUS=waiting for {waiting or 'readiness'}")
                if self._stop.wait(READY_POLL):
                    return
            self.notify("READY=1", f"STATUS=serving at {base_url}")
            if self.watchdog is None:
                return
            interval = self.watchdog / 2
            while not self._stop.wait(interval):
                try:
                    alive = client.get("/healthz", timeout=interval).status_code == 200
                except httpx.HTTPError:
                    alive = False
                if alive:
                    self.notify("WATCHDOG=1")

    def stopping(self) -> None:
        """STOPPING=1, and no more watchdog messages."""
        self._stop.set()
        self.notify("STOPPING=1", "STATUS=stopping")
        if self._thread is not None:
            self._thread.join(timeout=10)
