"""The FastAPI application: routes, error shape, and the platform it serves."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from gateway import auth, health
from gateway.errors import install_error_handlers
from gateway.platform import Platform
from gateway.routes import accounts, changes, events, pages, queues, tickets

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
    )
    app.state.platform = platform
    install_error_handlers(app)
    app.include_router(health.router)
    for module in (auth, tickets, queues, accounts, events, changes, pages):
        app.include_router(module.router)
    return app
