"""The console's phone parts in a real browser (headless Chromium, Playwright): an agent logs
a call on a ticket, and a ringing call (the signed webhook) opens the caller's account with a
"call from" banner in that agent's console."""

from __future__ import annotations

from typing import Any

import pytest

from tests.desk import Desk
from tests.gateway.test_pages import browser, log_in, make_agent, new_page  # noqa: F401
from tests.phone.test_call_webhook import caller, event, post
from tests.phone.test_calls import call_logs, detail, staff_ticket

pytestmark = [pytest.mark.ray, pytest.mark.browser]


def test_an_agent_logs_a_call_and_a_ringing_call_pops_its_account(
    desk: Desk,
    phone_gateway: str,
    new_page: Any,  # noqa: F811
) -> None:
    account, _, _, number = caller(desk)
    email = make_agent(desk, 1)
    token = desk.login(email)
    ticket = staff_ticket(desk, token, account.id)
    page = new_page()
    log_in(page, f"{desk.base_url}/console#/tickets/{ticket}", email)
    page.locator("#ticket-title").get_by_text("Site down").wait_for()

    page.locator("#call-log summary").click()
    page.get_by_label("Customer's number").fill("0" + number[3:])  # the national spelling
    page.get_by_label("Duration (minutes)").fill("4")
    page.get_by_label("Notes", exact=True).fill("Reset the FTP password with the customer.")
    page.get_by_role("button", name="Log call").click()
    logged = page.locator("#messages li.internal").filter(has_text="Reset the FTP password")
    logged.wait_for()
    assert f"Phone call from {number}, 4 min 00 s" in logged.inner_text()
    [log] = call_logs(detail(desk, token, ticket))
    assert log["channel"] == "phone" and log["visibility"] == "internal"

    other, _, _, other_number = caller(desk)  # someone else rings while the ticket is open
    r = post(phone_gateway, event("call.started", other_number, agent=email))
    assert r.status_code == 200 and r.json()["status"] == "ringing", r.text
    banner = page.locator("#call-banner")
    banner.get_by_text(f"Call from Rita Ringer ({other_number}) · {other.name}").wait_for()
    page.locator("#account-title").get_by_text(f"Account {other.code}").wait_for()
    page.get_by_role("button", name="Dismiss").click()
    page.locator("#account-title").get_by_text(f"Account {account.code}").wait_for()
