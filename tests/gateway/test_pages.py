"""The web pages in a real browser (headless Chromium from Debian, driven by Playwright):
SiteControl, the customer portal, and SiteTools, the agent console."""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from playwright.sync_api import sync_playwright

from gateway.routes.pages import WEB_DIR
from store.repositories import AgentRepository, UserRepository
from tests.desk import PASSWORD, Desk

pytestmark = [pytest.mark.ray, pytest.mark.browser]

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
TIMEOUT_MS = 15_000


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser: Any) -> Iterator[Any]:
    """Opens pages in a fresh browser context (its own sessionStorage) and fails the test on any
    JavaScript error the page raised."""
    contexts: list[Any] = []
    errors: list[str] = []

    def open_page() -> Any:
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.on("pageerror", lambda exc: errors.append(str(exc)))
        return page

    yield open_page
    for context in contexts:
        context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def make_agent(desk: Desk, tier: int) -> str:
    """An offline agent of the tier (so new tickets wait in the queue); returns the e-mail."""
    tag = secrets.token_hex(4)
    email = f"web.agent.{tier}.{tag}@sitedesk.test"
    with desk.db.write() as s:
        user = UserRepository(s).create(
            email=email, display_name=f"Agent {tag}", role="agent", password=PASSWORD
        )
        agent = AgentRepository(s).create(
            user_id=user.id, tier=tier, capacity=50,
            skills=["general", "dns", "web", "email", "database", "ftp", "tls"],
        )  # fmt: skip
    desk.agents_made.append((agent.id, tier))
    return email


def log_in(page: Any, url: str, email: str) -> None:
    page.goto(url)
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.locator("#live[data-state='live']").wait_for()


def test_root_redirects_to_the_portal_and_only_known_assets_are_served(desk: Desk) -> None:
    with desk.http() as c:
        r = c.get("/", follow_redirects=False)
        assert r.status_code in (302, 307) and r.headers["location"] == "/portal"
        for path in ("/portal", "/console"):
            r = c.get(path)
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/html")
            assert "script-src 'self'" in r.headers["content-security-policy"]
        assert c.get("/web/lib/api.js").headers["content-type"].startswith("text/javascript")
        r = c.get("/web/..%2Fapp.py")
        assert r.status_code == 404 and r.json()["error"] == "not_found"
        # Every module and style sheet of the pages is served (a new one is listed in ASSETS),
        # and nothing else: not the HTML by its file name, not a path made up.
        for asset in sorted(WEB_DIR.rglob("*.js")) + sorted(WEB_DIR.rglob("*.css")):
            rel = asset.relative_to(WEB_DIR).as_posix()
            assert c.get(f"/web/{rel}").status_code == 200, rel
        for made_up in ("portal/index.html", "lib/%2E%2E/portal/main.js", "lib", "/etc/passwd"):
            assert c.get(f"/web/{made_up}").status_code == 404, made_up


