"""The interactive API docs (/docs), self-hosted: Swagger UI comes from the
`swagger-ui-bundle-v2` package, so the page works offline and under a strict CSP (no CDN, no
inline script)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse, HTMLResponse, Response
from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]

from gateway.routes.pages import static_file

router = APIRouter(include_in_schema=False)

SWAGGER_DIR = Path(str(swagger_ui_path))
ASSETS = {
    "swagger-ui-bundle.js": "text/javascript; charset=utf-8",
    "swagger-ui.css": "text/css; charset=utf-8",
    "favicon-32x32.png": "image/png",
}
# Swagger UI sets element styles from script (allowed: CSSOM is not inline style) and shows
# its icons as data: images; it calls only this origin (the schema, the token, the API).
DOCS_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; "
    "img-src 'self' data:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {"Content-Security-Policy": DOCS_CSP, "Cache-Control": "no-cache"}

INIT_JS = """\
window.ui = SwaggerUIBundle({
  url: "/openapi.json",
  dom_id: "#swagger-ui",
  deepLinking: true,
  persistAuthorization: false,
  presets: [SwaggerUIBundle.presets.apis],
  layout: "BaseLayout",
});
"""

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Sitedesk API</title>
<link rel="stylesheet" href="/docs/assets/swagger-ui.css">
<link rel="icon" href="/docs/assets/favicon-32x32.png">
</head>
<body>
<div id="swagger-ui"></div>
<script src="/docs/assets/swagger-ui-bundle.js"></script>
<script src="/docs/assets/init.js"></script>
</body>
</html>
"""


@router.get("/docs")
async def docs() -> HTMLResponse:
    return HTMLResponse(PAGE, headers=HEADERS)


@router.get("/docs/assets/init.js")
async def docs_init() -> Response:
    return Response(INIT_JS, media_type="text/javascript; charset=utf-8", headers=HEADERS)


@router.get("/docs/assets/{name}")
async def docs_asset(name: str) -> FileResponse:
    return static_file(SWAGGER_DIR, name, ASSETS, HEADERS)
