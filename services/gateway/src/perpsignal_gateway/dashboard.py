"""The live web dashboard, served by the gateway itself (no second backend, no build step).

`/` is a small HTML shell; its ES modules, CSS and the vendored chart library are files under
`/static/` (the path prefix the security middleware serves without a key, because a browser
cannot attach `X-API-Key` to `<script>` and `<link>` loads). Every piece of data the pages
show comes from the gateway's own REST routes and WebSockets, with the key the user entered
once (kept in localStorage). The one route added here, `/ui/candles/{symbol}`, exposes the
candles the latest judged signal already carries in the read model, because the public API
has no candle endpoint yet; it is keyed like every data route and left out of the OpenAPI
document so the public contract does not change. `/ui/status` feeds the banners every page
shows: the data sources that are degraded or down (since when, why) and, on a
`perpsignal demo` stack, what is being replayed at what speed (the same blocks as
`/health/services`, without its round of service probes).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi import Path as PathParam
from starlette.responses import FileResponse, Response
from starlette.staticfiles import StaticFiles

from perpsignal_gateway.browser import dashboard_csp
from perpsignal_gateway.errors import ApiError
from perpsignal_gateway.health import demo_info, failing_sources
from perpsignal_gateway.readmodel import ReadModel
from perpsignal_gateway.symbols import PathSymbol

STATIC_DIR = Path(__file__).resolve().parent / "static"
STATIC_PREFIX = "/static"

router = APIRouter(include_in_schema=False)


@router.get("/")
async def index(request: Request) -> Response:
    # no-cache: the shell is tiny and must pick up new asset versions at once
    return FileResponse(
        STATIC_DIR / "index.html",
        media_type="text/html; charset=utf-8",
        headers={
            "Cache-Control": "no-cache",
            "Content-Security-Policy": dashboard_csp(request.headers.get("host")),
        },
    )


@router.get("/ui/candles/{symbol}")
async def candles(symbol: Annotated[PathSymbol, PathParam()], request: Request) -> Response:
    model: ReadModel = request.app.state.model
    name = model.resolve_symbol(symbol)  # ETHBTC stays ETHBTC when the topics carry it
    event = model.signals.get(name)
    if event is None:
        raise ApiError(404, "no_signal", f"no signal for {name} yet", {"symbol": name})
    body = {
        "symbol": name,
        "timeframe": event.timeframe,
        "signalId": event.signal_id,
        "candles": [
            {
                "time": int(c.open_time.timestamp()),
                "open": c.open,
                "high": c.high,
                "low": c.low,
                "close": c.close,
                "volume": c.volume,
            }
            for c in event.candles
        ],
    }
    return Response(orjson.dumps(body), media_type="application/json")


@router.get("/ui/status")
async def status(request: Request) -> Response:
    model: ReadModel | None = getattr(request.app.state, "model", None)
    demo = demo_info()
    body = {
        "sources": [s.model_dump(mode="json", by_alias=True) for s in failing_sources(model)],
        "demo": demo.model_dump(mode="json", by_alias=True) if demo else None,
    }
    return Response(orjson.dumps(body), media_type="application/json")


def mount_dashboard(app: FastAPI) -> None:
    """Serve the dashboard at `/` and its assets under `/static/` on `app`."""
    app.include_router(router)
    app.mount(STATIC_PREFIX, StaticFiles(directory=STATIC_DIR), name="dashboard-static")
