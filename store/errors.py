"""Errors raised by the store; each keeps its arguments so it pickles across Ray."""

from __future__ import annotations


class StoreError(Exception):
    """Base of every store error."""


class NotMigratedError(StoreError):
    def __init__(self, url: str, current: str | None, head: str | None) -> None:
        super().__init__(url, current, head)
        self.url, self.current, self.head = url, current, head

    def __str__(self) -> str:
        at = self.current or "an empty schema"
        return (
            f"the database {self.url} is not migrated (it is at {at}, the code needs {self.head}); "
            "run `sitedesk db upgrade`"
        )


class DatabaseUnreachableError(StoreError):
    def __init__(self, url: str, reason: str) -> None:
        super().__init__(url, reason)
        self.url, self.reason = url, reason

    def __str__(self) -> str:
        return f"cannot reach the database {self.url}: {self.reason}"


class NotFoundError(StoreError):
    def __init__(self, what: str, key: object) -> None:
        super().__init__(what, key)
        self.what, self.key = what, key

    def __str__(self) -> str:
        return f"{self.what} {self.key} not found"


class ConflictError(StoreError):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class IntegrityViolation(StoreError):
    """A constraint of the schema refused the write (missing parent, value out of range, ...)."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message
