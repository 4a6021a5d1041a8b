"""ASGI middleware of the gateway's defences: the request-body limit and the security headers
of every answer."""

from __future__ import annotations

import contextlib
import json

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.errors import error_body
from gateway.uploads import is_upload

# Pages set their own Content-Security-Policy; every other answer (JSON) gets this one.
API_CSP = "default-src 'none'; frame-ancestors 'none'"
TOKEN_PATH = "/api/v1/auth/token"  # noqa: S105 - a path, not a secret


class BodyTooLarge(Exception):
    """Raised from `receive` once a streamed body passes the limit."""


async def send_too_large(send: Send, limit: int) -> None:
    body = json.dumps(
        error_body(
            "body_too_large",
            f"the request body is larger than {limit} bytes",
            {"max_bytes": limit},
        )
    ).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Refuses a body over `max_bytes` with 413 before the app reads it: a declared
    Content-Length is checked up front, a streamed (chunked) body is counted as it arrives and
    cut off at the limit, whatever the app would have answered. A multipart request to a route
    that takes files (gateway/uploads.py) may have up to `upload_max_bytes`."""

    def __init__(self, app: ASGIApp, max_bytes: int, upload_max_bytes: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.upload_max_bytes = upload_max_bytes or max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.upload_max_bytes if is_upload(scope) else self.max_bytes
        for name, value in scope["headers"]:
            if name == b"content-length" and (not value.isdigit() or int(value) > limit):
                await send_too_large(send, limit)
                return
        received = 0
        exceeded = False
        started = False

        async def counted() -> Message:
            nonlocal received, exceeded
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    exceeded = True
                    raise BodyTooLarge
            return message

        async def guarded(message: Message) -> None:
            nonlocal started
            if exceeded:  # what the app makes of a body we cut off is not sent
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        with contextlib.suppress(BodyTooLarge):  # answered below, unless the app had begun
            await self.app(scope, counted, guarded)
        if exceeded and not started:
            await send_too_large(send, limit)


class SecurityHeaders:
    """nosniff, no referrer and no framing on every answer; `Cache-Control: no-store` on any
    answer to a request with credentials (and on the token itself), so that no shared or
    browser cache keeps a customer's data."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        credentialed = scope["path"] == TOKEN_PATH or any(
            name == b"authorization" for name, _ in scope["headers"]
        )

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.setdefault("X-Content-Type-Options", "nosniff")
                headers.setdefault("Referrer-Policy", "no-referrer")
                headers.setdefault("X-Frame-Options", "DENY")
                headers.setdefault("Content-Security-Policy", API_CSP)
                if credentialed:
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, with_headers)
