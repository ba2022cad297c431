"""Gateway entry point: `create_app()` wires everything in an async lifespan; `main()` serves it.

Uvicorn owns the signals here (no `run_service`): SIGTERM makes uvicorn stop accepting, finish
in-flight requests and run the lifespan's shutdown, which stops the read model, flushes the
producer and disposes the database engine.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any, Protocol

import httpx
import uvicorn
from fastapi import FastAPI, Request
from fastapi.middleware.cors import CORSMiddleware
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import JSONResponse, Response

from perpsignal_common.db.engine import create_engine, create_sessionmaker
from perpsignal_common.errors import ConfigError
from perpsignal_common.events.base import Event
from perpsignal_common.events.values import configure_clock_skew
from perpsignal_common.kafka.admin import ensure_topics
from perpsignal_common.kafka.producer import EventProducer
from perpsignal_common.logging import configure_logging
from perpsignal_connectors.catalog import load_catalogs
from perpsignal_gateway.apidocs import mount_api_docs
from perpsignal_gateway.dashboard import mount_dashboard
from perpsignal_gateway.errors import install_error_handlers
from perpsignal_gateway.gpt import build_gpt_openapi
from perpsignal_gateway.health import router as health_router
from perpsignal_gateway.hotpath import HotPathMiddleware
from perpsignal_gateway.operations import build_registry
from perpsignal_gateway.platform import Pending, Platform
from perpsignal_gateway.readmodel import ReadModel, TopicFollower
from perpsignal_gateway.routes import json_response, router
from perpsignal_gateway.schemas import Health, Readiness
from perpsignal_gateway.security import MetricsMiddleware, SecurityMiddleware
from perpsignal_gateway.settings import GatewaySettings
from perpsignal_gateway.streams import StreamHub
from perpsignal_gateway.symbols import ListedSymbols, SymbolUniverse
from perpsignal_gateway.vendors import VendorClient, budget_env

log = logging.getLogger(__name__)

VERSION = "1.0.0"
HOT_PATHS = frozenset({"/signals/{symbol}", "/invoke", "/ping"})


class Publisher(Protocol):
    """What the gateway needs from a producer (tests inject a fake)."""

    async def publish(self, event: Event, *, topic: str | None = None, wait: bool = False) -> None:
        """Send an event."""


def vendor_env_from_os() -> dict[str, str]:
    """Return the vendor keys and base-URL overrides the catalogues name, from the environment."""
    names = set()
    for c in load_catalogs():
        names.add(c.base_url_env)
        names.add(budget_env(c))
        if c.key_env:
            names.add(c.key_env)
    return {n: os.environ[n] for n in names if os.environ.get(n)}


def binance_listed(vendors: VendorClient) -> ListedSymbols:
    """Return a fetcher of trading USD-M perpetuals through the catalogue's exchangeInfo."""
    endpoint = next(
        e for c in load_catalogs() for e in c.endpoints if e.operation == "binance.exchange_info"
    )

    async def fetch() -> set[str]:
        data = await vendors.call(endpoint, {})
        return {
            s["symbol"]
            for s in data.get("symbols", [])
            if s.get("contractType") == "PERPETUAL" and s.get("status") == "TRADING"
        }

    return fetch


def create_app(
    settings: GatewaySettings | None = None,
    *,
    vendor_env: Mapping[str, str] | None = None,
    vendor_http: httpx.AsyncClient | None = None,
    listed_symbols: ListedSymbols | None = None,
    producer: Publisher | None = None,
    connect_kafka: bool = True,
) -> FastAPI:
    """Build the gateway app; everything with I/O is opened in the lifespan."""
    cfg = settings or GatewaySettings()
    catalogs = load_catalogs()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        model = ReadModel(liquidations_kept=cfg.gateway_liquidations_kept)
        hub = StreamHub(
            queue_size=cfg.gateway_ws_queue_size, heartbeat_s=cfg.gateway_ws_heartbeat_s
        )
        model.listeners.append(hub.publish)
        vendors = VendorClient(
            catalogs,
            vendor_env if vendor_env is not None else vendor_env_from_os(),
            http=vendor_http,
            timeout_s=cfg.gateway_vendor_timeout_s,
        )
        universe = SymbolUniverse(
            listed_symbols if listed_symbols is not None else binance_listed(vendors),
            ttl_s=cfg.gateway_universe_ttl_s,
        )
        engine = create_engine(cfg.db) if cfg.gateway_enable_database else None
        own_producer: EventProducer | None = None
        follower: TopicFollower | None = None
        stop = asyncio.Event()
        task: asyncio.Task[None] | None = None
        pub: Any = producer
        if connect_kafka:
            if cfg.kafka.kafka_create_topics:
                await ensure_topics(cfg.kafka)
            if pub is None:
                own_producer = EventProducer(cfg.kafka, service="gateway")
                await own_producer.start()
                pub = own_producer
            follower = TopicFollower(cfg.kafka, model)
            await follower.start()
            task = asyncio.create_task(follower.run(stop), name="gateway-readmodel")
        platform = Platform(
            model=model,
            producer=pub,
            universe=universe,
            sessions=create_sessionmaker(engine) if engine is not None else None,
            on_demand_wait_s=cfg.gateway_on_demand_wait_s,
            judge_timeout_s=cfg.gateway_judge_timeout_s,
        )
        app.state.model = model
        app.state.hub = hub
        app.state.follower = follower
        app.state.follower_task = task
        app.state.platform = platform
        app.state.vendors = vendors
        app.state.registry = build_registry(platform, vendors, catalogs)
        log.info(
            "gateway started",
            extra={
                "operations": len(app.state.registry.operations),
                "auth": "on" if cfg.api_keys() else "off (GATEWAY_API_KEYS empty)",
            },
        )
        try:
            yield
        finally:
            stop.set()
            if task is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(task, 5)
            if follower is not None:
                await follower.stop()
            if own_producer is not None:
                await own_producer.stop()
            await vendors.close()
            if engine is not None:
                await engine.dispose()

    app = FastAPI(
        title="PerpSignal gateway",
        version=VERSION,
        description="Trading signals, market data, analytics and vendor pass-through.",
        lifespan=lifespan,
        openapi_url="/openapi.json",
        docs_url=None,  # served from packaged assets by mount_api_docs (works offline)
        redoc_url=None,
    )
    app.state.settings = cfg
    install_error_handlers(app)

    @app.exception_handler(Pending)
    async def _pending(_: Request, exc: Pending) -> Response:
        response = json_response(exc.body, status=202)
        response.headers["Retry-After"] = str(exc.body.retry_after_s)
        return response

    app.include_router(router)
    app.include_router(health_router)
    mount_api_docs(app)  # before the dashboard's /static mount
    mount_dashboard(app)
    _add_ops_routes(app, cfg)
    # the router matches routes in order: hot paths first (stable sort keeps the rest as is)
    app.router.routes.sort(key=lambda r: getattr(r, "path", None) not in HOT_PATHS)
    app.add_middleware(HotPathMiddleware)
    app.add_middleware(
        SecurityMiddleware,
        api_keys=cfg.api_keys(),
        public_paths=cfg.public_paths(),
        rate_limit=cfg.gateway_rate_limit,
        max_body_bytes=cfg.gateway_max_body_bytes,
    )
    if cfg.cors_origins():
        app.add_middleware(
            CORSMiddleware,
            allow_origins=cfg.cors_origins(),
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["X-API-Key", "Content-Type"],
        )
    app.add_middleware(MetricsMiddleware)
    return app


