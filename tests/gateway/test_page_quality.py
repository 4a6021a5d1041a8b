"""Every page of SiteControl and SiteTools, walked in headless Chromium as its users see it:
checked with axe-core (no serious or critical accessibility violation), on a laptop and a phone
(no sideways scrolling), and photographed into docs/screenshots/ for the README."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import axe_playwright_python
import pytest
from playwright.sync_api import expect

from automation.local_hosts.host import LocalHost
from store.repositories import AccountRepository
from tests.desk import Desk, wait_until
from tests.gateway.test_changes import host_body, settled
from tests.gateway.test_pages import browser, log_in, make_agent  # noqa: F401 - a fixture
from tests.gateway.test_pages import new_page as new_page  # the fixture
from tests.hosts import holding_the_lock, running_hosts, waiting_for_the_lock

pytestmark = [pytest.mark.ray, pytest.mark.browser]

AXE = (Path(axe_playwright_python.__file__).parent / "axe.min.js").read_text()
SHOTS = Path(__file__).resolve().parents[2] / "docs" / "screenshots"
PHONE = {"width": 390, "height": 844}


def axe_problems(page: Any, what: str) -> list[str]:
    """The serious and critical violations axe-core finds on the page as it is now."""
    page.evaluate(AXE)
    found = page.evaluate(
        "async () => (await axe.run(document, {resultTypes: ['violations']})).violations"
        ".map(v => ({id: v.id, impact: v.impact, help: v.help,"
        " nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 5)}))"
    )
    return [
        f"{what}: {v['id']} ({v['impact']}): {v['help']} at {v['nodes']}"
        for v in found
        if v["impact"] in ("serious", "critical")
    ]


def fits_a_phone(page: Any) -> bool:
    return bool(page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"))


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=False)


@pytest.fixture(scope="module")
def hosts(tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[LocalHost]]:
    base = tmp_path_factory.mktemp("quality-hosts")
    with running_hosts([LocalHost(base, f"qh-{secrets.token_hex(3)}", with_nginx=False)]) as up:
        yield up


def test_every_page_is_accessible_fits_a_phone_and_is_photographed(
    desk: Desk, hosts: list[LocalHost], new_page: Any
) -> None:
    h = hosts[0]
    admin = desk.admin()
    with desk.http(admin) as c:
        r = c.post("/api/v1/hosts", json=host_body(h))
        assert r.status_code == 201, r.text
        host_id = r.json()["id"]
    account, email = desk.new_customer("Acme Bakery")
    zone = f"acme{secrets.token_hex(3)}.test"
    h.add_zone(zone)
    with desk.db.write() as s:
        repo = AccountRepository(s)
        sv = repo.add_service(account.id, kind="dns_zone", name=zone, host_id=host_id)
        repo.add_service(account.id, kind="mailbox", name=f"info@{zone}", host_id=host_id)
        repo.add_service(account.id, kind="web_hosting", name=zone, host_id=host_id)
    customer = desk.login(email)
    with desk.http(customer) as c:  # a first record, so the zone has some and the host a lock
        r = c.post("/api/v1/changes", json={"service_id": sv.id, "kind": "dns_record_add",
                                            "params": {"record": {"name": "@", "type": "MX",
                                                                  "value": f"mail.{zone}",
                                                                  "priority": 10}}})  # fmt: skip
        assert r.status_code == 202, r.text
        wait_until(lambda: settled(desk, customer, r.json()["id"]), what="the first record")
    agent_email = make_agent(desk, 1)
    agent = desk.login(agent_email)
    with desk.http(customer) as c:
        t = c.post(
            "/api/v1/tickets",
            json={
                "subject": "Shop page slow since this morning",
                "body": f"https://{zone}/shop takes 10 s.",
            },
        ).json()
        c.post("/api/v1/tickets", json={"subject": "Add an SPF record?", "body": "for mail"})
    with desk.http(agent) as c:
        assert c.post(f"/api/v1/tickets/{t['number']}/take").status_code == 200
        c.post(
            f"/api/v1/tickets/{t['number']}/messages",
            json={"body": "Looking at it: the cache was cold.", "visibility": "public"},
        )
        c.post(
            f"/api/v1/tickets/{t['number']}/messages",
            json={"body": "Varnish restarted at 09:12.", "visibility": "internal"},
        )
    problems: list[str] = []

    # -- SiteControl, on a laptop ----------------------------------------------------------
    portal = new_page()
    portal.goto(f"{desk.base_url}/portal")
    expect(portal.get_by_role("button", name="Log in")).to_be_visible()
    problems += axe_problems(portal, "portal log-in")
    log_in(portal, f"{desk.base_url}/portal", email)
    expect(portal.locator("#tickets tr")).to_have_count(2)
    problems += axe_problems(portal, "portal tickets")
    portal.goto(f"{desk.base_url}/portal#/tickets/{t['number']}")
    expect(portal.locator("#messages > li")).to_have_count(2)  # the internal note is not shown
    problems += axe_problems(portal, "portal ticket")
    shot(portal, "portal-ticket")
    portal.goto(f"{desk.base_url}/portal#/services")
    expect(portal.locator("#service-cards li")).to_have_count(4)
    problems += axe_problems(portal, "portal services")
    shot(portal, "portal-services")
    portal.goto(f"{desk.base_url}/portal#/services/{sv.id}")
    expect(portal.locator("table.records tbody tr").filter(has_text="SOA")).to_have_count(1)
    with holding_the_lock(h):  # a change in progress: its host busy with another batch
        form = portal.locator("form[data-kind=dns_record_add]")
        form.get_by_label("Name").fill("www")
        form.get_by_label("Type").select_option("A")
        form.get_by_label("Value").fill("192.0.2.10")
        form.get_by_role("button", name="Preview").click()
        portal.get_by_role("region", name="Preview").get_by_role("button", name="Confirm").click()
        wait_until(lambda: waiting_for_the_lock(h), 15, "the change waiting at the host")
        expect(portal.locator("#changes li.change").first).to_have_attribute(
            "data-status", re.compile("queued|applying")
        )
        problems += axe_problems(portal, "portal zone with a change in progress")
        shot(portal, "portal-zone-change")
    expect(portal.locator("#changes li.change").first).to_have_attribute("data-status", "applied")
    problems += axe_problems(portal, "portal zone, change applied")
    for route, what in (("activity", "portal activity"), ("settings", "portal settings")):
        portal.goto(f"{desk.base_url}/portal#/{route}")
        expect(portal.locator(f"#{route}-view")).to_be_visible()
        problems += axe_problems(portal, what)

    # -- SiteControl, on a phone -------------------------------------------------------------
    phone = new_page()
    phone.set_viewport_size(PHONE)
    log_in(phone, f"{desk.base_url}/portal", email)
    views = [("", "#tickets tr"), (f"tickets/{t['number']}", "#messages > li"),
             ("services", "#service-cards li"), (f"services/{sv.id}", "table.records tr"),
             ("settings", "#password-form")]  # fmt: skip
    for route, view in views:
        phone.goto(f"{desk.base_url}/portal#/{route}")
        expect(phone.locator(view).first).to_be_visible()
        assert fits_a_phone(phone), f"portal #/{route} scrolls sideways on a phone"
    phone.goto(f"{desk.base_url}/portal#/services/{sv.id}")
    expect(phone.locator("table.records tbody tr").filter(has_text="192.0.2.10")).to_have_count(1)
    shot(phone, "portal-zone-phone")

    # -- SiteTools ---------------------------------------------------------------------------
    console = new_page()
    console.goto(f"{desk.base_url}/console")
    expect(console.get_by_role("button", name="Log in")).to_be_visible()
    problems += axe_problems(console, "console log-in")
    log_in(console, f"{desk.base_url}/console", agent_email)
    expect(console.locator("#queue li[data-number]")).not_to_have_count(0)
    problems += axe_problems(console, "console queue")
    shot(console, "console-queue")
    console.goto(f"{desk.base_url}/console#/tickets/{t['number']}")
    expect(console.locator("#account-body")).to_be_visible()
    expect(console.locator("#messages li.internal")).to_have_count(1)
    problems += axe_problems(console, "console ticket with the account")
    shot(console, "console-ticket")
    console.get_by_label("Search tickets and accounts").fill(zone)
    console.get_by_role("button", name="Search").click()
    expect(console.locator("#search-accounts li[data-account-id]")).to_have_count(1)
    problems += axe_problems(console, "console search")
    shot(console, "console-search")
    console.set_viewport_size(PHONE)
    console.goto(f"{desk.base_url}/console#/tickets/{t['number']}")
    expect(console.locator("#account-body")).to_be_visible()
    assert fits_a_phone(console), "the console ticket scrolls sideways on a phone"

    assert not problems, "\n".join(problems)


def test_the_accessibility_check_finds_what_it_is_for(new_page: Any) -> None:
    """The checker itself: an unlabelled field and unreadable contrast are reported."""
    page = new_page()
    page.set_content(
        "<!doctype html><html lang='en'><title>t</title><main><input id='x'>"
        "<p style='color:#eee;background:#fff'>faint</p></main></html>"
    )
    found = " ".join(axe_problems(page, "sample"))
    assert "label" in found and "color-contrast" in found