def test_customer_opens_a_ticket_and_sees_the_reply_live(desk: Desk, new_page: Any) -> None:
    account, email = desk.new_customer("Pat")
    agent_token = desk.login(make_agent(desk, 1))
    page = new_page()
    log_in(page, f"{desk.base_url}/portal", email)
    services = page.locator("#services")
    services.get_by_text(f"{account.code.split('-')[1]}.example.test").wait_for()

    subject = "Mail <b>bounces</b> since noon"  # shown as text, never as markup
    page.get_by_label("Subject").fill(subject)
    page.get_by_label("What do you need?").fill("Every message to us comes back.")
    page.get_by_role("button", name="Open ticket").click()
    title = page.locator("#ticket-title")
    title.get_by_text(subject).wait_for()
    number = title.locator(".mono").inner_text()
    assert re.fullmatch(r"TT-\d+", number)
    assert page.locator("#ticket-title b").count() == 0

    page.get_by_role("link", name="← All tickets").click()
    row = page.locator(f"#tickets tr[data-number='{number}']")
    row.wait_for()
    assert subject in row.inner_text()
    row.get_by_role("link", name=number).click()
    page.locator("#messages").get_by_text("Every message to us comes back.").wait_for()

    with desk.http(agent_token) as c:
        r = c.post(
            f"/api/v1/tickets/{number}/messages",
            json={"body": "Internal: their MX points at the old host", "visibility": "internal"},
        )
        assert r.status_code == 201, r.text
        r = c.post(
            f"/api/v1/tickets/{number}/messages",
            json={"body": "We have fixed your MX record; please try again."},
        )
        assert r.status_code == 201, r.text
    # No reload: the live stream brings the agent's reply onto the open page.
    page.locator("#messages").get_by_text("We have fixed your MX record").wait_for()
    assert "old host" not in page.locator("main").inner_text()

    page.get_by_label("Your reply").fill("Works now, thank you!")
    page.get_by_role("button", name="Send reply").click()
    page.locator("#messages").get_by_text("Works now, thank you!").wait_for()
    page.screenshot(path="/tmp/portal.png", full_page=True)

    # Done: the customer closes the ticket; it is final, so the reply box goes away.
    page.get_by_role("button", name="Close this ticket").click()
    page.locator("#ticket-meta .badge").get_by_text("closed", exact=True).wait_for()
    assert page.locator("#reply-form").is_hidden()
    assert page.get_by_role("button", name="Close this ticket").is_hidden()
    with desk.http(desk.login(email)) as c:
        assert c.get(f"/api/v1/tickets/{number}").json()["status"] == "closed"

    # Log out revokes the page's token on the server, not only in the browser.
    token = page.evaluate("sessionStorage.getItem('sitedesk.portal.token')")
    page.get_by_role("button", name="Log out").click()
    page.get_by_label("E-mail address").wait_for()
    with desk.http(token) as c:
        assert c.get("/api/v1/me").status_code == 401


def test_another_customers_ticket_is_not_found(desk: Desk, new_page: Any) -> None:
    _, owner_token = desk.customer("Owner")
    with desk.http(owner_token) as c:
        number = c.post("/api/v1/tickets", json={"subject": "Private", "body": "mine"}).json()[
            "number"
        ]
    _, email = desk.new_customer("Eve")
    page = new_page()
    page.goto(f"{desk.base_url}/portal")
    page.get_by_label("E-mail address").fill(email)
    page.get_by_label("Password", exact=True).fill("not the password")
    page.get_by_role("button", name="Log in").click()
    page.locator("#login-error").get_by_text("wrong e-mail address or password").wait_for()
    log_in(page, f"{desk.base_url}/portal", email)
    page.goto(f"{desk.base_url}/portal#/tickets/{number}")
    error = page.locator("#ticket-error")
    error.wait_for()
    assert error.inner_text() == f"ticket {number} not found"
    assert page.locator("#ticket-body").is_hidden()
    assert "Private" not in page.locator("main").inner_text()


def test_agent_takes_a_ticket_and_adds_an_internal_note(desk: Desk, new_page: Any) -> None:
    account, customer_email = desk.new_customer("Lee")
    with desk.http(desk.login(customer_email)) as c:
        r = c.post("/api/v1/tickets", json={"subject": "Site shows 502", "body": "since 10:00"})
        assert r.status_code == 201, r.text
        number = r.json()["number"]
    page = new_page()
    log_in(page, f"{desk.base_url}/console", make_agent(desk, 1))
    page.locator("#queue-title").get_by_text("Level 1 queue").wait_for()

    queued = page.locator(f"#queue li[data-number='{number}']")
    queued.get_by_text("Site shows 502").wait_for()
    queued.get_by_role("link").click()
    page.locator("#ticket-title").get_by_text("Site shows 502").wait_for()
    account_pane = page.locator("#account-view")
    account_pane.locator("#services").get_by_text(f"{account.code[2:]}.example.test").wait_for()
    account_pane.locator("#contacts").get_by_text(customer_email).wait_for()

    page.get_by_role("button", name="Take").click()
    page.locator(f"#mine li[data-number='{number}']").wait_for()
    page.locator(f"#queue li[data-number='{number}']").wait_for(state="detached")
    page.locator("#ticket-meta").get_by_text("owner Agent").wait_for()

    page.get_by_label("Reply or internal note").fill("Checked nginx: upstream php-fpm is down.")
    page.get_by_role("button", name="Add internal note").click()
    note = page.locator("#messages li.internal")
    note.get_by_text("upstream php-fpm is down").wait_for()
    assert "internal note" in note.inner_text()
    page.locator("#timeline").get_by_text(number).first.wait_for()
    page.screenshot(path="/tmp/console.png", full_page=True)

    page.get_by_label("Escalation reason").fill("php-fpm crashes on start: needs level 2")
    page.get_by_role("button", name="Escalate").click()
    page.locator("#ticket-meta").get_by_text("level 2").wait_for()
    page.locator(f"#mine li[data-number='{number}']").wait_for(state="detached")

    with desk.http(desk.login(customer_email)) as c:  # and the customer never sees the note
        messages = c.get(f"/api/v1/tickets/{number}").json()["messages"]
    assert all("php-fpm" not in m["body"] for m in messages)


