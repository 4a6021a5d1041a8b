"""A Server-Sent Events client for tests: records every event of a stream in a thread."""

from __future__ import annotations

import json
import threading
import time
from typing import Any

import httpx


class SseRecorder:
    def __init__(self, url: str, token: str, last_event_id: int | None = None) -> None:
        self.url, self.token = url, token
        self.headers = {"Authorization": f"Bearer {token}"}
        if last_event_id is not None:
            self.headers["Last-Event-ID"] = str(last_event_id)
        self.events: list[dict[str, Any]] = []
        self.connected = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> SseRecorder:
        self._thread.start()
        assert self.connected.wait(10), "the event stream did not open"
        return self

    def _run(self) -> None:
        with (
            httpx.Client(timeout=httpx.Timeout(5, read=None)) as client,
            client.stream("GET", self.url, headers=self.headers) as resp,
        ):
            assert resp.status_code == 200, resp.read()
            buf: dict[str, str] = {}
            for line in resp.iter_lines():
                if self._stop.is_set():
                    return
                if line.startswith(": connected"):
                    self.connected.set()
                elif line.startswith("data: "):
                    buf["data"] = line[6:]
                elif line.startswith("event: "):
                    buf["event"] = line[7:]
                elif line == "" and "data" in buf:
                    self.events.append(json.loads(buf["data"]))
                    buf = {}

    def wait_for(self, predicate: Any, timeout: float = 30.0) -> dict[str, Any]:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for ev in list(self.events):
                if predicate(ev):
                    return ev
            time.sleep(0.05)
        kinds = [(e.get("topic"), e.get("data", {}).get("number")) for e in self.events]
        raise AssertionError(f"no matching event within {timeout}s; saw {kinds}")

    def topics(self, number: str) -> list[str]:
        return [e["topic"] for e in self.events if e.get("data", {}).get("number") == number]

    def wait_closed(self, timeout: float) -> bool:
        """True once the server ended the stream (within `timeout` seconds)."""
        self._thread.join(timeout)
        return not self._thread.is_alive()

    def stop(self) -> None:
        self._stop.set()