def _add_ops_routes(app: FastAPI, cfg: GatewaySettings) -> None:
    @app.get(
        "/healthz",
        response_model=Health,
        operation_id="healthz",
        summary="Liveness",
        tags=["ops"],
    )
    async def healthz() -> Response:
        return json_response(Health(status="ok"))

    @app.get(
        "/readyz",
        response_model=Readiness,
        responses={503: {"model": Readiness, "description": "Not caught up yet"}},
        operation_id="readyz",
        summary="Ready once the read model caught up with the topics (200 even when a data "
        "source is degraded: status says so)",
        tags=["ops"],
    )
    async def readyz(request: Request) -> Response:
        follower: TopicFollower | None = request.app.state.follower
        # a vendor outage is not the gateway's: it stays ready (an orchestrator must not
        # restart it for that) and says which sources are degraded
        degraded = [
            f"{s.name} {s.state} since {s.since.isoformat()}"
            for s in request.app.state.model.failing_sources()
        ]
        if follower is None:
            return json_response(
                Readiness(
                    status="degraded" if degraded else "ready",
                    caught_up=True,
                    records_read=0,
                    lag=0,
                    degraded_sources=degraded,
                )
            )
        task = request.app.state.follower_task
        ready = follower.caught_up and task is not None and not task.done()
        status = "catching up" if not ready else "degraded" if degraded else "ready"
        body = Readiness(
            status=status,
            caught_up=ready,
            records_read=follower.records_read,
            lag=await follower.lag(),
            degraded_sources=degraded,
        )
        return json_response(body, status=200 if ready else 503)

    @app.get("/metrics", include_in_schema=False)
    async def metrics() -> Response:
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    @app.get(
        "/ping",
        operation_id="ping",
        summary="Trivial endpoint (benchmark baseline)",
        tags=["ops"],
        response_model=Health,
    )
    async def ping() -> Response:
        return Response(b'{"status":"ok"}', media_type="application/json")

    gpt_cache: dict[str, Any] = {}

    @app.get("/openapi-gpt.json", include_in_schema=False)
    async def openapi_gpt() -> JSONResponse:
        if "doc" not in gpt_cache:
            gpt_cache["doc"] = build_gpt_openapi(app.openapi(), cfg.gateway_public_url)
        return JSONResponse(gpt_cache["doc"])


def main() -> None:
    """Serve the gateway with uvicorn on GATEWAY_HOST:GATEWAY_PORT."""
    try:
        settings = GatewaySettings()
    except (ConfigError, ValueError) as exc:
        configure_logging("gateway", "INFO")
        log.error("invalid configuration", extra={"error": str(exc)[:500]})
        sys.exit(2)
    configure_logging("gateway", settings.log_level, settings.log_format)
    configure_clock_skew(settings.event_max_clock_skew_s)
    config = uvicorn.Config(
        create_app(settings),
        host=settings.gateway_host,
        port=settings.gateway_port,
        log_config=None,
        access_log=False,
        proxy_headers=True,
        ws=settings.gateway_ws_impl,
        timeout_graceful_shutdown=int(settings.ops.shutdown_timeout_s),
    )
    _Server(config).run()
    log.info("gateway stopped")


class _Server(uvicorn.Server):
    # uvicorn drains on SIGTERM, then re-raises the signal (exit status -15); a drained
    # shutdown is a clean exit here, like every other service, so handle it without re-raising
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
