"""Errors of the bootstrap, each one a sentence a person can act on."""

from __future__ import annotations


class ClusterError(Exception):
    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    def __str__(self) -> str:
        return self.message


class RedisUnavailableError(ClusterError):
    pass


class RayUnavailableError(ClusterError):
    pass
