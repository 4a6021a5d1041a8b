"""Local state on disk: the data directory and the secret files in it.

The data directory holds the SQLite SCDB (password hashes, pending TLS keys), the demo logins,
the Ray token and the local Redis's password. Other local users may pass through it (the demo
hosts' nginx workers, which run unprivileged, read web roots under `hosts/`) but never list it,
and every secret file in it is created 0600 (never created readable and chmod'ed later).
"""

from __future__ import annotations

import os
from pathlib import Path

DATA_DIR_MODE = 0o711  # others may traverse to the demo hosts' web roots, never list
PRIVATE_DIR_MODE = 0o700
PRIVATE_FILE_MODE = 0o600


def prepare_data_dir(path: Path) -> Path:
    """Create the data directory (or tighten an existing one) to owner-only but traversal."""
    path.mkdir(mode=DATA_DIR_MODE, parents=True, exist_ok=True)
    path.chmod(DATA_DIR_MODE)
    return path


def private_dir(path: Path) -> Path:
    path.mkdir(mode=PRIVATE_DIR_MODE, parents=True, exist_ok=True)
    path.chmod(PRIVATE_DIR_MODE)
    return path


def private_file(path: Path) -> Path:
    """Make `path` exist as a 0600 file without ever being readable by others."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, PRIVATE_FILE_MODE)
    os.close(fd)
    path.chmod(PRIVATE_FILE_MODE)  # an older file, made before this rule
    return path


def write_private(path: Path, text: str) -> None:
    """Replace `path` with `text`, 0600 from the first byte (a temporary file, then rename).
    A write that fails (a full disk) removes its temporary file and leaves `path` as it was."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.unlink(missing_ok=True)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE_FILE_MODE)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())  # ENOSPC shows here at the latest, before the rename
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged writer may still use on the file system holding `path` (or, not
    made yet, its nearest parent that is)."""
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def short_of_space(path: Path, reserve_bytes: int, need: int = 0) -> int:
    """How many bytes writing `need` more under `path` would eat into the free-space reserve
    (0: it fits). What is kept under the data directory (the SQLite SCDB with mail and files)
    is refused while this is not 0, so the disk never fills under a half-done write."""
    return max(0, reserve_bytes + need - free_bytes(path))
