"""The desk's one error base and its refusals. They keep their arguments so they cross Ray
boundaries intact; the gateway renders every one of them in one place (gateway/errors.py)."""

from __future__ import annotations

from typing import Any


class DeskError(Exception):
    """Base of every refusal the API answers with: a stable, specific snake_case `code`
    (`ticket_not_found`, not `not_found`), the HTTP `status` it maps to, a human `message`,
    an optional JSON `detail` (e.g. one entry per field) and, for refusals that are for now
    only, `retry_after` seconds (sent as `Retry-After`)."""

    code = "desk_error"
    status = 400

    def __init__(
        self,
        message: str,
        *,
        detail: Any = None,
        code: str | None = None,
        retry_after: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.detail = detail
        self.retry_after = max(1, int(retry_after)) if retry_after is not None else None
        if code:
            self.code = code

    def __str__(self) -> str:
        return self.message


def as_raised(exc: DeskError) -> DeskError:
    """The error as it was raised: from inside an actor, Ray hands back a subclass of the
    original (its text the remote traceback) whose own attributes live on `cause`."""
    cause = getattr(exc, "cause", None)
    return cause if isinstance(cause, DeskError) else exc


# -- tickets ------------------------------------------------------------------------------
class TicketNotFound(DeskError):
    """A ticket that does not exist or that the caller may not see: one answer for both."""

    code, status = "ticket_not_found", 404


class InvalidTransition(DeskError):
    """The step does not apply to the ticket's status (actors/tickets/states.py)."""

    code, status = "invalid_transition", 409


class TopTierReached(DeskError):
    """An escalation of a ticket already at the highest support level."""

    code, status = "top_tier_reached", 409


class AlreadyOwned(DeskError):
    """Taking a ticket another agent owns."""

    code, status = "already_owned", 409


class InvalidHandover(DeskError):
    """A hand-over to someone who is not an agent of the ticket's level."""

    code, status = "invalid_handover", 422


class NotAllowed(DeskError):
    """The caller's role or level may not take this step (actors/policy.py)."""

    code, status = "not_allowed", 403


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
        super().__init__(message, retry_after=retry_after)
        self.args = (message, retry_after)


class QueueFull(DeskError):
    """Work waits in a bounded queue and that queue is full (actors/config.py QueueLimits):
    refused for now, 503 with `Retry-After`. Nothing refused was acknowledged, so the caller
    sends it again later (the SMTP door answers 451)."""

    code, status = "queue_full", 503

    def __init__(self, message: str, retry_after: int = 1, code: str | None = None) -> None:
        super().__init__(message, retry_after=retry_after, code=code)
        self.args = (message, retry_after, code)


class PriorityNotAllowed(DeskError):
    """Customers choose at most `high`; `urgent` is for staff to set."""

    code, status = "priority_not_allowed", 403


# -- accounts -----------------------------------------------------------------------------
class AccountNotFound(DeskError):
    """An account that does not exist or that the caller may not see: one answer for both."""

    code, status = "account_not_found", 404


# -- changes and managed hosts ------------------------------------------------------------
class ServiceNotFound(DeskError):
    """A service that does not exist or that the caller may not see: one answer for both."""

    code, status = "service_not_found", 404


class ChangeNotFound(DeskError):
    code, status = "change_not_found", 404


class InvalidChange(DeskError):
    """The parameters are not a valid change; ``errors`` holds one message per problem, and
    ``detail`` names the field of each (``params`` when the message names none)."""

    code, status = "invalid_change", 422

    def __init__(self, message: str, errors: list[str] | None = None) -> None:
        self.errors = list(errors or [message])
        detail = [
            {"field": e.split(":", 1)[0] if ":" in e else "params", "problem": e}
            for e in self.errors
        ]
        super().__init__(message, detail=detail)
        self.args = (message, self.errors)


class HostNotFound(DeskError):
    code, status = "host_not_found", 404


class HostExists(DeskError):
    code, status = "host_exists", 409


class InvalidHost(DeskError):
    """A host the executors could not manage as described (its layout, or its client key as
    the executors find it where they run); ``detail`` names the field of each problem."""

    code, status = "invalid_host", 422

    def __init__(self, message: str, problems: list[tuple[str, str]]) -> None:
        super().__init__(message, detail=[{"field": f, "problem": p} for f, p in problems])
        self.problems = list(problems)
        self.args = (message, self.problems)


class HostUnavailable(DeskError):
    """The host did not answer now (SSH refused, timed out): try again, `Retry-After`."""

    code, status = "host_unavailable", 503

    def __init__(self, message: str, *, detail: Any = None, retry_after: int = 30) -> None:
        super().__init__(message, detail=detail, retry_after=retry_after)


class HostRetired(DeskError):
    """The host is retired: nothing is managed there any more (its record stays for history)."""

    code, status = "host_retired", 409


class HostDown(DeskError):
    """The host cannot be managed as it is set up (its client key is not usable, its
    registration failed): not for a retry, for an administrator; the host's health says why."""

    code, status = "host_down", 409


# -- mail -------------------------------------------------------------------------------------
class MailRefused(DeskError):
    """A received mail the desk will not take for good (e.g. from an unknown sender when the
    desk is set to refuse them): the SMTP door answers 550 and the sender's server bounces."""

    code, status = "mail_refused", 422


class MailAlreadySettled(DeskError):
    """A received mail that a concurrent twin already put on a ticket: nothing to do again."""

    code, status = "mail_already_settled", 409


class ContactLinkInvalid(DeskError):
    """Linking a sender to an account: the contact is on an account already, or no such one."""

    code, status = "contact_link_invalid", 409
