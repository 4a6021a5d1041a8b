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


class ContactNotFound(DeskError):
    """A contact that does not exist or belongs to another account: one answer for both, so
    that the answer tells nothing about other accounts' contacts."""

    code, status = "contact_not_found", 422


class RateLimited(DeskError):
    """Too many requests of one kind from one account in the window; retry after a while."""

    code, status = "rate_limited", 429

    def __init__(self, message: str, retry_after: int = 60) -> None:
        super().__init__(message)
        self.retry_after = max(1, int(retry_after))
        self.args = (message, self.retry_after)


class PriorityNotAllowed(DeskError):
    """Customers choose at most `high`; `urgent` is for staff to set."""

    code, status = "priority_not_allowed", 403


class ChangeNotFound(DeskError):
    code, status = "not_found", 404


class InvalidChange(DeskError):
    """The parameters are not a valid change; ``errors`` holds one message per problem."""

    code, status = "invalid_change", 422

    def __init__(self, message: str, errors: list[str] | None = None) -> None:
        super().__init__(message)
        self.errors = list(errors or [message])
        self.args = (message, self.errors)


class HostUnavailable(DeskError):
    code, status = "host_unavailable", 503


class HostExists(DeskError):
    code, status = "conflict", 409
