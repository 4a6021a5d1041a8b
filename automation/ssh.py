"""SSH connection layer (paramiko): pinned host keys, TCP_NODELAY, a timeout on every exec.

Every paramiko/socket error is converted here into one of our own error types naming the host:

- ``HostKeyMismatch`` — the host presented a key other than the pinned one (never retried);
- ``HostUnreachable`` — nothing was run: connection refused, handshake or auth failed;
- ``OutcomeUnknown`` — a command may or may not have run (timeout, dropped connection): the
  caller settles it from the on-host journal before any retry.
"""

from __future__ import annotations

import base64
import contextlib
import os
import socket
import stat
import threading
import time
from dataclasses import dataclass

import paramiko

from automation.host import HostSpec


class SshError(Exception):
    """Base of the SSH errors; keeps its arguments so it pickles across process boundaries."""

    def __init__(self, host: str, detail: str = "") -> None:
        super().__init__(host, detail)
        self.host = host
        self.detail = detail

    def __str__(self) -> str:
        return f"{self.host}: {self.detail}"


class HostUnreachable(SshError):
    """The host could not be reached or refused us; nothing was run."""


class OutcomeUnknown(SshError):
    """A command was sent but its result was lost (timeout or dropped connection)."""


class HostKeyMismatch(SshError):
    """The host's key is not the pinned one."""

    def __init__(self, host: str, expected: str, got: str) -> None:
        Exception.__init__(self, host, expected, got)
        self.host = host
        self.expected = expected
        self.got = got
        self.detail = f"host key mismatch: expected {expected}, got {got}"


@dataclass(frozen=True)
class ExecResult:
    exit_status: int
    out: bytes
    err: bytes

    @property
    def stdout(self) -> str:
        return self.out.decode("utf-8", "replace")

    @property
    def stderr(self) -> str:
        return self.err.decode("utf-8", "replace")


_KEY_TYPES: dict[str, tuple[str, ...]] = {
    "ssh-ed25519": ("ssh-ed25519",),
    "ssh-rsa": ("rsa-sha2-512", "rsa-sha2-256", "ssh-rsa"),
    "ecdsa-sha2-nistp256": ("ecdsa-sha2-nistp256",),
    "ecdsa-sha2-nistp384": ("ecdsa-sha2-nistp384",),
    "ecdsa-sha2-nistp521": ("ecdsa-sha2-nistp521",),
}


def parse_host_key(line: str) -> tuple[str, bytes]:
    """(key type, key blob) of an OpenSSH public-key line ``type base64 [comment]``."""
    parts = line.split()
    if len(parts) < 2 or parts[0] not in _KEY_TYPES:
        raise ValueError(f"not an OpenSSH public key line of a supported type: {line[:40]!r}")
    return parts[0], base64.b64decode(parts[1], validate=True)


def _check_key_file(path: str) -> None:
    """The client key must be a private key file of ours, not any file an admin named: a
    regular file (no link), owned by this process's user, readable by nobody else."""
    try:
        st = os.lstat(path)
    except OSError as exc:
        raise ValueError(f"cannot read private key {path}: {exc.strerror}") from None
    if not stat.S_ISREG(st.st_mode):
        raise ValueError(f"private key {path} is not a regular file (links are refused)")
    if st.st_uid != os.geteuid() or st.st_mode & 0o077:
        raise ValueError(
            f"private key {path} must be owned by uid {os.geteuid()} and mode 0600 or 0400 "
            f"(it is uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):o})"
        )


def _load_private_key(path: str) -> paramiko.PKey:
    _check_key_file(path)
    for cls in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return cls.from_private_key_file(path)
        except (paramiko.SSHException, ValueError):
            continue
    raise ValueError(f"cannot load private key {path}")


