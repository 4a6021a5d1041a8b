"""One error shape for the whole API: {"error": code, "message": ..., "detail": ...}."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from actors.errors import DeskError
from cluster.calls import ComponentRestarting
from store.errors import ConflictError, IntegrityViolation, NotFoundError


class ApiError(Exception):
    """Raise from any route; rendered with its stable code, message and status."""

    status_code = 400
    code = "bad_request"

    def __init__(self, message: str, *, detail: Any = None, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        if code:
            self.code = code


class Unauthorized(ApiError):
    status_code = 401
    code = "unauthorized"


class Forbidden(ApiError):
    status_code = 403
    code = "forbidden"


class NotFound(ApiError):
    status_code = 404
    code = "not_found"


class Conflict(ApiError):
    status_code = 409
    code = "conflict"


class Unprocessable(ApiError):
    status_code = 422
    code = "invalid_request"


class ServiceUnavailable(ApiError):
    status_code = 503
    code = "unavailable"


class RetryLater(ApiError):
    """Refused for now, not for good: answered with `Retry-After` (seconds)."""

    status_code = 429
    code = "rate_limited"

    def __init__(
        self, message: str, *, retry_after: int, detail: Any = None, code: str | None = None
    ) -> None:
        super().__init__(message, detail=detail, code=code)
        self.retry_after = max(1, retry_after)


class TooManyRequests(RetryLater):
    status_code = 429
    code = "rate_limited"


class Overloaded(RetryLater):
    status_code = 503
    code = "overloaded"


def error_body(code: str, message: str, detail: Any = None) -> dict[str, Any]:
    return {"error": code, "message": message, "detail": detail}


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


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if exc.status_code == 401 else None
        return JSONResponse(
            error_body(exc.code, exc.message, exc.detail), exc.status_code, headers=headers
        )

    @app.exception_handler(RetryLater)
    async def _retry_later(_: Request, exc: RetryLater) -> JSONResponse:
        return JSONResponse(
            error_body(exc.code, exc.message, exc.detail),
            exc.status_code,
            headers={"Retry-After": str(exc.retry_after)},
        )

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
        return JSONResponse(error_body("not_found", str(exc)), 404)

    @app.exception_handler(ConflictError)
    async def _conflict(_: Request, exc: ConflictError) -> JSONResponse:
        return JSONResponse(error_body("conflict", str(exc)), 409)

    @app.exception_handler(IntegrityViolation)
    async def _integrity(_: Request, exc: IntegrityViolation) -> JSONResponse:
        return JSONResponse(error_body("conflict", str(exc)), 409)

    @app.exception_handler(DeskError)
    async def _desk(_: Request, exc: DeskError) -> JSONResponse:
        # Raised inside an actor, Ray hands it back as a subclass of the original error.
        return JSONResponse(error_body(exc.code, exc.message), exc.status)

    @app.exception_handler(ComponentRestarting)
    async def _restarting(_: Request, exc: ComponentRestarting) -> JSONResponse:
        return JSONResponse(error_body("unavailable", str(exc)), 503, headers={"Retry-After": "1"})
