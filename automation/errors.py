"""Errors of the change catalog; every one keeps its arguments so it pickles."""

from __future__ import annotations


class ChangeValidationError(ValueError):
    """A change's parameters are invalid; ``errors`` are human messages, one per problem."""

    def __init__(self, kind: str, errors: list[str]) -> None:
        super().__init__(kind, errors)
        self.kind = kind
        self.errors = errors

    def __str__(self) -> str:
        return f"invalid {self.kind} change: " + "; ".join(self.errors)


class ChangeConflict(Exception):
    """A valid change cannot apply to the host's current state (e.g. deleting a missing record)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class ZoneError(ValueError):
    """A zone file could not be parsed or fails an integrity check."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
