"""SiteTools' "Sent mail" view in a real browser (headless Chromium, as tests/gateway/
test_pages.py): an administrator reads the desk's outgoing mail (the list, its filters and
pages, one mail's headers, text, sandboxed HTML and raw .eml); agents never see the view."""

from __future__ import annotations

import secrets
from email import policy
from email.parser import BytesParser
from pathlib import Path
from typing import Any

import pytest

from store.repositories import UserRepository
from tests.desk import PASSWORD, Desk, wait_until
from tests.gateway import test_pages
from tests.gateway.test_pages import log_in, make_agent

pytestmark = [pytest.mark.ray, pytest.mark.browser]

# The page tests' headless Chromium and fresh pages (pytest finds a fixture by its name here).
browser = test_pages.browser
new_page = test_pages.new_page

# A subject as a customer might type it: markup that would run if the page or the mail's HTML
# were rendered as ours.
XSS = "<img src=x onerror=\"parent.postMessage('pwned','*');document.title='pwned'\">"


def make_admin(desk: Desk) -> str:
    """A new administrator; returns the e-mail (the console's log-in form needs it)."""
    email = f"web.admin.{secrets.token_hex(4)}@sitedesk.test"
    with desk.db.write() as s:
        UserRepository(s).create(email=email, display_name="Admin", role="admin",
                                 password=PASSWORD)  # fmt: skip
    return email


def opening_notice(desk: Desk, admin_token: str, number: str) -> dict[str, Any]:
    """The desk's sent opening notice for the ticket, once the relay took it."""

    def sent() -> dict[str, Any] | None:
        with desk.http(admin_token) as c:
            r = c.get("/api/v1/mail/outgoing", params={"ticket": number})
        assert r.status_code == 200, r.text
        items = [m for m in r.json()["items"] if m["status"] == "sent"]
        return items[0] if items else None

    found: dict[str, Any] = wait_until(sent, timeout=30, what=f"the opening notice of {number}")
    return found


