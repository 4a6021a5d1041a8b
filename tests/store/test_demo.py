"""The demo company loads once, with working logins in every role."""

from __future__ import annotations

import json
from pathlib import Path

from store.db import Database
from store.demo import DemoHost, load_demo
from store.repositories import AccountRepository, AgentRepository, HostRepository, UserRepository


def test_demo_loads_every_role_and_is_idempotent(db: Database, tmp_path: Path) -> None:
    path = tmp_path / "demo-logins.json"
    host = DemoHost(
        name="web1.demo", address="127.0.0.1", ssh_port=2222,
        host_key="ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDemo", credentials_ref="/tmp/key",
    )  # fmt: skip
    first = load_demo(db, path, [host])
    second = load_demo(db, path, [host])
    assert [x.email for x in first.logins] == [x.email for x in second.logins]
    saved = json.loads(path.read_text())
    assert {x["role"] for x in saved} == {"admin", "agent", "customer"}
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    with db.write() as s:
        accounts, total = AccountRepository(s).page()
        assert total == 3
        assert {a.tier for a in AgentRepository(s).all()} == {1, 2, 3}
        assert len(HostRepository(s).all()) == 1
        services = AccountRepository(s).services(accounts[0].id)
        assert {sv.kind for sv in services} >= {"domain", "dns_zone", "mailbox", "web_hosting"}
        for login in first.logins:
            assert UserRepository(s).authenticate(login.email, login.password) is not None
