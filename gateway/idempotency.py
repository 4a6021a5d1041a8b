"""The Idempotency-Key header: a retried POST gets the first answer, never a second effect."""

from __future__ import annotations

import hashlib
import json
import uuid
from typing import Any

from fastapi import Request

from gateway.errors import Unprocessable

MAX_KEY = 200


def request_key(request: Request, body: Any) -> tuple[str, str]:
    """(key, request hash). Without a header a fresh key still makes internal retries safe."""
    key = request.headers.get("Idempotency-Key")
    if key is not None:
        key = key.strip()
        if not key or len(key) > MAX_KEY or not key.isprintable():
            raise Unprocessable(
                f"Idempotency-Key must be 1 to {MAX_KEY} printable characters",
                code="invalid_idempotency_key",
            )
    else:
        key = f"auto:{uuid.uuid4()}"
    payload = body.model_dump(mode="json") if hasattr(body, "model_dump") else body
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    digest = hashlib.sha256(
        f"{request.method} {request.url.path}\n{canonical}".encode()
    ).hexdigest()
    return key, digest
