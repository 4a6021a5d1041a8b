"""Web vhosts: an nginx server block per domain, document root inside the account's home.

The server block is the site: it listens for HTTP, and includes two optional files that other
kinds write (a glob include, so each is there only while its file exists): the account's
suspension (``nginx/suspended/<account>.conf``, automation.changes.suspend) and the domain's
TLS listener (``nginx/tls/<domain>.conf``, automation.changes.tls). HTTPS thus serves exactly
the HTTP site, suspension included, and a certificate is served only by a site of its domain.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from automation.changes.base import (
    AccountName,
    ChangeBase,
    DomainName,
    ProbeResults,
    RelPath,
    Workspace,
)
from automation.errors import ChangeConflict
from automation.host import HostLayout

SITE_HEADER = "X-Gdcas-Site"


DISABLE_SYMLINKS = "disable_symlinks if_not_owner;"


def site_path(domain: str) -> str:
    return f"nginx/sites/{domain}.conf"


def suspended_path(account: str) -> str:
    return f"nginx/suspended/{account}.conf"


def tls_path(domain: str) -> str:
    """The HTTPS listener and certificate of the site of ``domain`` (written by TlsInstall)."""
    return f"nginx/tls/{domain}.conf"


def optional_include(path: str) -> str:
    """An nginx ``include`` of an absolute path that may be absent (a glob matching one file:
    nginx accepts a glob that matches nothing)."""
    return f"include {path[:-1]}[{path[-1]}];"


def tls_include(layout: HostLayout, domain: str) -> str:
    """The line of a site's server block that serves it over HTTPS once a certificate is in."""
    return f"    {optional_include(layout.path(tls_path(domain)))}\n"


def _http_verify(ws: Workspace, domain: str, probe: ProbeResults) -> str | None:
    want = "present" if ws.read(site_path(domain)) is not None else "absent"
    got = probe.http.get(domain)
    if got != want:
        return f"http://{domain}/: site is {got or 'not probed'}, expected {want}"
    return None


def _nginx(layout: HostLayout) -> set[tuple[str, ...]]:
    return {("nginx",)}


class VhostCreate(ChangeBase):
    """Create a site: nginx server block, document root, a placeholder index if there is none."""

    kind: Literal["vhost_create"] = "vhost_create"
    verified_by: ClassVar[str] = "nginx on the host serves the site"
    account: AccountName
    domain: DomainName
    document_root: RelPath = "public_html"
    aliases: tuple[DomainName, ...] = Field(default=(), max_length=20)

    def target(self) -> str:
        return "nginx"

    def services(self, layout: HostLayout) -> set[tuple[str, ...]]:
        return _nginx(layout)

    def _docroot(self) -> str:
        return f"home/{self.account}/{self.document_root}"

    def reads(self) -> list[str]:
        return [site_path(self.domain), f"{self._docroot()}/index.html"]

    def render(self, ws: Workspace) -> str:
        lay = ws.layout
        names = " ".join([self.domain, *self.aliases])
        suspended = lay.path(suspended_path(self.account))
        return (
            f"# managed by GDCAS: vhost {self.domain} of account {self.account}\n"
            "server {\n"
            f"    listen {lay.http_address}:{lay.http_port};\n"
            f"    server_name {names};\n"
            f"    root {lay.path(self._docroot())};\n"
            "    index index.html;\n"
            # A link in the site may lead only to files of the link's own owner: the customer's
            # links reach the customer's files, never other accounts' or the system's.
            f"    {DISABLE_SYMLINKS}\n"
            f"    add_header {SITE_HEADER} {self.domain} always;\n"
            # The glob makes the include optional: the file exists only while suspended.
            f"    {optional_include(suspended)}\n"
            # HTTPS: the TLS file exists once a certificate for the domain is installed.
            f"{tls_include(lay, self.domain)}"
            "    location / { try_files $uri $uri/ =404; }\n"
            "}\n"
        )

    def apply(self, ws: Workspace) -> None:
        config = self.render(ws)
        current = ws.read(site_path(self.domain))
        # The same site as written before vhosts had `disable_symlinks` or the TLS include:
        # requesting it again upgrades it to the current template (the way to protect sites
        # made before, and to let them serve HTTPS).
        if current is not None and current not in self._templates(ws, config):
            raise ChangeConflict(f"a different vhost for {self.domain} already exists")
        ws.write(site_path(self.domain), config)
        ws.dirs.add(self._docroot())
        index = f"{self._docroot()}/index.html"
        if ws.read(index) is None:
            ws.write(index, f"<!doctype html><title>{self.domain}</title><p>{self.domain}\n")
        ws.checks.add(("nginx",))
        ws.reloads.add(("nginx",))
        ws.http_probes.add(self.domain)

    def _templates(self, ws: Workspace, config: str) -> set[str]:
        """This site as the current template and the earlier ones (without either line)."""
        lines = [f"    {DISABLE_SYMLINKS}\n", tls_include(ws.layout, self.domain)]
        out = {config}
        for line in lines:
            out |= {c.replace(line, "") for c in out}
        return out

    def verify(self, ws: Workspace, probe: ProbeResults) -> str | None:
        return _http_verify(ws, self.domain, probe)


class VhostDelete(ChangeBase):
    """Remove a site's server block (the document root and its files are kept, and so are its
    certificate and TLS file: nothing includes them until the site is created again)."""

    kind: Literal["vhost_delete"] = "vhost_delete"
    verified_by: ClassVar[str] = "nginx on the host no longer serves the site"
    domain: DomainName

    def target(self) -> str:
        return "nginx"

    def services(self, layout: HostLayout) -> set[tuple[str, ...]]:
        return _nginx(layout)

    def reads(self) -> list[str]:
        return [site_path(self.domain)]

    def apply(self, ws: Workspace) -> None:
        if ws.read(site_path(self.domain)) is None:
            raise ChangeConflict(f"there is no vhost for {self.domain}")
        ws.write(site_path(self.domain), None)
        ws.checks.add(("nginx",))
        ws.reloads.add(("nginx",))
        ws.http_probes.add(self.domain)

    def verify(self, ws: Workspace, probe: ProbeResults) -> str | None:
        return _http_verify(ws, self.domain, probe)
