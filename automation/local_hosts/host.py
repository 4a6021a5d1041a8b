"""``LocalHost``: one managed host on this machine, its sshd, named and nginx under one directory,
and the ``HostSpec`` a caller registers for it."""

from __future__ import annotations

from pathlib import Path
from types import TracebackType
from typing import Self

from automation.host import HostLayout, HostSpec
from automation.local_hosts.named import LocalNamed
from automation.local_hosts.nginx import LocalNginx
from automation.local_hosts.sshd import LocalSshd


class LocalHost:
    """One managed host on this machine: sshd plus (optionally) named and nginx, one root dir.

    ``start()`` starts all three, ``stop()`` kills them; ``stop_ssh()``/``start_ssh()`` take only
    the SSH door down and up again (same port and host key), ``freeze()``/``thaw()`` hang it.
    """

    def __init__(
        self,
        base: Path | str,
        host_id: str,
        *,
        with_named: bool = True,
        with_nginx: bool = True,
        zones: tuple[str, ...] = (),
    ) -> None:
        self.host_id = host_id
        self.base = Path(base).resolve() / host_id  # configs name absolute paths
        self.root = self.base / "root"
        self.sshd = LocalSshd(self.base / "sshd")
        self.named = LocalNamed(self.root, self.base / "named") if with_named else None
        self.nginx = LocalNginx(self.root, self.base / "nginx") if with_nginx else None
        self._zones = zones

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
            self.sshd.start()
        except Exception:
            self.stop()
            raise

    def stop(self) -> None:
        for daemon in (self.sshd, self.nginx, self.named):
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
        return HostLayout(
            root=str(self.root),
            dns_port=named.port if named is not None else 53,
            rndc=tuple(named.rndc_argv()) if named is not None else ("rndc",),
            nginx=tuple(nginx.nginx_argv()) if nginx is not None else ("nginx",),
            http_port=nginx.port if nginx is not None else 80,
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
