"""What every repository shares: the session it works in."""

from __future__ import annotations

from typing import TypeVar

from sqlalchemy.orm import Session

from store.errors import NotFoundError
from store.models import Base

M = TypeVar("M", bound=Base)


class Repository:
    def __init__(self, session: Session) -> None:
        self.session = session

    def _get(self, model: type[M], key: object, what: str) -> M:
        row = self.session.get(model, key)
        if row is None:
            raise NotFoundError(what, key)
        return row
