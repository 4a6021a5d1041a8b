"""The FastAPI application: routes, error shape, and the platform it serves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TypedDict

from fastapi import Depends, FastAPI
from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

from gateway import auth, docs, health
from gateway.errors import install_error_handlers
from gateway.middleware import BodyLimit, SecurityHeaders
from gateway.openapi import install_openapi
from gateway.outages import install_outage_handlers
from gateway.platform import Platform
from gateway.ratelimit import RateLimitHeaders, api_rate_limit
from gateway.routes import (
    accounts,
    calls,
    changes,
    events,
    mail,
    pages,
    queues,
    search,
    tickets,
)

API_DESCRIPTION = """
Sitedesk: one request from any channel becomes one tracked ticket; the right support tier owns
it; changes to a customer's hosting are applied to the real servers at once and recorded.

Every error has the shape `{"error": code, "message": text, "detail": ...}`.
"""


def create_app(platform: Platform) -> FastAPI:
    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        await platform.open()
        try:
            yield
        finally:
            await platform.close()

    app = FastAPI(
        title="Sitedesk",
        version="0.1.0",
        description=API_DESCRIPTION,
        lifespan=lifespan,
        docs_url=None,  # served by gateway/docs.py from the package, not from a CDN
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
        # Every authenticated route is counted in its caller's rate limit (gateway/ratelimit.py).
        dependencies=[Depends(api_rate_limit(auth.current_principal))],
    )
    app.state.platform = platform
    install_error_handlers(app)
    install_outage_handlers(app)  # 503 + Retry-After while the database, Redis or Ray is down
    install_openapi(app, max_body_bytes=platform.settings.max_body_bytes)  # errors as answered
    # The last added runs first: the client's address is settled, then the body is bounded.
    app.add_middleware(RateLimitHeaders)
    app.add_middleware(SecurityHeaders)
    app.add_middleware(
        BodyLimit,
        max_bytes=platform.settings.max_body_bytes,
        upload_max_bytes=platform.settings.upload_max_bytes,
    )
    if platform.settings.trusted_proxies:
        # Servers start uvicorn with proxy_headers off (see `server_options`): forwarded
        # headers count only when the socket's peer is one of the configured proxies.
        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=platform.settings.trusted_proxies)
    app.include_router(health.router)
    app.include_router(docs.router)
    for module in (auth, tickets, queues, accounts, events, changes, mail, calls, search, pages):
        app.include_router(module.router)
    return app


class ServerOptions(TypedDict):
    proxy_headers: bool


def server_options() -> ServerOptions:
    """Options for every uvicorn that serves the app: uvicorn's own proxy-header handling
    trusts 127.0.0.1 by default, so anyone on the machine could pick their address with
    X-Forwarded-For; the app does it instead, for SITEDESK_TRUSTED_PROXIES only."""
    return ServerOptions(proxy_headers=False)
