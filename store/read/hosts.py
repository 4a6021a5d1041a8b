"""The managed hosts as administrators read them: how each is reached, its queue, its health."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from pydantic import BaseModel

from store.db import Database
from store.models import ManagedHost
from store.read.changes import PENDING
from store.repositories import ChangeRepository, HostRepository


class HostHealth(BaseModel):
    # up, down (unreachable, or not set up: its client key unusable where the executors run),
    # host_key_mismatch, lock_busy (someone holds the automation lock too long), stopped,
    # unknown (no executor has it)
    state: str
    queued: int = 0
    last_error: str | None = None
    lock_busy_since: datetime | None = None


class HostRead(BaseModel):
    id: int
    name: str
    address: str
    ssh_port: int
    ssh_user: str
    role: str
    status: str
    host_key: str
    credentials_ref: str
    root_dir: str
    layout: dict[str, Any]
    pending_changes: int = 0
    health: HostHealth | None = None


def host_read(row: ManagedHost, pending: int = 0, health: HostHealth | None = None) -> HostRead:
    return HostRead(
        id=row.id,
        name=row.name,
        address=row.address,
        ssh_port=row.ssh_port,
        ssh_user=row.ssh_user,
        role=row.role,
        status=row.status,
        host_key=row.host_key,
        credentials_ref=row.credentials_ref,
        root_dir=row.root_dir,
        layout=json.loads(row.services_meta) if row.services_meta else {},
        pending_changes=pending,
        health=health,
    )


class HostReads:
    def __init__(self, db: Database) -> None:
        self.db = db

    def hosts(self, name: str | None = None) -> list[HostRead]:
        """Every managed host (or the one named), with its count of pending changes."""
        with self.db.read() as s:
            if name is None:
                rows = HostRepository(s).all()
            else:
                one = HostRepository(s).by_name(name)
                rows = [one] if one is not None else []
            counts = ChangeRepository(s).pending_by_host(PENDING)
            return [host_read(r, counts.get(r.id, 0)) for r in rows]
