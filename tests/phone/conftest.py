"""The phone tests' gateway: one with the telephony secret set, beside the desk's own."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from gateway.platform import Platform
from gateway.settings import GatewaySettings
from tests.conftest import REDIS_URL
from tests.desk import Desk, LiveServer

SECRET = "telephony-test-secret-" + "7" * 16


@pytest.fixture(scope="module")
def phone_gateway(desk_session: Desk) -> Iterator[str]:
    """A gateway with the telephony secret set, beside the desk's own (which has none)."""
    settings = GatewaySettings(telephony_secret=SECRET)
    platform = Platform(db=desk_session.db, redis_url=REDIS_URL, settings=settings,
                        directory=desk_session.deployment.directory,
                        config=desk_session.deployment.config)  # fmt: skip
    server = LiveServer(platform).start()
    try:
        yield f"http://127.0.0.1:{server.port}"
    finally:
        server.stop()
