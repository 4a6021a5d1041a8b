"""Queries on managed hosts."""

from __future__ import annotations

from sqlalchemy import select

from store.models import ManagedHost
from store.repositories.base import Repository


class HostRepository(Repository):
    def create(
        self,
        *,
        name: str,
        address: str,
        ssh_port: int,
        host_key: str,
        credentials_ref: str,
        role: str = "shared",
        ssh_user: str = "root",
        root_dir: str = "/",
        services_meta: str | None = None,
    ) -> ManagedHost:
        host = ManagedHost(
            name=name,
            address=address,
            ssh_port=ssh_port,
            host_key=host_key,
            credentials_ref=credentials_ref,
            role=role,
            ssh_user=ssh_user,
            root_dir=root_dir,
            services_meta=services_meta,
        )
        self.session.add(host)
        self.session.flush()
        return host

    def get(self, host_id: int) -> ManagedHost:
        return self._get(ManagedHost, host_id, "managed host")

    def by_name(self, name: str) -> ManagedHost | None:
        return self.session.scalar(select(ManagedHost).where(ManagedHost.name == name))

    def all(self) -> list[ManagedHost]:
        return list(self.session.scalars(select(ManagedHost).order_by(ManagedHost.name)))
