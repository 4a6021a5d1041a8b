"""The OpenAPI document is true: schemathesis generates requests from /openapi.json and sends
them to the live gateway (the desk's Ray actors, its database and Redis) as a customer, an
agent and an administrator, and checks every answer against the document: no server error,
every status documented, its content type and body as documented, bad input refused, no
operation that declares the bearer token works without it.

Bounded: a fixed seed, a few examples per operation and phase, one schemathesis process per
role, the roles at once (ROLES: which on which database)."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import redis
import schemathesis

from gateway.app import create_app
from gateway.platform import Platform
from gateway.settings import GatewaySettings
from store.db import Database
from store.read.mail_in import InboundMailReads
from store.read.mail_out import DeliveryReads
from store.repositories import AccountRepository
from tests.conftest import REDIS_URL
from tests.desk import Desk, LiveServer

pytestmark = pytest.mark.ray

CHECKS = [
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_schema_conformance",
    "negative_data_rejection",
    "ignored_auth",
    "use_after_free",
]
SEED = 20261204
# Every role on the SQLite desk; on PostgreSQL, which refuses some text SQLite takes (a NUL),
# the administrator, who reaches every route.
ROLES = {"sqlite": ("customer", "agent", "admin"), "postgresql": ("admin",)}
MAX_EXAMPLES = 5  # per operation and phase; the coverage phase adds its boundary cases
# What is not fuzzed, and why. Each is checked below with requests of its own.
NOT_FUZZED = {
    "/api/v1/auth/logout": "revokes the token the run uses: every later request would be a 401",
    "/api/v1/auth/logout-all": "revokes every token of the caller, the run's included",
    "/api/v1/events": "a 200 is a live stream that does not end: read below up to its first frame",
}
# Reads that ask a managed host now, over SSH: the admin's run registers hosts of its own
# (POST /hosts with generated names and ports) where no sshd listens, and asking such a host
# is answered 503 `host_unavailable` with Retry-After, as documented (status and body are still
# checked); a 500 there is still a failure.
HOST_READS = {
    "/api/v1/hosts/{name}/drift": "a host the run registered where no sshd listens: 503",
}
# The log-in limiter counts failures per client address and for the whole desk: fuzzing the
# log-in (and wrong current passwords) from 127.0.0.1 must not lock the next tests out.
LOGIN_COUNTERS = ("sitedesk:login:client:127.0.0.1", "sitedesk:login:all")
TELEPHONY_SECRET = "conformance-telephony-secret-" + "5" * 16


@pytest.fixture
def gateway(desk: Desk) -> Iterator[str]:
    """A gateway beside the desk's, as deployed: the telephony webhook configured (the desk's
    own answers it 503 `telephony_not_configured`), and no per-caller limit on all requests,
    which a run this fast would pass at once (the stricter ones on tickets and changes stay)."""
    settings = GatewaySettings(telephony_secret=TELEPHONY_SECRET, requests_per_minute=0)
    platform = Platform(db=desk.db, redis_url=REDIS_URL, settings=settings,
                        directory=desk.deployment.directory,
                        config=desk.deployment.config)  # fmt: skip
    server = LiveServer(platform).start()
    client = redis.Redis.from_url(REDIS_URL)
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        client.delete(*LOGIN_COUNTERS)
        client.close()
        server.stop()


# Which request fields name which kind of thing: a role's run draws half of their values from
# things that exist and that role may see (schemathesis dictionaries), the other half it makes
# up, so that the answers are the documented 200s as well as the 404s and 422s.
FIELDS = {
    "tickets": ("path.number",),
    "accounts": ("path.account_id", "body.account_id", "query.account"),
    "services": ("path.service_id", "body.service_id"),
    "attachments": ("path.attachment_id",),
    "agents": ("body.agent_id",),
    "inbound": ("path.inbound_id",),
    "deliveries": ("path.delivery_id",),
}


def config(values: dict[str, list[Any]]) -> str:
    """A schemathesis.toml with `values` as dictionaries for the fields of FIELDS."""
    lines = []
    for name, entries in values.items():
        if entries:
            lines += [f"[dictionaries.{name}]", f"values = {json.dumps(entries)}"]
    lines.append("[parameters]")
    for name, entries in values.items():
        if entries:
            lines += [f'"{f}" = {{ dictionary = "{name}", probability = 0.5 }}'
                      for f in FIELDS[name]]  # fmt: skip
    for path, why in HOST_READS.items():  # the one 5xx a run itself can cause, and only there
        allowed = json.dumps(["2xx", "3xx", "4xx", "503"])
        lines += ["[[operations]]", f"include-path = {json.dumps(path)}", f"# {why}",
                  f"checks.not_a_server_error.expected-statuses = {allowed}"]  # fmt: skip
    return "\n".join(lines) + "\n"


def fuzz(
    base_url: str, token: str, role: str, work: Path, values: dict[str, list[Any]]
) -> dict[str, Any]:
    """One schemathesis run as `role`: its JSON report, with its console output."""
    work.mkdir()
    report = work / "report.json"
    (work / "schemathesis.toml").write_text(config(values))
    command = [
        str(Path(sys.executable).parent / "schemathesis"),
        "--config-file", str(work / "schemathesis.toml"),
        "run", f"{base_url}/openapi.json",
        "--checks", ",".join(CHECKS),
        "--header", f"Authorization: Bearer {token}",
        "--max-examples", str(MAX_EXAMPLES), "--seed", str(SEED),
        "--generation-database", "none", "--no-shrink", "--continue-on-failure",
        "--workers", "1", "--request-timeout", "30", "--no-color",
        "--report", "json", "--report-json-path", str(report),
    ]  # fmt: skip
    for path in NOT_FUZZED:
        command += ["--exclude-path", path]
    # Its own directory: schemathesis keeps a cache in the working directory.
    run = subprocess.run(command, cwd=work, capture_output=True, text=True, timeout=300)
    result: dict[str, Any] = json.loads(report.read_text()) if report.exists() else {}
    result["console"] = run.stdout + run.stderr
    result["returncode"] = run.returncode
    return result


def test_every_answer_is_the_documented_one_for_each_role(
    desk: Desk, gateway: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    account, customer = desk.customer("Conformance")
    agent, agent_token = desk.agent(2, online=False)
    admin = desk.admin()
    with desk.http(customer) as c:
        log = ("error.log", b"502 Bad Gateway\n", "text/plain")
        r = c.post("/api/v1/tickets", data={"subject": "With a file", "body": "see the log"},
                   files=[("files", log)])  # fmt: skip
        assert r.status_code == 201, r.text
        numbers = [r.json()["number"]]
        with_file = c.get(f"/api/v1/tickets/{numbers[0]}").json()
        for subject in ("For the agent", "For the administrator"):
            r = c.post("/api/v1/tickets", json={"subject": subject, "body": "the site is down"})
            assert r.status_code == 201, r.text
            numbers.append(r.json()["number"])
    with desk.db.read() as s:
        services = [sv.id for sv in AccountRepository(s).services(account.id)]
    seen = {
        "accounts": [account.id],
        "services": services,
        "attachments": [a["id"] for m in with_file["messages"] for a in m["attachments"]],
    }
    mail_in, _ = InboundMailReads(desk.db).listing(status=None, before=None, limit=3)
    mail_out, _ = DeliveryReads(desk.db).listing(
        status=None, recipient=None, ticket_id=None, before=None, limit=3
    )
    every = {
        "customer": (customer, {**seen, "tickets": numbers[:1]}),
        "agent": (agent_token, {**seen, "tickets": [numbers[1], numbers[0]],
                                "agents": [agent.id]}),
        "admin": (admin, {**seen, "tickets": [numbers[2], numbers[0]],
                          "inbound": [m.id for m in mail_in],
                          "deliveries": [m.id for m in mail_out]}),
    }  # fmt: skip
    backend = request.node.callspec.params["desk_session"]
    roles = {role: every[role] for role in ROLES[backend]}
    started = time.monotonic()
    with ThreadPoolExecutor(len(roles)) as pool:
        futures = {
            role: pool.submit(fuzz, gateway, token, role, tmp_path / role, values)
            for role, (token, values) in roles.items()
        }
        runs = {role: future.result() for role, future in futures.items()}
    seconds = time.monotonic() - started
    figures = {
        role: (run.get("test_cases", {}).get("generated"), len(run.get("failures", [])))
        for role, run in runs.items()
    }
    print(f"schemathesis in {seconds:.1f} s: (cases generated, failures) by role {figures}")
    for role, run in runs.items():
        assert run["returncode"] == 0 and run.get("exit_code") == 0, (
            f"schemathesis as the {role}:\n{run['console'][-20000:]}"
        )
        assert run["operations"]["tested"] >= 40, run["operations"]
        assert run["test_cases"]["generated"] > 0


@pytest.mark.parametrize("desk_session", ["sqlite"], indirect=True)
def test_what_is_not_fuzzed_answers_as_documented(desk: Desk, gateway: str) -> None:
    """Log-out, sign out everywhere and the live stream, each with a token of its own."""
    schema = schemathesis.openapi.from_url(f"{gateway}/openapi.json")
    checks = [getattr(schemathesis.checks, name) for name in CHECKS[:4]]

    def answer(path: str, method: str, token: str | None, **case: Any) -> int:
        operation = schema[path][method]
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        response = operation.Case(**case).call_and_validate(headers=headers, checks=checks)
        return int(response.status_code)

    _, token = desk.customer("Leaving")
    assert answer("/api/v1/auth/logout", "POST", token) == 204
    assert answer("/api/v1/auth/logout", "POST", token) == 401  # revoked at once
    assert answer("/api/v1/auth/logout-all", "POST", None) == 401
    _, token = desk.customer("Leaving everywhere")
    assert answer("/api/v1/auth/logout-all", "POST", token) == 200
    assert answer("/api/v1/auth/logout-all", "POST", token) == 401

    _, token = desk.customer("Listening")
    assert answer("/api/v1/events", "GET", None) == 401
    assert answer("/api/v1/events", "GET", token, headers={"Last-Event-ID": "soon"}) == 422
    documented = schema.raw_schema["paths"]["/api/v1/events"]["get"]["responses"]["200"]
    with httpx.Client(base_url=gateway, timeout=10) as c:
        headers = {"Authorization": f"Bearer {token}"}
        with c.stream("GET", "/api/v1/events", headers=headers) as r:
            assert r.status_code == 200
            assert r.headers["content-type"].split(";")[0] in documented["content"]
            first = next(r.iter_text())
    assert first.startswith("retry: "), first


# Paths with a parameter that names no thing that might be missing, and so answer no 404.
NO_404 = {
    "/api/v1/queues/{tier}": "the tier is 1, 2 or 3; any other is a 422",
    "/api/v1/contacts/{contact_id}/link": "no waiting sender with the id is a 409, as one on "
    "an account already is (`contact_link_invalid`)",
}
ERROR_BODIES = {"ErrorBody", "ValidationErrorBody", "UploadErrorBody", "MalformedEventBody"}


def test_every_operation_documents_the_answers_its_kind_shares(tmp_path: Path) -> None:
    """The document alone (no server): the real error bodies only, the shared statuses where
    they apply, a 404 wherever a path names a thing."""
    platform = Platform(db=Database(f"sqlite:///{tmp_path / 'doc.db'}"), redis_url=REDIS_URL)
    doc = create_app(platform).openapi()
    assert "HTTPValidationError" not in json.dumps(doc)
    for path, operations in doc["paths"].items():
        for method, op in operations.items():
            where = f"{method.upper()} {path}"
            responses = op["responses"]
            for status, response in responses.items():
                if int(status) < 400 or path == "/readyz":
                    continue
                ref = response["content"]["application/json"]["schema"]["$ref"]
                assert ref.rsplit("/", 1)[1] in ERROR_BODIES, (where, status, ref)
                if status == "422":
                    assert not ref.endswith("/ErrorBody"), where  # its detail is per field
            if op.get("security"):
                assert {"401", "429"} <= set(responses), where
                assert "X-RateLimit-Remaining" in responses["429"]["headers"], where
            if path.startswith("/api/v1"):
                assert "Retry-After" in responses["503"]["headers"], where
            if "{" in path and path not in NO_404:
                assert "404" in responses, where
            if op.get("parameters") or "requestBody" in op:
                assert "422" in responses, where