class SshConnection:
    """One persistent SSH connection to one host, reopened on demand after a failure.

    Thread-safe: several channels may run at once over the one transport.
    """

    def __init__(self, spec: HostSpec, *, connect_timeout: float = 5.0) -> None:
        self.spec = spec
        self.connect_timeout = connect_timeout
        self._key_type, self._key_blob = parse_host_key(spec.host_key)
        self._pkey = _load_private_key(spec.private_key_path)
        self._transport: paramiko.Transport | None = None
        self._lock = threading.Lock()

    @property
    def host(self) -> str:
        return self.spec.host_id

    @property
    def connected(self) -> bool:
        t = self._transport
        return t is not None and t.is_active()

    def connect(self) -> paramiko.Transport:
        """The live transport, opening it if needed (pinned key, then public-key auth)."""
        with self._lock:
            if self._transport is not None and self._transport.is_active():
                return self._transport
            self._close_locked()
            self._transport = self._open()
            return self._transport

    def _open(self) -> paramiko.Transport:
        spec = self.spec
        try:
            sock = socket.create_connection((spec.address, spec.port), timeout=self.connect_timeout)
        except OSError as exc:
            raise HostUnreachable(self.host, f"connect {spec.address}:{spec.port}: {exc}") from exc
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        transport = paramiko.Transport(sock)
        try:
            transport.banner_timeout = self.connect_timeout
            transport.handshake_timeout = self.connect_timeout
            transport.get_security_options().key_types = _KEY_TYPES[self._key_type]
            transport.start_client(timeout=self.connect_timeout)
            got = transport.get_remote_server_key()
            if got.get_name() != self._key_type or got.asbytes() != self._key_blob:
                got_line = f"{got.get_name()} {got.get_base64()}"
                raise HostKeyMismatch(self.host, self.spec.host_key, got_line)
            transport.auth_publickey(spec.user, self._pkey)
            if not transport.is_authenticated():
                raise HostUnreachable(self.host, "public-key authentication failed")
            transport.set_keepalive(15)
            return transport
        except SshError:
            transport.close()
            raise
        except (paramiko.SSHException, OSError, EOFError) as exc:
            transport.close()
            raise HostUnreachable(self.host, f"ssh handshake/auth: {exc!r}") from exc

    def _close_locked(self) -> None:
        if self._transport is not None:
            with contextlib.suppress(Exception):
                self._transport.close()
            self._transport = None

    def close(self) -> None:
        with self._lock:
            self._close_locked()

    def _drop(self, transport: paramiko.Transport) -> None:
        with self._lock:
            if self._transport is transport:
                self._close_locked()

    def run(self, command: str, *, stdin: bytes | None = None, timeout: float) -> ExecResult:
        """Run ``command`` (a shell line built only from quoted values) with an exec timeout."""
        transport = self.connect()
        try:
            chan = transport.open_session(timeout=min(self.connect_timeout, timeout))
        except (paramiko.SSHException, OSError, EOFError) as exc:
            # The channel never opened, so nothing ran: safe to treat as unreachable.
            self._drop(transport)
            raise HostUnreachable(self.host, f"open channel: {exc!r}") from exc
        try:
            return self._exec(transport, chan, command, stdin, timeout)
        finally:
            with contextlib.suppress(Exception):
                chan.close()

    def _exec(
        self,
        transport: paramiko.Transport,
        chan: paramiko.Channel,
        command: str,
        stdin: bytes | None,
        timeout: float,
    ) -> ExecResult:
        deadline = time.monotonic() + timeout
        try:
            chan.settimeout(timeout)
            chan.exec_command(command)
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self._drop(transport)
            raise OutcomeUnknown(self.host, f"exec: {exc!r}") from exc
        out: list[bytes] = []
        err: list[bytes] = []
        try:
            if stdin is not None:
                chan.sendall(stdin)
            chan.shutdown_write()
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError
                chan.settimeout(remaining)
                chunk = chan.recv(65536)
                if not chunk:
                    break
                out.append(chunk)
            while chan.recv_stderr_ready():
                err.append(chan.recv_stderr(65536))
            if not chan.status_event.wait(max(0.0, deadline - time.monotonic())):
                raise TimeoutError
            while chan.recv_stderr_ready():
                err.append(chan.recv_stderr(65536))
            status = chan.recv_exit_status()
        except TimeoutError as exc:
            self._drop(transport)
            raise OutcomeUnknown(self.host, f"exec timed out after {timeout}s") from exc
        except (paramiko.SSHException, OSError, EOFError) as exc:
            self._drop(transport)
            raise OutcomeUnknown(self.host, f"exec: {exc!r}") from exc
        if status == -1:
            self._drop(transport)
            raise OutcomeUnknown(self.host, "connection dropped before the exit status")
        return ExecResult(status, b"".join(out), b"".join(err))
