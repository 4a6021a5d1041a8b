"""One error shape for the whole API, rendered here only: {"error": code, "message": ...,
"detail": ...}. Every refusal is a DeskError (actors/errors.py: the desk's refusals, raised in
the actors or here; below: the gateway's own, about the request itself)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
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

    error: str = Field(description="A stable, specific snake_case code: `ticket_not_found`.")
    message: str = Field(description="What is wrong, in words for a person.")
    detail: Any = Field(
        default=None, description="More about it, by code (the limit reached, the fields ...)."
    )


class FieldProblem(BaseModel):
    field: str = Field(
        description="The field: a dotted path into the body (`params.record.name`) or a "
        "parameter's name (`limit`); empty for the body as a whole."
    )
    problem: str = Field(description="What is wrong with it.")


class ValidationErrorBody(ErrorBody):
    """A request that is not valid (422): `detail` names each field and its problem."""

    detail: list[FieldProblem] | None = Field(
        default=None, description="One entry per problem; null when the message says it all."
    )


class UploadErrorBody(ErrorBody):
    """A 422 of a route that takes files: `detail` names each field, or for `too_many_files`
    says the limit (`{"field": "files", "max_files": 10, "files": 12}`)."""

    detail: list[FieldProblem] | dict[str, Any] | None = None


def error_body(code: str, message: str, detail: Any = None) -> dict[str, Any]:
    return {"error": code, "message": message, "detail": detail}


def error_responses(
    codes: Mapping[int, str], *, models: Mapping[int, type[BaseModel]] | None = None
) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` of a route: for each status the route itself may answer with (403,
    404, 409 ...), the error codes and when. What every route of a kind shares (401, 422, 429,
    503 ...) gateway/openapi.py adds; `models` names a body other than ErrorBody's (a 422's
    is ValidationErrorBody)."""
    models = models or {}
    return {
        status: {"model": models.get(status, ErrorBody), "description": text}
        for status, text in codes.items()
    }


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
