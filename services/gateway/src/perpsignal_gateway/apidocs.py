"""`/docs` (Swagger UI) and `/redoc` (ReDoc) from packaged assets: they work offline.

FastAPI's default pages load their JavaScript, CSS and fonts from public CDNs, so they render
blank without network. The assets come from the `fastapi-offline` wheel (MIT; it ships the
Swagger UI bundle, Apache-2.0, and the ReDoc standalone build, MIT, about 2.8 MB), chosen
over copying them into this repository: a pinned, maintained package is upgraded with one
`uv lock`, and the licences travel with it. Only its static folder is used, served under
`/static/apidocs/` (public like every dashboard asset), with FastAPI's own page builders;
ReDoc's Google Fonts and Swagger UI's online validator badge are switched off.
"""

from __future__ import annotations

from pathlib import Path

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from starlette.responses import HTMLResponse
from starlette.staticfiles import StaticFiles

ASSETS_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"
ASSETS_PREFIX = "/static/apidocs"


def mount_api_docs(app: FastAPI, *, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Serve Swagger UI at `docs_url` and ReDoc at `redoc_url` from the packaged assets.

    Call before the dashboard's `/static` mount: the first matching mount wins.
    """
    openapi_url = app.openapi_url or "/openapi.json"
    oauth2_redirect_url = f"{docs_url}/oauth2-redirect"
    app.mount(ASSETS_PREFIX, StaticFiles(directory=ASSETS_DIR), name="api-docs-assets")

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=openapi_url,
            title=f"{app.title} - Swagger UI",
            oauth2_redirect_url=oauth2_redirect_url,
            swagger_js_url=f"{ASSETS_PREFIX}/swagger-ui-bundle.js",
            swagger_css_url=f"{ASSETS_PREFIX}/swagger-ui.css",
            swagger_favicon_url=f"{ASSETS_PREFIX}/favicon.png",
            swagger_ui_parameters={"validatorUrl": None, **(app.swagger_ui_parameters or {})},
        )

    @app.get(oauth2_redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get(redoc_url, include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url=openapi_url,
            title=f"{app.title} - ReDoc",
            redoc_js_url=f"{ASSETS_PREFIX}/redoc.standalone.js",
            redoc_favicon_url=f"{ASSETS_PREFIX}/favicon.png",
            with_google_fonts=False,
        )
