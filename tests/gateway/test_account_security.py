"""A user's own account security over HTTP, on the real desk (Ray actors, SQLite and
PostgreSQL, Redis): changing the password, and signing out everywhere."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
import redis

from gateway.login_guard import account_key, failures_key
from gateway.platform import Platform
from store.models.enums import TokenScope
from store.repositories import AuditRepository, TokenRepository, UserRepository
from tests.conftest import REDIS_URL
from tests.desk import PASSWORD, Desk, LiveServer
from tests.sse import SseRecorder

pytestmark = pytest.mark.ray

NEW_PASSWORD = "a much longer passphrase 2026"
LOOPBACK_FAILURES = "sitedesk:login:client:127.0.0.1"
GLOBAL_FAILURES = "sitedesk:login:all"


@pytest.fixture
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL, decode_responses=True)
    yield client
    # Wrong passwords here count as failed log-ins from loopback: leave the shared counters
    # as we found them, so that other tests' log-in limits start from zero.
    client.delete(LOOPBACK_FAILURES, GLOBAL_FAILURES)
    client.close()


@pytest.fixture
def second_gateway(desk: Desk) -> Iterator[str]:
    """Another gateway on the same desk: what it cached must not outlive a revocation."""
    platform = Platform(db=desk.db, redis_url=REDIS_URL, directory=desk.deployment.directory)
    server = LiveServer(platform).start()
    yield f"http://127.0.0.1:{server.port}"
    server.stop()


def log_in(desk: Desk, email: str, password: str) -> httpx.Response:
    with desk.http() as c:
        return c.post("/api/v1/auth/token", data={"username": email, "password": password})


def me(base_url: str, token: str) -> int:
    with httpx.Client(base_url=base_url, headers={"Authorization": f"Bearer {token}"}) as c:
        return c.get("/api/v1/me").status_code


def api_token(desk: Desk, token: str) -> str:
    """An API token (as `sitedesk token create` issues) for the user of `token`."""
    with desk.http(token) as c:
        user_id = c.get("/api/v1/me").json()["user_id"]
    with desk.db.write() as s:
        issued, _ = TokenRepository(s).issue(user_id, name="integration", scopes=[TokenScope.api])
    return issued


def change(desk: Desk, token: str, current: str, new: str) -> httpx.Response:
    with desk.http(token) as c:
        return c.post(
            "/api/v1/me/password", json={"current_password": current, "new_password": new}
        )


def actions(desk: Desk, account_id: int) -> list[str]:
    with desk.db.read() as s:
        return [a.action for a in AuditRepository(s).for_account(account_id)]


def test_a_new_password_works_the_old_does_not_and_only_this_session_stays(
    desk: Desk, second_gateway: str
) -> None:
    account, email = desk.new_customer("Pat Changer")
    here, elsewhere = desk.login(email), desk.login(email)
    integration = api_token(desk, here)
    assert me(second_gateway, elsewhere) == 200  # cached by the other gateway from now on

    r = change(desk, here, PASSWORD, NEW_PASSWORD)

    assert r.status_code == 200, r.text
    assert r.json() == {"signed_out": {"sessions": 1, "api_tokens": 1}}
    assert me(desk.base_url, here) == 200  # the session that changed it keeps working
    assert me(second_gateway, elsewhere) == 401  # at once, on the gateway that cached it
    assert me(desk.base_url, elsewhere) == 401
    assert me(desk.base_url, integration) == 401
    old = log_in(desk, email, PASSWORD)
    assert old.status_code == 401 and old.json()["error"] == "unauthorized"
    assert log_in(desk, email, NEW_PASSWORD).status_code == 200
    assert "password_changed" in actions(desk, account.id)


def test_staff_change_their_password_too(desk: Desk) -> None:
    _, token = desk.agent(1, online=False)
    with desk.http(token) as c:
        user_id = c.get("/api/v1/me").json()["user_id"]
    with desk.db.read() as s:
        email = UserRepository(s).get(user_id).email
    r = change(desk, token, PASSWORD, NEW_PASSWORD)
    assert r.status_code == 200, r.text
    assert r.json()["signed_out"] == {"sessions": 0, "api_tokens": 0}
    assert me(desk.base_url, token) == 200
    assert log_in(desk, email, NEW_PASSWORD).status_code == 200


def test_weak_new_passwords_are_refused_naming_the_field(desk: Desk) -> None:
    account, email = desk.new_customer("Weak Choice")
    token = desk.login(email)
    for new, problem in [
        ("short pass1", "at least 12 characters"),
        (email.upper(), "must not be the e-mail address"),
        (PASSWORD, "must not be the current password"),
    ]:
        r = change(desk, token, PASSWORD, new)
        assert r.status_code == 422, (new, r.text)
        assert r.json()["error"] == "weak_password"
        assert r.json()["detail"] == [{"field": "new_password", "problem": problem}]
    with desk.http(token) as c:
        r = c.post("/api/v1/me/password", json={"new_password": NEW_PASSWORD})
        assert r.status_code == 422 and r.json()["error"] == "invalid_request"
        assert r.json()["detail"][0]["field"] == "current_password"
        r = c.post("/api/v1/me/password", json={"current_password": PASSWORD,
                                                "new_password": NEW_PASSWORD, "x": 1})  # fmt: skip
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "x"
    assert log_in(desk, email, PASSWORD).status_code == 200  # nothing changed
    assert "password_changed" not in actions(desk, account.id)


def test_a_wrong_current_password_counts_toward_the_log_in_lock(
    desk: Desk, redis_client: redis.Redis
) -> None:
    account, email = desk.new_customer("Stolen Session")
    token = desk.login(email)  # someone holding this session guesses the password

    r = change(desk, token, "not the password", NEW_PASSWORD)

    assert r.status_code == 403, r.text
    assert r.json()["error"] == "wrong_password"
    assert r.json()["detail"] == [{"field": "current_password", "problem": "wrong password"}]
    assert redis_client.get(failures_key(email)) == "1"
    assert actions(desk, account.id).count("password_change_failed") == 1
    for i in range(9):  # ten failures in all: the account locks, as after ten failed log-ins
        assert change(desk, token, f"guess {i}", NEW_PASSWORD).status_code == 403
    locked = change(desk, token, PASSWORD, NEW_PASSWORD)
    assert locked.status_code == 429 and locked.json()["error"] == "login_locked"
    assert int(locked.headers["Retry-After"]) >= 1
    r = log_in(desk, email, PASSWORD)
    assert r.status_code == 429 and r.json()["error"] == "login_locked"
    redis_client.delete(failures_key(email), f"sitedesk:login:locked:{account_key(email)}")
    assert log_in(desk, email, PASSWORD).status_code == 200  # the password did not change


def test_logout_all_ends_every_session_of_the_user_and_no_one_elses(
    desk: Desk, second_gateway: str
) -> None:
    account, email = desk.new_customer("Lost Laptop")
    laptop, phone = desk.login(email), desk.login(email)
    integration = api_token(desk, laptop)
    _, colleague = desk.customer("Colleague")
    _, agent = desk.agent(1, online=False)
    assert me(second_gateway, phone) == 200  # cached by the other gateway
    stream = SseRecorder(f"{second_gateway}/api/v1/events", phone).start()

    with desk.http(laptop) as c:
        r = c.post("/api/v1/auth/logout-all")

    assert r.status_code == 200, r.text
    assert r.json() == {"sessions": 2, "api_tokens": 1}
    for token in (laptop, phone, integration):
        assert me(desk.base_url, token) == 401
    assert me(second_gateway, phone) == 401
    assert stream.wait_closed(10), "the live stream of a revoked session kept running"
    assert me(desk.base_url, colleague) == 200 and me(desk.base_url, agent) == 200
    assert "logout_all" in actions(desk, account.id)
    again = desk.login(email)  # signing out everywhere is not a lock-out
    assert me(desk.base_url, again) == 200
    with desk.http(again) as c:
        assert c.post("/api/v1/auth/logout-all").json() == {"sessions": 1, "api_tokens": 0}
    with httpx.Client(base_url=desk.base_url) as c:
        r = c.post("/api/v1/auth/logout-all")
    assert r.status_code == 401 and r.json()["error"] == "unauthorized"
