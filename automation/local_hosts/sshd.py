"""A real OpenSSH sshd on loopback for a local host: its keys, its config, root's login."""

from __future__ import annotations

import subprocess
from pathlib import Path

from automation.local_hosts.daemon import Daemon, wait_port
from automation.loopback import free_port

SSHD = "/usr/sbin/sshd"


class LocalSshd(Daemon):
    """A real OpenSSH sshd on a loopback port, root login with one generated client key."""

    name = "sshd"

    def __init__(self, directory: Path) -> None:
        super().__init__()
        self.dir = directory.resolve()
        self.port = free_port()
        self.conf = self.dir / "sshd_config"
        self.host_key_file = self.dir / "ssh_host_ed25519_key"
        self.client_key_file = self.dir / "client_ed25519"

    def _keys(self) -> None:
        self.dir.mkdir(parents=True, exist_ok=True)
        for path in (self.host_key_file, self.client_key_file):
            if not path.exists():
                subprocess.run(
                    ["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "", "-f", str(path)],
                    check=True,
                )
        (self.dir / "authorized_keys").write_text(Path(f"{self.client_key_file}.pub").read_text())
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege-separation directory

    @property
    def host_key_line(self) -> str:
        """The host's public key as an OpenSSH line (what a caller pins)."""
        return Path(f"{self.host_key_file}.pub").read_text().strip()

    def _write_config(self) -> None:
        self._keys()
        self.conf.write_text(
            f"""Port {self.port}
ListenAddress 127.0.0.1
HostKey {self.host_key_file}
AuthorizedKeysFile {self.dir}/authorized_keys
PidFile {self.dir}/sshd.pid
UsePAM no
StrictModes no
MaxSessions 100
MaxStartups 200:30:400
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
UseDNS no
# root's own ~/.bashrc on this box is slow (pyenv); a managed host's shell starts clean
SetEnv HOME={self.dir}
LogLevel ERROR
Subsystem sftp internal-sftp
"""
        )

    def _argv(self) -> list[str]:
        return [SSHD, "-D", "-e", "-f", str(self.conf)]

    def _ready(self, proc: subprocess.Popen[bytes]) -> None:
        wait_port(self.port, 15, proc)

    def start(self) -> None:
        self._write_config()
        self._spawn(self.dir / "sshd.log")
