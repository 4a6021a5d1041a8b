"""An account's standing in the SCDB: what an applied suspension or unsuspension of the account
on its hosts (automation/changes/suspend.py) makes of the account and its services."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy.orm import Session

from store.models.enums import AccountStatus, ServiceStatus
from store.repositories import AccountRepository

# change kind -> (the account's status once it is applied, service status from -> to)
STANDING_AFTER: dict[str, tuple[AccountStatus, ServiceStatus, ServiceStatus]] = {
    "account_suspend": (AccountStatus.suspended, ServiceStatus.active, ServiceStatus.suspended),
    "account_unsuspend": (AccountStatus.active, ServiceStatus.suspended, ServiceStatus.active),
}


def record_standing(s: Session, account_id: int, kind: str, now: datetime) -> bool:
    """In the caller's transaction (the one that records the change applied): the account and
    its services take the standing `kind` gave them on the hosts. Services that are pending or
    cancelled stay as they are. False for a kind that changes no standing."""
    after = STANDING_AFTER.get(kind)
    if after is None:
        return False
    account_status, from_status, to_status = after
    accounts = AccountRepository(s)
    accounts.get(account_id).status = account_status.value
    for service in accounts.services(account_id):
        if service.status == from_status.value:
            service.status = to_status.value
            service.updated_at = now
    return True
