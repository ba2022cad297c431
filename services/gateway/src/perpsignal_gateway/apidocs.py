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

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import fastapi_offline
from fastapi import FastAPI
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.staticfiles import StaticFiles

from perpsignal_gateway.browser import inline_sources, page_csp

ASSETS_DIR = Path(fastapi_offline.__file__).resolve().parent / "static"
ASSETS_PREFIX = "/static/apidocs"
OPENAPI_URL = "/openapi.json"


class CachedDocument:
    """A JSON document served from one serialisation, with a strong ETag.

    FastAPI re-serialises its OpenAPI document (about 300 KB) on every request, on a path that
    needs no key; here it is serialised once, and a client holding the current version gets
    a bodiless 304 for its If-None-Match. `no-cache` lets browsers and Swagger UI keep a copy
    but ask each time, so a redeployed gateway's document is never served stale.
    """

    def __init__(self) -> None:
        self._body: bytes | None = None
        self._etag = ""

    def response(
        self,
        request: Request,
        build: Callable[[], dict[str, Any]],
        final: Callable[[], bool],
    ) -> Response:
        """Answer with the document `build` returns, kept once `final()` says it is complete."""
        if self._body is None:
            body = bytes(JSONResponse(build()).body)
            etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
            if not final():  # built before start-up completed: not the document to keep
                return _document(request, body, etag)
            self._body, self._etag = body, etag
        return _document(request, self._body, self._etag)


def _document(request: Request, body: bytes, etag: str) -> Response:
    headers = {"ETag": etag, "Cache-Control": "no-cache"}
    if _matches(request.headers.get("if-none-match"), etag):
        return Response(status_code=304, headers=headers)
    return Response(body, media_type="application/json", headers=headers)


def _matches(if_none_match: str | None, etag: str) -> bool:
    """RFC 9110 If-None-Match: "*" or any listed tag, compared weakly (W/ ignored)."""
    if not if_none_match:
        return False
    tags = [t.strip().removeprefix("W/") for t in if_none_match.split(",")]
    return "*" in tags or etag in tags


def mount_api_docs(app: FastAPI, *, docs_url: str = "/docs", redoc_url: str = "/redoc") -> None:
    """Serve Swagger UI at `docs_url` and ReDoc at `redoc_url` from the packaged assets.

    Call before the dashboard's `/static` mount: the first matching mount wins. Each page is
    rendered once and sent with a policy that allows its own inline blocks by hash.
    """
    openapi_url = app.openapi_url or OPENAPI_URL
    oauth2_redirect_url = f"{docs_url}/oauth2-redirect"
    app.mount(ASSETS_PREFIX, StaticFiles(directory=ASSETS_DIR), name="api-docs-assets")
    swagger = get_swagger_ui_html(
        openapi_url=openapi_url,
        title=f"{app.title} - Swagger UI",
        oauth2_redirect_url=oauth2_redirect_url,
        swagger_js_url=f"{ASSETS_PREFIX}/swagger-ui-bundle.js",
        swagger_css_url=f"{ASSETS_PREFIX}/swagger-ui.css",
        swagger_favicon_url=f"{ASSETS_PREFIX}/favicon.png",
        swagger_ui_parameters={"validatorUrl": None, **(app.swagger_ui_parameters or {})},
    )
    redirect = get_swagger_ui_oauth2_redirect_html()
    redoc = get_redoc_html(
        openapi_url=openapi_url,
        title=f"{app.title} - ReDoc",
        redoc_js_url=f"{ASSETS_PREFIX}/redoc.standalone.js",
        redoc_favicon_url=f"{ASSETS_PREFIX}/favicon.png",
        with_google_fonts=False,
    )
    pages = {
        # Swagger UI: its bundle and the inline start-up script; data:/blob: images are its
        # icons and downloaded response bodies; "Try it out" calls this origin
        "swagger": _page(
            swagger,
            script_src=["'self'", *inline_sources(_text(swagger), "script")],
            style_src=["'self'"],
            img_src=["'self'", "data:", "blob:"],
            connect_src=["'self'"],
            form_action=["'self'"],
        ),
        "redirect": _page(
            redirect,
            script_src=inline_sources(_text(redirect), "script"),
            form_action=["'none'"],
        ),
        # ReDoc styles itself with styled-components (runtime <style> blocks) and runs its
        # search index in a blob: worker; scripts stay limited to its bundle
        "redoc": _page(
            redoc,
            script_src=["'self'"],
            style_src=["'self'", "'unsafe-inline'"],
            img_src=["'self'", "data:"],
            connect_src=["'self'"],
            worker_src=["blob:"],
            form_action=["'none'"],
        ),
    }

    @app.get(docs_url, include_in_schema=False)
    async def swagger_ui() -> HTMLResponse:
        return pages["swagger"]()

    @app.get(oauth2_redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return pages["redirect"]()

    @app.get(redoc_url, include_in_schema=False)
    async def redoc_page() -> HTMLResponse:
        return pages["redoc"]()


def _text(page: HTMLResponse) -> str:
    return bytes(page.body).decode()


def _page(page: HTMLResponse, **directives: list[str]) -> Callable[[], HTMLResponse]:
    """Return a maker of fresh responses (a response object is not reused) with the page's CSP."""
    body = bytes(page.body)
    headers = {"Content-Security-Policy": page_csp(**directives)}
    return lambda: HTMLResponse(body, headers=headers)
