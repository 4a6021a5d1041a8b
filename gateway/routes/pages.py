"""The web pages: SiteControl (customer portal, /portal) and SiteTools (agent console, /console).

Static HTML, CSS and JavaScript modules from `gateway/web/`, no build step; the pages use only
the JSON API with a bearer token kept in the browser's sessionStorage."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, RedirectResponse

from gateway.errors import NotFound

router = APIRouter(tags=["pages"], include_in_schema=False)

WEB_DIR = Path(__file__).resolve().parent.parent / "web"

JS = "text/javascript; charset=utf-8"
# Every file the pages may load, by its path under gateway/web: nothing else is ever served.
# lib/ is what both pages share (API client, DOM helpers, live stream, client store, forms,
# changes, files, DNS record forms); portal/ is SiteControl's, console/ SiteTools'.
ASSETS = {
    "style.css": "text/css; charset=utf-8",
    **{
        f"lib/{n}.js": JS
        for n in ("api", "dom", "live", "page", "store", "forms", "changes", "files", "dns")
    },
    **{f"portal/{n}.js": JS for n in ("main", "services")},
    **{f"console/{n}.js": JS for n in ("main", "ticket_tools", "search")},
}

SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
        "img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def page(name: str) -> FileResponse:
    return FileResponse(
        WEB_DIR / name, media_type="text/html; charset=utf-8", headers=SECURITY_HEADERS
    )


@router.get("/")
async def root() -> RedirectResponse:
    return RedirectResponse("/portal", status_code=307)


@router.get("/portal")
async def portal() -> FileResponse:
    """SiteControl, the customer portal."""
    return page("portal/index.html")


@router.get("/console")
async def console() -> FileResponse:
    """SiteTools, the agent console."""
    return page("console/index.html")


@router.get("/web/{name:path}")
async def asset(name: str) -> FileResponse:
    return static_file(WEB_DIR, name, ASSETS, SECURITY_HEADERS)


def static_file(
    directory: Path, name: str, media_types: dict[str, str], headers: dict[str, str]
) -> FileResponse:
    """One of the files listed in `media_types` (nothing else in `directory`: no path a caller
    makes up is ever opened), or 404."""
    media_type = media_types.get(name)
    if media_type is None:
        raise NotFound(f"{name} not found")
    return FileResponse(directory / name, media_type=media_type, headers=headers)
