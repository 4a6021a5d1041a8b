"""What a lane is asked to apply: ``ChangeRequest`` (a change for one host, with the id carried
to the host's journal) and ``QueuedRequest`` (a request waiting in a lane's queue, with its
attempts and whether its last outcome is in doubt)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, field_validator

from automation.changes import Change, ChangeBase

_CHANGE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,79}$")


class ChangeRequest(BaseModel):
    """A change to apply on one host, with its id (carried to the host's journal)."""

    model_config = ConfigDict(frozen=True)

    change_id: str
    host_id: str
    change: Change

    @field_validator("change_id")
    @classmethod
    def _id(cls, value: str) -> str:
        if not _CHANGE_ID.fullmatch(value):  # .match would let "id\n" through
            raise ValueError("change_id: 1-80 letters, digits, '_' or '-' (e.g. a UUID)")
        return value


@dataclass
class QueuedRequest:
    """A request in a lane's queue until its outcome is reported."""

    request: ChangeRequest
    attempts: int = 0
    in_doubt: bool = False
    solo: bool = False

    @property
    def change(self) -> ChangeBase:
        return self.request.change

    @property
    def id(self) -> str:
        return self.request.change_id
