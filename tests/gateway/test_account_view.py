"""The 360-degree view of an account over the API: it shows what the SCDB holds now, and an
account suspended on its hosts is suspended in the SCDB too (issue 8 defect 10)."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from automation.local_hosts.host import LocalHost
from store.models import Account
from store.repositories import AccountRepository
from tests.desk import Desk, wait_until
from tests.gateway.test_changes import host_body, make_admin

pytestmark = pytest.mark.ray


@pytest.fixture(scope="module")
def web_host(hosts_base: Path) -> Iterator[LocalHost]:
    """A managed host with nginx: suspending an account is a change to its sites."""
    with LocalHost(hosts_base, f"standing-{secrets.token_hex(3)}") as h:
        yield h


@pytest.fixture(scope="module")
def registered(desk_session: Desk, web_host: LocalHost) -> tuple[str, int]:
    """An administrator's token, and the id of `web_host` registered by them over the API."""
    admin = make_admin(desk_session)
    with desk_session.http(admin) as c:
        r = c.post("/api/v1/hosts", json=host_body(web_host))
    assert r.status_code == 201, r.text
    return admin, int(r.json()["id"])


def visited(h: LocalHost, domain: str) -> int:
    """The status the host's nginx answers a visitor of the site `domain`."""
    assert h.nginx is not None
    return httpx.get(f"http://127.0.0.1:{h.nginx.port}/", headers={"Host": domain}).status_code


def view(desk: Desk, token: str, account: Account) -> dict[str, Any]:
    with desk.http(token) as c:
        r = c.get(f"/api/v1/accounts/{account.id}")
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_the_view_shows_services_and_contacts_added_in_the_scdb_since(desk: Desk) -> None:
    """Services and contacts come from other systems too (provisioning, billing) and write no
    timeline entry: the cached view must not hide them."""
    account, customer = desk.customer("Cached")
    before = view(desk, customer, account)  # built and cached by the account's lane
    tag = secrets.token_hex(3)
    with desk.db.write() as s:
        accounts = AccountRepository(s)
        accounts.add_service(account.id, kind="mailbox", name=f"info@{tag}.example.test")
        accounts.add_contact(account.id, name="Second", email=f"second.{tag}@example.test")
        accounts.contacts(account.id)[0].phone = "+41 44 000 00 00"
    after = view(desk, customer, account)
    assert len(after["services"]) == len(before["services"]) + 1
    assert f"info@{tag}.example.test" in [sv["name"] for sv in after["services"]]
    assert [c["name"] for c in after["contacts"]] == ["Cached", "Second"]
    assert after["contacts"][0]["phone"] == "+41 44 000 00 00"
    with desk.db.write() as s:  # a service changed in place: cancelled by billing, say
        for sv in AccountRepository(s).services(account.id):
            sv.status = "cancelled"
    assert {sv["status"] for sv in view(desk, customer, account)["services"]} == {"cancelled"}


def test_a_suspended_account_and_its_services_are_suspended_in_the_scdb(
    desk: Desk, web_host: LocalHost, registered: tuple[str, int]
) -> None:
    admin, host_id = registered
    account, customer = desk.customer("Suspended")
    domain = f"{secrets.token_hex(4)}.example.test"
    with desk.db.write() as s:
        site = AccountRepository(s).add_service(
            account.id, kind="web_hosting", name=domain, host_id=host_id
        )
        site_id = site.id
    assert view(desk, customer, account)["status"] == "active"

    def apply(kind: str) -> None:
        with desk.http(admin) as c:
            r = c.post("/api/v1/changes", json={"service_id": site_id, "kind": kind})
            assert r.status_code == 202, r.text
            change_id = r.json()["id"]

            def settled() -> str | None:
                status = str(c.get(f"/api/v1/changes/{change_id}").json()["status"])
                return None if status in ("queued", "applying") else status

            assert wait_until(settled, what=f"{kind} settled") == "applied"

    apply("vhost_create")  # the account's site, served
    assert visited(web_host, domain) == 200
    apply("account_suspend")
    assert visited(web_host, domain) == 403  # on the host: its site answers the suspension page
    seen = view(desk, customer, account)  # and in the SCDB, as the customer reads it
    assert seen["status"] == "suspended"
    assert {sv["status"] for sv in seen["services"]} == {"suspended"}
    with desk.db.read() as s:
        assert AccountRepository(s).get(account.id).status == "suspended"

    apply("account_unsuspend")
    assert visited(web_host, domain) == 200
    seen = view(desk, customer, account)
    assert seen["status"] == "active"
    assert {sv["status"] for sv in seen["services"]} == {"active"}
