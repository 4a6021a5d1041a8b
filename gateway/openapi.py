"""The OpenAPI document as the gateway really answers (/openapi.json, /docs).

FastAPI writes the document from the routes: their parameters, bodies, success answers and
the `responses=` each route declares for what only it may answer (a 403 for a role, a 404 of
its path's id, a 409 of a state; gateway/errors.py `error_responses`). What every route of a
kind may answer is the same everywhere and is added here, in one place, from what the
document already says about the route:

- a body: 400 (not readable: not UTF-8, a broken form) and 413 (over the body limit,
  gateway/middleware.py), from before any route code runs;
- any parameter or body: 422 with `detail` naming each field (gateway/errors.py renders
  FastAPI's validation errors so: FastAPI's own `loc`/`msg`/`type` schema is never answered);
- a bearer token (the `security` of the route): 401, and the caller's rate limit (429, and
  the `X-RateLimit-*` headers on its answers, gateway/ratelimit.py);
- under /api/v1: 503, because every such route needs the database, Redis or the Ray actors
  (`unavailable` while a component restarts; `Retry-After` when it is expected back soon).

Every error answer's body is ErrorBody (`{"error", "message", "detail"}`), a 422's
ValidationErrorBody; 429 and 503 document `Retry-After`."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel

from gateway.errors import ErrorBody, FieldProblem, ValidationErrorBody

REF = "#/components/schemas/"
API_PREFIX = "/api/v1"

RETRY_AFTER = "Retry-After"
RATE_HEADERS = (
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
    "X-RateLimit-Resource",
)
HEADERS: dict[str, dict[str, Any]] = {
    RETRY_AFTER: {
        "description": "Seconds to wait before trying again.",
        "schema": {"type": "integer", "minimum": 1},
    },
    "X-RateLimit-Limit": {
        "description": "Requests the caller's current window allows (the limit closest to "
        "refusing this request).",
        "schema": {"type": "integer", "minimum": 0},
    },
    "X-RateLimit-Remaining": {
        "description": "Requests left in that window.",
        "schema": {"type": "integer", "minimum": 0},
    },
    "X-RateLimit-Reset": {
        "description": "Seconds until that window ends (a delta, like Retry-After).",
        "schema": {"type": "integer", "minimum": 1},
    },
    "X-RateLimit-Resource": {
        "description": "Which limit: `api`, `tickets`, `changes`, `dry_runs` or `search`.",
        "schema": {"type": "string"},
    },
    "WWW-Authenticate": {
        "description": "`Bearer`: log in (POST /api/v1/auth/token) and send the token.",
        "schema": {"type": "string"},
    },
}


class Shared:
    """One status every route of a kind may answer: the text, and the phrase that tells that a
    route's own description already covers it."""

    def __init__(self, status: int, text: str, *, covered_by: str) -> None:
        self.status, self.text, self.covered_by = status, text, covered_by


def shared_statuses(max_body_bytes: int) -> dict[str, Shared]:
    return {
        "body": Shared(
            400,
            "`bad_request`: the body could not be read (not UTF-8, a malformed form)",
            covered_by="`bad_request`",
        ),
        "body_size": Shared(
            413,
            f"`body_too_large`: the body is over {max_body_bytes} bytes "
            "(`SITEDESK_MAX_BODY_BYTES`); `detail.max_bytes` says the limit",
            covered_by="`body_too_large`",
        ),
        "input": Shared(
            422,
            "`invalid_request`: a parameter or the body is not valid; `detail` names each "
            "field and its problem",
            covered_by="`invalid_request`",
        ),
        "token": Shared(
            401,
            "`unauthorized`: no bearer token, or one that is unknown, expired or revoked",
            covered_by="`unauthorized`",
        ),
        "rate": Shared(
            429,
            "`rate_limited`: over the caller's requests per minute (a customer account's, a "
            "staff token's: `SITEDESK_REQUESTS_PER_MINUTE`); with Retry-After",
            covered_by="requests per minute",
        ),
        "component": Shared(
            503,
            "`database_unavailable`, `redis_unavailable`, `unavailable` (the Ray actors): a "
            "component the answer needs is restarting or out of reach; `queue_full` (and "
            "`intake_full`, `host_queue_full`): a queue the work waits in is at its bound; "
            "`timeout`: no answer within 30 s (retry with the same Idempotency-Key); with "
            "Retry-After",
            covered_by="`database_unavailable`",
        ),
    }


