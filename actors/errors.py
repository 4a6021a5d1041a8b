"""Domain errors of the desk. They keep their arguments so they cross Ray boundaries intact."""

from __future__ import annotations


class DeskError(Exception):
    """Base: `code` is stable and machine-readable, `status` the HTTP status it maps to."""

    code = "desk_error"
    status = 400

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class TicketNotFound(DeskError):
    code, status = "not_found", 404


class InvalidTransition(DeskError):
    code, status = "invalid_transition", 409


class TopTierReached(DeskError):
    code, status = "top_tier", 409


class AlreadyOwned(DeskError):
    code, status = "already_owned", 409


class NotAllowed(DeskError):
    code, status = "forbidden", 403


class IdempotencyMismatch(DeskError):
    code, status = "idempotency_key_reused", 422


class InvalidInput(DeskError):
    code, status = "invalid_request", 422
