"""The SLA policy of each priority, as the SCDB holds it, cached for a minute."""

from __future__ import annotations

import time

from sqlalchemy.orm import Session

from actors.config import ActorConfig
from actors.sla.business_time import BusinessCalendar, SlaTargets
from store.repositories import (
    SlaRepository,
)


class SlaPolicies:
    """Per-priority SLA targets, re-read from the SCDB at most once a minute."""

    def __init__(self, config: ActorConfig) -> None:
        self.config = config
        self._targets: dict[str, SlaTargets] = {}
        self._targets_loaded = 0.0

    def targets(self, s: Session) -> dict[str, SlaTargets]:
        if not self._targets or time.monotonic() - self._targets_loaded > 60:
            repo = SlaRepository(s)
            calendar = BusinessCalendar(self.config.business_hours, repo.holidays())
            self._targets = {
                prio: SlaTargets(
                    calendar,
                    first_response_minutes=p.first_response_minutes,
                    resolution_minutes=p.resolution_minutes,
                    business_hours=p.business_hours,
                    warn_percent=p.warn_percent,
                )
                for prio, p in repo.policies().items()
            }
            self._targets_loaded = time.monotonic()
        return self._targets