def install_openapi(app: FastAPI, *, max_body_bytes: int) -> None:
    """Serve the completed document as `app.openapi()` (built once, on first use)."""
    fastapi_document: Callable[[], dict[str, Any]] = app.openapi

    def document() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = fastapi_document()  # FastAPI's own, now cached on the app
            complete(doc, max_body_bytes=max_body_bytes)
        return app.openapi_schema  # type: ignore[return-value]

    app.openapi = document  # type: ignore[method-assign]


def complete(doc: dict[str, Any], *, max_body_bytes: int) -> None:
    """Add what every route of a kind answers, with the real error schema, in place."""
    components = doc.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    for model in (ErrorBody, FieldProblem, ValidationErrorBody):
        add_schema(schemas, model)
    for name in ("HTTPValidationError", "ValidationError"):
        schemas.pop(name, None)
    components.setdefault("headers", {}).update(HEADERS)
    shared = shared_statuses(max_body_bytes)
    for path, operations in doc.get("paths", {}).items():
        for operation in operations.values():
            complete_operation(operation, path, shared)


def complete_operation(operation: dict[str, Any], path: str, shared: dict[str, Shared]) -> None:
    responses: dict[str, Any] = operation.setdefault("responses", {})
    body = "requestBody" in operation
    authenticated = bool(operation.get("security"))
    kinds = {
        "body": body,
        "body_size": body,
        "input": body or bool(operation.get("parameters")),
        "token": authenticated,
        "rate": authenticated,
        "component": path.startswith(API_PREFIX),
    }
    for kind, applies in kinds.items():
        if applies:
            add_status(responses, shared[kind])
    for status, response in responses.items():
        code = int(status)
        own_model(response)
        if code >= 400:
            error_content(response, code)
        if code == 429 or (code == 503 and path.startswith(API_PREFIX)):
            response.setdefault("headers", {})[RETRY_AFTER] = header_ref(RETRY_AFTER)
        if code == 401 and authenticated:
            response.setdefault("headers", {})["WWW-Authenticate"] = header_ref("WWW-Authenticate")
        if authenticated and code != 401:  # counted once the token is known
            headers = response.setdefault("headers", {})
            for name in RATE_HEADERS:
                headers[name] = header_ref(name)


def add_status(responses: dict[str, Any], shared: Shared) -> None:
    """The shared status, or its text beside the route's own description of it."""
    own = responses.get(str(shared.status))
    if own is None:
        responses[str(shared.status)] = {"description": shared.text}
    elif shared.covered_by not in own.get("description", ""):
        own["description"] = f"{own['description']}. Also {shared.text}"


def error_content(response: dict[str, Any], status: int) -> None:
    """The error body as it is answered: ErrorBody, ValidationErrorBody for a 422, unless
    the route documents a body of its own (not FastAPI's validation schema)."""
    model = ValidationErrorBody if status == 422 else ErrorBody
    content = response.setdefault("content", {})
    schema = content.get("application/json", {}).get("schema", {})
    ref = schema.get("$ref", "")
    generic = {f"{REF}HTTPValidationError", f"{REF}ErrorBody", ""}
    if not content or (ref in generic and not (set(schema) - {"$ref"})):
        response["content"] = {"application/json": {"schema": {"$ref": REF + model.__name__}}}


def own_model(response: dict[str, Any]) -> None:
    """A route that names the model of its own success status in `responses=` (POST /changes:
    202 is the change, the dry run's 200 the plan) is documented with exactly that model:
    FastAPI merges the `$ref` into the schema of the route's response_model (the union of
    both) instead."""
    for media in response.get("content", {}).values():
        schema = media.get("schema", {})
        ref = schema.get("$ref")
        if ref and {"$ref": ref} in schema.get("anyOf", ()):
            media["schema"] = {"$ref": ref}


def add_schema(schemas: dict[str, Any], model: type[BaseModel]) -> None:
    schema = model.model_json_schema(ref_template=REF + "{model}")
    for name, definition in schema.pop("$defs", {}).items():
        schemas.setdefault(name, definition)
    schemas[model.__name__] = schema


def header_ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/headers/{name}"}