def test_customer_reopens_a_resolved_ticket(desk: Desk, new_page: Any) -> None:
    _, email = desk.new_customer("Rae")
    agent_token = desk.login(make_agent(desk, 1))
    with desk.http(desk.login(email)) as c:
        number = c.post("/api/v1/tickets", json={"subject": "FTP", "body": "x"}).json()["number"]
    with desk.http(agent_token) as c:
        assert c.post(f"/api/v1/tickets/{number}/take").status_code == 200
        assert c.post(f"/api/v1/tickets/{number}/resolve").status_code == 200
    page = new_page()
    log_in(page, f"{desk.base_url}/portal", email)
    page.goto(f"{desk.base_url}/portal#/tickets/{number}")
    badge = page.locator("#ticket-meta .badge")
    badge.get_by_text("resolved", exact=True).wait_for()
    page.get_by_role("button", name="Reopen this ticket").click()
    badge.get_by_text("open", exact=True).wait_for()
    assert page.get_by_role("button", name="Reopen this ticket").is_hidden()


def test_agent_hands_a_ticket_over_within_the_tier(desk: Desk, new_page: Any) -> None:
    _, customer_email = desk.new_customer("Hal")
    with desk.http(desk.login(customer_email)) as c:
        number = c.post("/api/v1/tickets", json={"subject": "Cron", "body": "x"}).json()["number"]
    me_email, other_email = make_agent(desk, 1), make_agent(desk, 1)
    with desk.db.read() as s:
        other = UserRepository(s).by_email(other_email)
        assert other is not None
        other_agent = AgentRepository(s).by_user(other.id)
        assert other_agent is not None
        other_name, other_id = other.display_name, str(other_agent.id)
    page = new_page()
    log_in(page, f"{desk.base_url}/console", me_email)
    page.goto(f"{desk.base_url}/console#/tickets/{number}")
    page.get_by_role("button", name="Take").click()
    page.locator(f"#mine li[data-number='{number}']").wait_for()
    page.get_by_label("Hand over to").select_option(value=other_id)
    page.get_by_role("button", name="Hand over").click()
    page.locator("#ticket-meta").get_by_text(f"owner {other_name}").wait_for()
    page.locator(f"#mine li[data-number='{number}']").wait_for(state="detached")


def test_each_page_turns_away_the_other_role(desk: Desk, new_page: Any) -> None:
    _, customer_email = desk.new_customer("Ivy")
    page = new_page()
    for url, email, words in (
        (f"{desk.base_url}/portal", make_agent(desk, 1), "SiteControl is for customers"),
        (f"{desk.base_url}/console", customer_email, "SiteTools is for support agents"),
    ):
        page.goto(url)
        page.get_by_label("E-mail address").fill(email)
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_role("button", name="Log in").click()
        page.locator("#login-error").get_by_text(words).wait_for()
        assert page.locator("#app-view").is_hidden()
