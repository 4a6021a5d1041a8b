"""The client key named for a host must be a private key file of ours, not any local file."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from automation.host import HostLayout, HostSpec
from automation.ssh import SshConnection

HOST_KEY = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIFQZgfqnd8GoxeRuRA/umb+d2xG2NwWFMAfeHVdI3SNy"


def spec(key: Path) -> HostSpec:
    return HostSpec(host_id="k", address="127.0.0.1", host_key=HOST_KEY,
                    private_key_path=str(key), layout=HostLayout(root="/srv/k"))  # fmt: skip


@pytest.fixture
def key(tmp_path: Path) -> Path:
    path = tmp_path / "id_ed25519"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(path)], check=True)
    return path


def test_a_private_key_of_ours_loads(key: Path) -> None:
    assert SshConnection(spec(key)).host == "k"


def test_a_key_others_may_read_is_refused(key: Path) -> None:
    key.chmod(0o644)
    with pytest.raises(ValueError, match="mode 0600 or 0400"):
        SshConnection(spec(key))


def test_a_link_is_refused_even_to_a_good_key(key: Path, tmp_path: Path) -> None:
    link = tmp_path / "link"
    link.symlink_to(key)
    with pytest.raises(ValueError, match="not a regular file"):
        SshConnection(spec(link))


def test_any_other_file_is_refused(tmp_path: Path) -> None:
    other = tmp_path / "notes"
    other.write_text("not a key\n")
    other.chmod(0o600)
    with pytest.raises(ValueError, match="cannot load private key"):
        SshConnection(spec(other))
    with pytest.raises(ValueError, match="cannot read private key"):
        SshConnection(spec(tmp_path / "missing"))
