"""The managed hosts: registration (host key pinned, client key checked where the executors
run), and the SCDB row as GDCAS connects to it."""

from __future__ import annotations

import json

from pydantic import ValidationError

from actors.changes.dto import NewHost
from actors.errors import HostExists, InvalidHost
from actors.idempotency import earlier_answer, remember_answer
from actors.principal import Principal
from automation.host import HostLayout, HostSpec
from automation.ssh import SshConnection
from store.db import Database
from store.models import ManagedHost
from store.read.hosts import HostRead, host_read
from store.repositories import AuditRepository, HostRepository

# Where a problem of the layout model is reported in the API's terms.
_FIELD_OF = {"root": "root_dir"}


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


def key_problem(spec: HostSpec) -> str | None:
    """Why this process could not log in to the host with its client key (missing, unreadable,
    a link, not ours or readable by others, not a private key), or None. Reads the key as an
    SSH connection does, and connects to nothing."""
    try:
        SshConnection(spec).close()
    except (ValueError, OSError) as exc:  # OSError: a key file its owner may not read
        return str(exc)
    return None


def _spec(host: NewHost) -> HostSpec:
    """The host as GDCAS would connect to it; InvalidHost naming each field that is wrong."""
    try:
        layout = HostLayout(root=host.root_dir, **host.layout)
        return HostSpec(
            host_id=host.name,
            address=host.address,
            port=host.ssh_port,
            user=host.ssh_user,
            host_key=host.host_key,
            private_key_path=host.credentials_ref,
            layout=layout,
        )
    except ValidationError as exc:
        problems = []
        for e in exc.errors():
            loc = ".".join(str(p) for p in e["loc"])
            where = _FIELD_OF.get(loc) or (f"layout.{loc}" if loc else "layout")
            problems.append((where, e["msg"]))
        fields = ", ".join(f for f, _ in problems)
        raise InvalidHost(f"the host is not valid: check {fields}", problems) from None


class HostRegistry:
    def __init__(self, db: Database) -> None:
        self.db = db

    def register_host(
        self,
        host: NewHost,
        by: Principal | None = None,
        *,
        key: str | None = None,
        request_hash: str = "",
    ) -> HostRead:
        """Register a managed host (its key pinned as given). Refused when its layout is not
        valid or its client key is not usable here (InvalidHost), or when the name is taken
        (HostExists); a retried `key` answers with the first registration."""
        with self.db.write() as s:
            if by is not None:
                earlier = earlier_answer(s, by, key, request_hash)
                if earlier is not None:
                    return HostRead.model_validate(earlier)
            spec = _spec(host)
            problem = key_problem(spec)
            if problem is not None:
                raise InvalidHost(
                    f"credentials_ref: the executors can not use this client key: {problem}",
                    [("credentials_ref", problem)],
                )
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
                root_dir=spec.layout.root,
                services_meta=json.dumps(spec.layout.model_dump(mode="json", exclude={"root"})),
            )
            read = host_read(row)
            if by is not None:
                AuditRepository(s).record(
                    actor_label=by.label, actor_user_id=by.user_id, action="host_registered",
                    object_type="managed_host", object_id=row.id,
                    data={"name": row.name, "address": row.address, "port": row.ssh_port,
                          "host_key": row.host_key},
                )  # fmt: skip
                remember_answer(s, by, key, request_hash, 201, read.model_dump(mode="json"))
            return read

    def host_specs(self) -> dict[int, HostSpec]:
        """Every active managed host, by SCDB id, as the executor connects to it."""
        with self.db.read() as s:
            return {r.id: host_spec(r) for r in HostRepository(s).all() if r.status != "retired"}
