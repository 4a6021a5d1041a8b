"""One error shape for the whole API, rendered here only: {"error": code, "message": ...,
"detail": ...}. Every refusal is a DeskError (actors/errors.py: the desk's refusals, raised in
the actors or here; below: the gateway's own, about the request itself)."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from starlette.exceptions import HTTPException as StarletteHTTPException

from actors.errors import DeskError, as_raised
from cluster.calls import ComponentRestarting
from store.errors import ConflictError, IntegrityViolation, NotFoundError


class Unauthorized(DeskError):
    code, status = "unauthorized", 401


class Forbidden(DeskError):
    code, status = "forbidden", 403


class NotFound(DeskError):
    code, status = "not_found", 404


class Unprocessable(DeskError):
    code, status = "invalid_request", 422


class ServiceUnavailable(DeskError):
    code, status = "unavailable", 503


class RetryLater(DeskError):
    """Refused for now, not for good: answered with `Retry-After` (seconds)."""

    def __init__(
        self, message: str, *, retry_after: int, detail: Any = None, code: str | None = None
    ) -> None:
        super().__init__(message, detail=detail, code=code, retry_after=retry_after)


class TooManyRequests(RetryLater):
    code, status = "rate_limited", 429


class Overloaded(RetryLater):
    code, status = "overloaded", 503


class ErrorBody(BaseModel):
    """What every error answer carries."""

    error: str
    message: str
    detail: Any = None


def error_body(code: str, message: str, detail: Any = None) -> dict[str, Any]:
    return {"error": code, "message": message, "detail": detail}


def error_responses(codes: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` of a route: for each status, the error codes it may answer with."""
    return {status: {"model": ErrorBody, "description": text} for status, text in codes.items()}


_HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    429: "rate_limited",
}


def _field_path(loc: Any) -> list[Any]:
    parts = list(loc)
    return parts[1:] if parts and parts[0] == "body" else parts


def desk_response(exc: DeskError) -> JSONResponse:
    err = as_raised(exc)
    headers: dict[str, str] = {}
    if err.status == 401:
        headers["WWW-Authenticate"] = "Bearer"
    if err.retry_after is not None:
        headers["Retry-After"] = str(err.retry_after)
    return JSONResponse(
        error_body(err.code, err.message, err.detail), err.status, headers=headers or None
    )


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(DeskError)
    async def _desk(_: Request, exc: DeskError) -> JSONResponse:
        return desk_response(exc)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        detail = [
            {
                # loc starts with where the value came from ("body", "query"); a field may
                # itself be called "body" (a message's), so only the first one is dropped.
                "field": ".".join(str(p) for p in _field_path(err.get("loc", ()))),
                "problem": err.get("msg", "invalid"),
            }
            for err in exc.errors()
        ]
        fields = ", ".join(d["field"] or "body" for d in detail)
        return JSONResponse(
            error_body("invalid_request", f"the request is not valid: check {fields}", detail),
            422,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        code = _HTTP_CODES.get(exc.status_code, "error")
        return JSONResponse(error_body(code, str(exc.detail)), exc.status_code, headers=exc.headers)

    @app.exception_handler(NotFoundError)
    async def _not_found(_: Request, exc: NotFoundError) -> JSONResponse:
        code = f"{exc.what.replace(' ', '_')}_not_found"  # e.g. ticket_not_found
        return JSONResponse(error_body(code, str(exc)), 404)

    @app.exception_handler(ConflictError)
    async def _conflict(_: Request, exc: ConflictError) -> JSONResponse:
        return JSONResponse(error_body("conflict", str(exc)), 409)

    @app.exception_handler(IntegrityViolation)
    async def _integrity(_: Request, exc: IntegrityViolation) -> JSONResponse:
        return JSONResponse(error_body("conflict", str(exc)), 409)

    @app.exception_handler(ComponentRestarting)
    async def _restarting(_: Request, exc: ComponentRestarting) -> JSONResponse:
        return JSONResponse(error_body("unavailable", str(exc)), 503, headers={"Retry-After": "1"})
