"""``LocalHost``: one managed host on this machine, its sshd, named and nginx under one directory,
the further services a test or the demo asks for (``SERVICES``), and the ``HostSpec`` a caller
registers for it."""

from __future__ import annotations

import importlib
from pathlib import Path
from types import TracebackType
from typing import Any, Protocol, Self

from automation.host import HostLayout, HostSpec
from automation.local_hosts.daemon import Daemon
from automation.local_hosts.named import LocalNamed
from automation.local_hosts.nginx import LocalNginx
from automation.local_hosts.sshd import LocalSshd


class HostService(Protocol):
    """A further real server of a local host (Dovecot and Postfix, an FTP server, MariaDB),
    made with the host's root (the managed files) and a directory of its own (config, state)."""

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def layout(self) -> dict[str, Any]:
        """The ``HostLayout`` fields it sets: its port(s) and the argv of its tools."""
        ...


# The services a LocalHost may run besides sshd, named and nginx, by name: "module:class",
# imported only when a host asks for it (each has its own module in this package).
SERVICES: dict[str, str] = {
    "mail": "automation.local_hosts.mail:LocalMail",  # Dovecot (IMAP, LMTP) + Postfix (SMTP)
    "ftp": "automation.local_hosts.ftp:LocalFtp",  # pure-ftpd with PureDB virtual users
    "database": "automation.local_hosts.mariadb:LocalMariaDB",  # a private mariadbd
}
ALL_SERVICES = tuple(SERVICES)


def _service(name: str, root: Path, directory: Path) -> HostService:
    module, _, cls = SERVICES[name].partition(":")
    made: HostService = getattr(importlib.import_module(module), cls)(root, directory)
    return made


class LocalHost:
    """One managed host on this machine: sshd plus (optionally) named and nginx, one root dir.

    ``start()`` starts all three, ``stop()`` kills them; ``stop_ssh()``/``start_ssh()`` take only
    the SSH door down and up again (same port and host key), ``freeze()``/``thaw()`` hang it.
    Each server's pid file is in its directory, or in ``pid_dir`` (``<host_id>.<server>.json``)
    when given: the folder ``automation.processes.stop_leftovers`` reads.
    """

    def __init__(
        self,
        base: Path | str,
        host_id: str,
        *,
        with_named: bool = True,
        with_nginx: bool = True,
        zones: tuple[str, ...] = (),
        services: tuple[str, ...] = (),
        pid_dir: Path | None = None,
    ) -> None:
        self.host_id = host_id
        self.base = Path(base).resolve() / host_id  # configs name absolute paths
        self.root = self.base / "root"
        self.sshd = LocalSshd(self.base / "sshd")
        self.named = LocalNamed(self.root, self.base / "named") if with_named else None
        self.nginx = LocalNginx(self.root, self.base / "nginx") if with_nginx else None
        self._zones = zones
        unknown = set(services) - set(SERVICES)
        if unknown:
            raise ValueError(f"unknown services {sorted(unknown)}; known: {sorted(SERVICES)}")
        self.services: dict[str, HostService] = {
            name: _service(name, self.root, self.base / name) for name in services
        }
        for daemon in self.daemons():
            daemon.label = f"{host_id} {daemon.name}"
            if pid_dir is not None:
                daemon.pid_file = Path(pid_dir) / f"{host_id}.{daemon.name}.json"

    def daemons(self) -> list[Daemon]:
        """Every server process of the host, sshd first."""
        found: list[Daemon] = [self.sshd]
        found += [d for d in (self.named, self.nginx) if d is not None]
        for service in self.services.values():
            if isinstance(service, Daemon):
                found.append(service)
            elif callable(daemons := getattr(service, "daemons", None)):
                found += daemons()
        return found

    def start(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            if self.named is not None:
                self.named._write_config()
                for zone in self._zones:
                    self.named.add_zone(zone)
                self.named.start()
            if self.nginx is not None:
                self.nginx.start()
            for service in self.services.values():
                service.start()
            self.sshd.start()
        except Exception:
            self.stop()
            raise

    def stop(self) -> None:
        for daemon in (self.sshd, *reversed(self.services.values()), self.nginx, self.named):
            if daemon is not None:
                daemon.stop()

    def stop_ssh(self) -> None:
        self.sshd.stop()

    def start_ssh(self) -> None:
        self.sshd.start()

    def freeze(self) -> None:
        self.sshd.freeze()

    def thaw(self) -> None:
        self.sshd.thaw()

    def add_zone(self, zone: str) -> None:
        if self.named is None:
            raise RuntimeError("this host has no named")
        self.named.add_zone(zone)

    def layout(self) -> HostLayout:
        named, nginx = self.named, self.nginx
        fields: dict[str, Any] = {}
        for service in self.services.values():
            fields.update(service.layout())
        return HostLayout(
            root=str(self.root),
            dns_port=named.port if named is not None else 53,
            rndc=tuple(named.rndc_argv()) if named is not None else ("rndc",),
            nginx=tuple(nginx.nginx_argv()) if nginx is not None else ("nginx",),
            http_port=nginx.port if nginx is not None else 80,
            https_port=nginx.https_port if nginx is not None else None,
            **fields,
        )

    def spec(self) -> HostSpec:
        """What a caller registers: address, port, user, pinned host key, client key, layout."""
        return HostSpec(
            host_id=self.host_id,
            address="127.0.0.1",
            port=self.sshd.port,
            user="root",
            host_key=self.sshd.host_key_line,
            private_key_path=str(self.sshd.client_key_file),
            layout=self.layout(),
        )

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc: type[BaseException] | None, val: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
