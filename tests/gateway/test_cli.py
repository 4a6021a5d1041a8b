"""`sitedesk` as a person runs it: one-line errors, and a platform that comes up."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import psutil
import pytest
import redis

from automation.loopback import free_port
from gateway.platform import REVOKED_PREFIX
from store.repositories.user import token_digest
from tests.conftest import REDIS_URL

SITEDESK = [sys.executable, "-m", "gateway.cli"]


def run(args: list[str], tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("SITEDESK_")}
    full_env.update({"SITEDESK_DATA_DIR": str(tmp_path / "data"), "COLUMNS": "80", **env})
    return subprocess.run(
        SITEDESK + args, capture_output=True, text=True, env=full_env, timeout=120, check=False
    )


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    lines = [x for x in result.stderr.splitlines() if x.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert "Traceback" not in result.stderr + result.stdout
    return lines[0]


def test_invalid_port_setting(tmp_path: Path) -> None:
    r = run(["up"], tmp_path, SITEDESK_HTTP_PORT="99999")
    assert r.returncode == 2
    assert "SITEDESK_HTTP_PORT" in one_error_line(r)


def test_port_taken(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        s.listen()
        port = s.getsockname()[1]
        r = run(["up"], tmp_path, SITEDESK_HTTP_PORT=str(port))
    assert r.returncode == 2
    assert f"port {port} on 127.0.0.1 is already in use" in one_error_line(r)


def test_database_unreachable(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://sitedesk:secret@127.0.0.1:{free_port()}/nowhere"
    r = run(["db", "upgrade"], tmp_path, SITEDESK_DATABASE_URL=url)
    assert r.returncode == 1
    line = one_error_line(r)
    assert "cannot reach the database" in line and "secret" not in line


def test_database_url_malformed(tmp_path: Path) -> None:
    r = run(["db", "upgrade"], tmp_path, SITEDESK_DATABASE_URL="not a url")
    assert r.returncode == 2
    assert "SITEDESK_DATABASE_URL" in one_error_line(r)


def test_demo_needs_a_migrated_database(tmp_path: Path) -> None:
    r = run(["demo"], tmp_path)
    assert r.returncode == 1
    assert "sitedesk db upgrade" in one_error_line(r)


def test_redis_missing(tmp_path: Path) -> None:
    r = run(["up"], tmp_path, SITEDESK_REDIS_URL=f"redis://127.0.0.1:{free_port()}/0",
            SITEDESK_HTTP_PORT=str(free_port()))  # fmt: skip
    assert r.returncode == 1
    assert "Redis at redis://127.0.0.1" in one_error_line(r)


def test_db_upgrade_then_demo_prints_and_saves_logins(tmp_path: Path) -> None:
    assert run(["db", "upgrade"], tmp_path).returncode == 0
    r = run(["demo"], tmp_path)
    assert r.returncode == 0, r.stderr
    saved = json.loads((tmp_path / "data" / "demo-logins.json").read_text())
    for login in saved:
        assert login["email"] in r.stdout and login["password"] in r.stdout


def test_token_create_list_revoke(tmp_path: Path) -> None:
    assert run(["db", "upgrade"], tmp_path).returncode == 0
    assert run(["demo"], tmp_path).returncode == 0
    made = run(["token", "create", "--user", "admin@sitedesk.demo", "--name", "notices",
                "--scope", "batch", "--days", "7", "--quiet"], tmp_path)  # fmt: skip
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert token.startswith("sdt_") and len(token) > 40
    listed = run(["token", "list"], tmp_path)
    assert token[:12] in listed.stdout and "batch" in listed.stdout and token not in listed.stdout
    refused = run(["token", "create", "--user", "ada@acme-bakery.test", "--name", "x",
                   "--scope", "batch"], tmp_path)  # fmt: skip
    assert refused.returncode == 2 and "not customers" in one_error_line(refused)
    bad_scope = run(["token", "create", "--user", "admin@sitedesk.demo", "--name", "x",
                     "--scope", "root"], tmp_path)  # fmt: skip
    assert bad_scope.returncode == 2
    revoked = run(["token", "revoke", token[:12]], tmp_path, SITEDESK_REDIS_URL=REDIS_URL)
    assert revoked.returncode == 0, revoked.stderr
    assert "not told" not in revoked.stdout
    # Running gateways see the mark at once (they check it on every cached token).
    assert redis.Redis.from_url(REDIS_URL).exists(REVOKED_PREFIX + token_digest(token)) == 1
    assert token[:12] not in run(["token", "list"], tmp_path).stdout
    again = run(["token", "revoke", token[:12]], tmp_path)
    assert again.returncode == 2 and "no live token" in one_error_line(again)


def ray_descendants_listening(pid: int) -> dict[str, set[str]]:
    from tests.cluster.test_ray_security import listening_addresses

    return listening_addresses(psutil.Process(pid))


@pytest.mark.ray
def test_up_serves_ready_and_stops_cleanly_on_ctrl_c(tmp_path: Path) -> None:
    """The README's run command: migrate, demo data, local Redis, local Ray (with its
    dashboard), HTTP gateway; private and loopback-only throughout, even with a stale Ray
    cluster file from some earlier `ray start` in Ray's temp dir."""
    from tests.cluster.test_ray_security import off_loopback

    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SITEDESK_", "RAY_AUTH"))}
    env.update(SITEDESK_HTTP_PORT=str(port))  # the default data dir, ./.sitedesk, as in the README
    ray_tmp = Path(tempfile.mkdtemp(prefix="sdray", dir="/tmp"))  # short: Ray's socket paths
    (ray_tmp / "ray").mkdir()
    (ray_tmp / "ray" / "ray_current_cluster").write_text(f"127.0.0.1:{free_port()}\n")
    env.update(RAY_TMPDIR=str(ray_tmp))
    proc = subprocess.Popen(
        [*SITEDESK, "up", "--demo", "--dashboard"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        body: dict[str, object] = {}
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline and proc.poll() is None:
            try:
                body = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=5).json()
                if body.get("status") == "ready":
                    break
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        assert body.get("status") == "ready", body
        assert set(body["checks"]) == {"database", "redis", "ray"}  # type: ignore[arg-type]
        listening = ray_descendants_listening(proc.pid)
        assert {"gcs_server", "raylet"} <= set(listening), listening
        assert off_loopback(listening) == {}

        data = tmp_path / ".sitedesk"
        assert stat.S_IMODE(data.stat().st_mode) == 0o711  # others pass, never list
        for secret in ("sitedesk.db", "demo-logins.json", "ray-token", "redis/redis.conf"):
            assert stat.S_IMODE((data / secret).stat().st_mode) == 0o600, secret
        redis_port = int(
            (data / "redis" / "redis.conf").read_text().split("port ", 1)[1].split()[0]
        )
        with pytest.raises(redis.AuthenticationError):
            redis.Redis(port=redis_port).ping()  # the private Redis wants its password
    finally:
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=60)
        shutil.rmtree(ray_tmp, ignore_errors=True)
    assert proc.returncode == 0, output
    assert "Traceback" not in output
    assert "Sitedesk is up" in output and "Demo logins" in output
    assert "requirepass" not in output and "redis://:" not in output  # no password printed
    assert "ok demo hosts: demo-host-1" in output, output  # real sshd + named + nginx
    assert (tmp_path / ".sitedesk" / "demo-logins.json").exists()
