"""The SLA policy of each priority, as the SCDB holds it, cached for a minute, and the rule
that moves a ticket's due times on after its clock stood still."""

from __future__ import annotations

import time
from datetime import datetime, timedelta

from sqlalchemy.orm import Session

from actors.config import ActorConfig
from actors.sla.business_time import BusinessCalendar, SlaTargets
from store.models import Ticket
from store.repositories import SlaRepository


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

    def resume(self, s: Session, t: Ticket, now: datetime) -> None:
        """Move the due times on by the time their clock stood still (waiting on the customer,
        or resolved): under a business-hours policy the business time that passed meanwhile,
        so a pause over a night or a weekend does not hand out its hours twice."""
        if t.sla_paused_at is None:
            return
        target = self.targets(s).get(t.priority)
        paused = t.sla_paused_at
        minutes = target.elapsed(paused, now) if target else (now - paused).total_seconds() / 60

        def later(due: datetime) -> datetime:
            if minutes <= 0:
                return due
            return target.add(due, minutes) if target else due + timedelta(minutes=minutes)

        if t.first_responded_at is None and t.first_response_due:
            t.first_response_due = later(t.first_response_due)
        if t.resolution_due:
            t.resolution_due = later(t.resolution_due)
        t.sla_paused_at = None