def test_admin_reads_sent_mail_and_agents_do_not_see_it(desk: Desk, new_page: Any) -> None:
    _, customer_token = desk.customer("Mo")
    with desk.http(customer_token) as c:
        r = c.post("/api/v1/tickets", json={"subject": "Backups", "body": "Where are they?"})
        assert r.status_code == 201, r.text
        first = r.json()["number"]
        r = c.post("/api/v1/tickets", json={"subject": f"Site down {XSS}", "body": "since 9"})
        assert r.status_code == 201, r.text
        number = r.json()["number"]
    admin_token = desk.admin()
    notice = opening_notice(desk, admin_token, number)
    earlier = opening_notice(desk, admin_token, first)
    recipient = notice["recipient"]
    assert number in notice["subject"] and earlier["recipient"] == recipient

    page = new_page()
    page.add_init_script("window.addEventListener('message', (e) => { window.__got = e.data; })")
    requests: list[str] = []
    page.on("request", lambda req: requests.append(req.url))
    log_in(page, f"{desk.base_url}/console", make_admin(desk))
    nav = page.get_by_role("navigation", name="Views")
    nav.get_by_role("link", name="Sent mail").click()
    page.locator("#mail-intro").get_by_text("what would have gone out").wait_for()
    assert "local sink" in page.locator("#mail-intro").inner_text()

    # The list, newest first: our mail's row with its ticket (a link to the ticket view).
    row = page.locator(f"#mail-rows tr[data-id='{notice['id']}']")
    row.wait_for()
    assert number in row.inner_text() and recipient in row.inner_text()
    assert row.locator(".badge").inner_text() == "sent"
    ticket_link = row.get_by_role("link", name=number, exact=True)
    assert ticket_link.get_attribute("href") == f"#/tickets/{number}"
    assert XSS in row.inner_text()  # the customer's markup is text
    assert page.locator("#mail-rows img").count() == 0

    # Filters: a status it does not have hides it; the recipient keeps only that address.
    page.get_by_label("Status").select_option("failed")
    page.get_by_role("button", name="Show").click()
    row.wait_for(state="detached")
    page.get_by_label("Status").select_option("sent")
    page.get_by_label("Recipient").fill(recipient)
    page.get_by_role("button", name="Show").click()
    row.wait_for()
    rows = page.locator("#mail-rows tr")
    wait_until(lambda: rows.count() == 2, what="the recipient's two mails")
    assert [rows.nth(i).get_attribute("data-id") for i in range(2)] == [
        str(notice["id"]),
        str(earlier["id"]),
    ]  # newest first

    # Paging by next_before: a page of one mail (the page asks for 50; ask the API for 1).
    page.route(
        "**/api/v1/mail/outgoing?*",
        lambda route: route.continue_(url=route.request.url.replace("limit=50", "limit=1")),
    )
    page.get_by_role("button", name="Show").click()
    wait_until(lambda: rows.count() == 1, what="one mail a page")
    more = page.get_by_role("button", name="More")
    more.click()
    page.locator(f"#mail-rows tr[data-id='{earlier['id']}']").wait_for()
    assert rows.count() == 2 and rows.nth(1).get_attribute("data-id") == str(earlier["id"])
    page.unroute("**/api/v1/mail/outgoing?*")

    # One mail: its headers, the text as text, the HTML only inside the sandboxed frame.
    row.locator("td").first.click()
    page.wait_for_url(f"**/console#/mail/{notice['id']}")
    detail = page.locator("#mail-detail")
    detail.wait_for()
    headers = page.locator("#mail-headers")
    headers.get_by_text("Message-ID", exact=True).wait_for()
    names = headers.locator("dt").all_inner_texts()
    assert {"From", "To", "Subject", "Date", "Message-ID", "Auto-Submitted"} <= set(names)
    values = dict(zip(names, headers.locator("dd").all_inner_texts(), strict=True))
    assert recipient in values["To"] and "support@sitedesk.test" in values["From"]
    assert number in values["Subject"] and XSS in values["Subject"]
    assert values["Auto-Submitted"] == "auto-generated"
    assert notice["message_id"] in values["Message-ID"]
    text = page.locator("#mail-text")
    assert page.locator("pre#mail-text").count() == 1
    assert number in text.inner_text() and XSS in text.inner_text()
    frame_el = page.locator("iframe#mail-html")
    assert frame_el.get_attribute("sandbox") == ""
    assert frame_el.evaluate("(f) => f.sandbox.length") == 0  # no allow-scripts, no same-origin
    html = frame_el.get_attribute("srcdoc")
    assert html is not None and number in html and "&lt;img src=x" in html
    frame = page.frame_locator("iframe#mail-html")
    frame.locator("body").get_by_text(number).first.wait_for()
    assert XSS in frame.locator("body").inner_text()
    assert frame.locator("img").count() == 0
    assert page.locator("img").count() == 0  # nothing of the mail in the console's own page
    # Nothing ran: no message from the frame, the titles untouched, no request for "x".
    assert page.evaluate("window.__got") is None
    assert page.title() == "SiteTools"
    # An opaque origin: the console can not reach into the frame, nor the frame into the console.
    assert frame_el.evaluate("(f) => f.contentDocument === null")
    assert not [u for u in requests if u.rstrip("/").endswith("/x")]

    # The raw mail: fetched with the token, offered as a download.
    with page.expect_download() as got:
        page.get_by_role("button", name="Download .eml").click()
    download = got.value
    assert download.suggested_filename == f"sent-{notice['id']}.eml"
    raw = Path(download.path()).read_bytes()
    msg = BytesParser(policy=policy.default).parsebytes(raw)
    assert msg["Message-ID"].strip("<>") == notice["message_id"]
    assert number in str(msg["Subject"])
    assert page.locator("#mail-raw-error").is_hidden()

    # The ticket link leads to the ticket view.
    page.locator("#mail-detail-meta").get_by_role("link", name=number, exact=True).click()
    page.locator("#ticket-title").get_by_text(number).wait_for()
    page.locator("#contacts").get_by_text(recipient).wait_for()  # and its account beside it
    assert page.locator("#mail-view").is_hidden()
    assert page.locator("#lists").is_hidden()  # an administrator has no queue of their own
    page.screenshot(path="/tmp/console-ticket-admin.png", full_page=True)
    page.go_back()
    detail.wait_for()
    page.screenshot(path="/tmp/console-sent-mail.png", full_page=True)

    # An agent: no Sent mail in the console, and the API says no.
    agent_email = make_agent(desk, 1)
    page = new_page()
    log_in(page, f"{desk.base_url}/console", agent_email)
    page.locator("#queue-title").get_by_text("Level 1 queue").wait_for()
    assert page.get_by_role("link", name="Sent mail").count() == 0
    assert page.locator("#nav-mail").is_hidden() and page.locator("#views").is_hidden()
    page.goto(f"{desk.base_url}/console#/mail/{notice['id']}")
    page.locator("#ticket-empty").wait_for()
    assert page.locator("#mail-view").is_hidden()
    assert page.locator("#mail-rows tr").count() == 0
    with desk.http(desk.login(agent_email)) as c:
        for path in ("", f"/{notice['id']}", f"/{notice['id']}/raw"):
            r = c.get(f"/api/v1/mail/outgoing{path}")
            assert r.status_code == 403 and r.json()["error"] == "forbidden", r.text
