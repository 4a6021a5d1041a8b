"""The managed hosts: registration (host key pinned), the SCDB row as GDCAS connects to it."""

from __future__ import annotations

import json

from actors.changes.dto import (
    PENDING,
    HostHealth,
    HostRead,
    NewHost,
)
from actors.errors import (
    HostExists,
)
from actors.principal import Principal
from automation.host import HostLayout, HostSpec
from store.db import Database
from store.models import ManagedHost
from store.repositories import (
    AuditRepository,
    ChangeRepository,
    HostRepository,
)


# -- hosts ---------------------------------------------------------------------------------
def host_spec(row: ManagedHost) -> HostSpec:
    """How the executor sees a managed host: services_meta holds the layout beside the root."""
    meta = json.loads(row.services_meta) if row.services_meta else {}
    layout = HostLayout(root=row.root_dir, **meta)
    return HostSpec(
        host_id=row.name,
        address=row.address,
        port=row.ssh_port,
        user=row.ssh_user,
        host_key=row.host_key,
        private_key_path=row.credentials_ref,
        layout=layout,
    )


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


class HostRegistry:
    def __init__(self, db: Database) -> None:
        self.db = db

    def register_host(self, host: NewHost, by: Principal | None = None) -> HostRead:
        """Register a managed host (its key pinned as given); 409 when the name is taken."""
        layout = HostLayout(root=host.root_dir, **host.layout)
        spec = HostSpec(
            host_id=host.name,
            address=host.address,
            port=host.ssh_port,
            user=host.ssh_user,
            host_key=host.host_key,
            private_key_path=host.credentials_ref,
            layout=layout,
        )
        meta = layout.model_dump(mode="json", exclude={"root"})
        with self.db.write() as s:
            repo = HostRepository(s)
            if repo.by_name(host.name) is not None:
                raise HostExists(f"a managed host named {host.name!r} is already registered")
            row = repo.create(
                name=spec.host_id,
                address=spec.address,
                ssh_port=spec.port,
                ssh_user=spec.user,
                role=host.role,
                host_key=spec.host_key,
                credentials_ref=spec.private_key_path,
                root_dir=layout.root,
                services_meta=json.dumps(meta),
            )
            if by is not None:
                AuditRepository(s).record(
                    actor_label=by.label, actor_user_id=by.user_id, action="host_registered",
                    object_type="managed_host", object_id=row.id,
                    data={"name": row.name, "address": row.address, "port": row.ssh_port,
                          "host_key": row.host_key},
                )  # fmt: skip
            return host_read(row)

    def hosts(self, name: str | None = None) -> list[HostRead]:
        with self.db.read() as s:
            rows = HostRepository(s).all()
            if name is not None:
                rows = [r for r in rows if r.name == name]
            counts = ChangeRepository(s).pending_by_host(PENDING)
            return [host_read(r, counts.get(r.id, 0)) for r in rows]

    def host_specs(self) -> dict[int, HostSpec]:
        """Every active managed host, by SCDB id, as the executor connects to it."""
        with self.db.read() as s:
            return {r.id: host_spec(r) for r in HostRepository(s).all() if r.status != "retired"}
