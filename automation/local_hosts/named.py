"""A real BIND ``named`` on loopback for a local host: its config, its rndc key and its zones."""

from __future__ import annotations

import base64
import secrets
import subprocess
import time
from pathlib import Path

from automation.local_hosts.daemon import Daemon, wait_port
from automation.loopback import free_port


class LocalNamed(Daemon):
    """A real BIND ``named -g`` on a loopback port serving the zones under a host root."""

    name = "named"

    def __init__(self, root: Path, directory: Path) -> None:
        super().__init__()
        self.root = root.resolve()
        self.dir = directory.resolve()
        self.port = free_port()
        self.rndc_port = free_port()
        self.conf = self.dir / "named.conf"
        self.rndc_conf = self.dir / "rndc.conf"

    @property
    def zones_conf(self) -> Path:
        return self.root / "named" / "zones.conf"

    def _write_config(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        self.zones_conf.parent.mkdir(parents=True, exist_ok=True)
        if not self.zones_conf.exists():
            self.zones_conf.write_text("")
        if not self.rndc_conf.exists():
            secret = base64.b64encode(secrets.token_bytes(32)).decode()
            key = f'key "rndc-key" {{ algorithm hmac-sha256; secret "{secret}"; }};\n'
            self.rndc_conf.write_text(
                key + 'options { default-key "rndc-key"; default-server 127.0.0.1; '
                f"default-port {self.rndc_port}; }};\n"
            )
            (self.dir / "rndc.key").write_text(key)
        self.conf.write_text(
            f"""options {{
    directory "{self.dir}";
    pid-file "{self.dir}/named.pid";
    session-keyfile "{self.dir}/session.key";
    managed-keys-directory "{self.dir}";
    listen-on port {self.port} {{ 127.0.0.1; }};
    listen-on-v6 {{ none; }};
    recursion no;
    dnssec-validation no;
    allow-transfer {{ 127.0.0.1; }};
    notify no;
}};
include "{self.dir}/rndc.key";
controls {{ inet 127.0.0.1 port {self.rndc_port} allow {{ 127.0.0.1; }} keys {{ "rndc-key"; }}; }};
include "{self.zones_conf}";
"""
        )

    def add_zone(self, zone: str, *, ns_address: str = "127.0.0.1") -> None:
        """Create an empty zone (SOA, NS) under the root and declare it; reconfig if running."""
        zone_file = self.root / "zones" / f"{zone}.zone"
        zone_file.parent.mkdir(parents=True, exist_ok=True)
        if not zone_file.exists():
            zone_file.write_text(
                f"$ORIGIN {zone}.\n$TTL 300\n"
                f"@ 3600 IN SOA ns1.{zone}. hostmaster.{zone}. 1 3600 600 1209600 300\n"
                f"@ 3600 IN NS ns1.{zone}.\nns1 3600 IN A {ns_address}\n"
            )
        self.zones_conf.parent.mkdir(parents=True, exist_ok=True)
        line = f'zone "{zone}" {{ type primary; file "{zone_file}"; }};\n'
        existing = self.zones_conf.read_text() if self.zones_conf.exists() else ""
        if line not in existing:
            self.zones_conf.write_text(existing + line)
            if self.running:
                self._rndc("reconfig")

    def _rndc(self, *command: str, attempts: int = 10) -> None:
        """Run an rndc command; named refuses one while a reload is still under way, so a
        refusal is tried again a few times before it counts."""
        for attempt in range(attempts):
            result = subprocess.run(
                [*self.rndc_argv(), *command], capture_output=True, text=True, check=False
            )
            if result.returncode == 0:
                return
            if attempt < attempts - 1:
                time.sleep(0.2)
        raise subprocess.CalledProcessError(
            result.returncode, result.args, result.stdout, result.stderr
        )

    def rndc_argv(self) -> list[str]:
        return ["rndc", "-c", str(self.rndc_conf)]

    def _argv(self) -> list[str]:
        return ["named", "-g", "-c", str(self.conf), "-n", "1"]

    def _ready(self, proc: subprocess.Popen[bytes]) -> None:
        wait_port(self.port, 15, proc)
        wait_port(self.rndc_port, 15, proc)

    def start(self) -> None:
        self._write_config()
        self._spawn(self.dir / "named.log")
