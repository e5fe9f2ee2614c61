"""The pages: the drawing page (/), its static files (/static) and the offline API docs (/docs).

Each answers HEAD too (the static files through StaticFiles, the page and the docs here), with the
headers of a GET and no body (the guard makes sure of the latter).

Swagger UI's files come from the fastapi-offline package and are served locally (no CDN: the docs work
offline). No inline script or style anywhere, so the Content-Security-Policy (CSP) allows none.
"""

from __future__ import annotations

import logging
from importlib import resources
from pathlib import Path

from fastapi import FastAPI
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles

log = logging.getLogger(__name__)

STATIC = Path(str(resources.files("scrawl.web") / "static"))
# No inline script or style anywhere: the page and the docs load their code from files.
CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data: blob:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")
DOCS_HTML = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Scrawl API</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<link rel="stylesheet" href="/docs-assets/swagger-ui.css"><link rel="icon" href="/static/favicon.svg">
</head><body><div id="swagger-ui"></div>
<script src="/docs-assets/swagger-ui-bundle.js"></script><script src="/static/docs.js"></script>
</body></html>"""


def add_pages(app: FastAPI) -> None:
    """Mount the static files and add the page and the docs to `app` (not in the OpenAPI schema)."""
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    docs_assets = _swagger_assets()
    if docs_assets is not None:
        app.mount("/docs-assets", StaticFiles(directory=docs_assets), name="docs-assets")

    @app.api_route("/", methods=["GET", "HEAD"], include_in_schema=False)
    async def index():
        return FileResponse(STATIC / "index.html", media_type="text/html")

    @app.api_route("/docs", methods=["GET", "HEAD"], include_in_schema=False)
    async def docs():
        if docs_assets is None:
            return HTMLResponse("<p>The API docs need the fastapi-offline package; the schema is at "
                                "<a href='/openapi.json'>/openapi.json</a>.</p>", status_code=503)
        return HTMLResponse(DOCS_HTML)


def _swagger_assets() -> Path | None:
    """Swagger UI's files from the fastapi-offline package (served locally: no CDN, works offline)."""
    try:
        path = Path(str(resources.files("fastapi_offline") / "static"))
    except ModuleNotFoundError:
        log.warning("fastapi-offline is not installed: /docs is unavailable (the schema is at /openapi.json)")
        return None
    return path if (path / "swagger-ui-bundle.js").is_file() else None
