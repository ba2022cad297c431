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
from urllib.parse import urlsplit

import httpx
import uvicorn
from fastapi import FastAPI, Request
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.responses import Response

from perpsignal_common.db.engine import create_engine, create_sessionmaker
from perpsignal_common.errors import ConfigError
from perpsignal_common.events.base import Event
from perpsignal_common.events.registry import warm as warm_event_models
from perpsignal_common.events.values import configure_clock_skew
from perpsignal_common.kafka.admin import ensure_topics
from perpsignal_common.kafka.producer import EventProducer
from perpsignal_common.logging import configure_logging
from perpsignal_common.observability.ops_server import OpsServer
from perpsignal_connectors.catalog import load_catalogs
from perpsignal_connectors.coinapi import constants as coinapi
from perpsignal_connectors.keys import read_keys
from perpsignal_gateway.apidocs import OPENAPI_URL, CachedDocument, mount_api_docs
from perpsignal_gateway.browser import (
    PROBE_PATHS,
    HostGuardMiddleware,
    JsonCorsMiddleware,
    SecurityHeadersMiddleware,
)
from perpsignal_gateway.connections import connection_cap, guarded_h11
from perpsignal_gateway.dashboard import mount_dashboard
from perpsignal_gateway.errors import install_error_handlers
from perpsignal_gateway.gpt import add_host_guard, add_security, build_gpt_openapi
from perpsignal_gateway.health import router as health_router
from perpsignal_gateway.hotpath import HotPathMiddleware
from perpsignal_gateway.operations import build_registry
from perpsignal_gateway.platform import Pending, Platform
from perpsignal_gateway.readmodel import ReadModel, TopicFollower
from perpsignal_gateway.redaction import install_redaction
from perpsignal_gateway.routes import json_response, router
from perpsignal_gateway.schemas import Health, Readiness
from perpsignal_gateway.security import MetricsMiddleware, SecurityMiddleware
from perpsignal_gateway.settings import SECURE_ENVIRONMENTS, GatewaySettings, split_csv
from perpsignal_gateway.snapshot import SnapshotWriter
from perpsignal_gateway.streams import StreamHub
from perpsignal_gateway.symbols import ListedSymbols, SymbolUniverse
from perpsignal_gateway.tickets import TicketBook
from perpsignal_gateway.vendors import DailyShare, VendorClient, budget_env

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
    found = {n: os.environ[n] for n in names if os.environ.get(n)}
    # keys by the registry shared with the ingestor: deprecated names land on the documented one
    return {**found, **read_keys(os.environ)}


def coinapi_daily_share(cfg: GatewaySettings) -> dict[str, DailyShare]:
    """Return the pass-through's part of CoinAPI's daily credits (the ingestor has the rest)."""
    ingestor, gateway = coinapi.credit_split(
        cfg.coinapi_daily_credits, cfg.gateway_coinapi_daily_share
    )
    return {"coinapi": DailyShare(gateway, ingestor, coinapi.USED_HEADER)}


def configured_secrets(cfg: GatewaySettings, environ: Mapping[str, str]) -> list[str]:
    """Return every secret value this process knows, for the log redaction filter."""
    found = list(cfg.api_keys())
    if cfg.kafka.kafka_sasl_password is not None:
        found.append(cfg.kafka.kafka_sasl_password.get_secret_value())
    password = urlsplit(cfg.db.database_url.get_secret_value()).password
    if password:
        found.append(password)
    for name, value in environ.items():
        if value and name.upper().endswith(("_KEY", "_KEYS", "_SECRET", "_TOKEN", "_PASSWORD")):
            found.extend(split_csv(value))
    return found


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
        warm_event_models()  # the read model decodes every topic: no first-message build
        model = ReadModel(liquidations_kept=cfg.gateway_liquidations_kept)
        hub = StreamHub(
            queue_size=cfg.gateway_ws_queue_size,
            heartbeat_s=cfg.gateway_ws_heartbeat_s,
            send_timeout_s=cfg.gateway_ws_send_timeout_s,
            max_per_client=cfg.gateway_ws_max_per_key,
        )
        model.listeners.append(hub.publish)
        vendors = VendorClient(
            catalogs,
            vendor_env if vendor_env is not None else vendor_env_from_os(),
            http=vendor_http,
            timeout_s=cfg.gateway_vendor_timeout_s,
            daily_shares=coinapi_daily_share(cfg),
        )
        universe = SymbolUniverse(
            listed_symbols if listed_symbols is not None else binance_listed(vendors),
            ttl_s=cfg.gateway_universe_ttl_s,
        )
        engine = create_engine(cfg.db) if cfg.gateway_enable_database else None
        own_producer: EventProducer | None = None
        follower: TopicFollower | None = None
        writer: SnapshotWriter | None = None
        writer_task: asyncio.Task[None] | None = None
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
            follower = TopicFollower(
                cfg.kafka,
                model,
                snapshot_window_s=cfg.snapshot_window_s() if cfg.gateway_snapshot_read else None,
            )
            await follower.start()
            task = asyncio.create_task(follower.run(stop), name="gateway-readmodel")
            if cfg.gateway_snapshot_write and isinstance(pub, EventProducer):
                writer = SnapshotWriter(
                    cfg.kafka,
                    model,
                    follower,
                    pub,
                    interval_s=cfg.gateway_snapshot_interval_s,
                    full_every_s=cfg.gateway_snapshot_full_every_s,
                )
                writer_task = asyncio.create_task(writer.run(stop), name="gateway-snapshot")
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
        app.state.snapshot_writer = writer
        app.state.platform = platform
        app.state.vendors = vendors
        app.state.registry = build_registry(
            platform, vendors, catalogs, vendor_writes=cfg.gateway_vendor_write_operations
        )
        log.info(
            "gateway started",
            extra={
                "operations": len(app.state.registry.operations),
                "auth": "on" if cfg.api_keys() else "off (GATEWAY_API_KEYS empty)",
            },
        )
        ops: OpsServer | None = None
        if cfg.gateway_ops_port:
            # like the workers': Prometheus scrapes here, the public port has no /metrics
            def ready() -> bool:
                return follower is None or (
                    follower.caught_up and task is not None and not task.done()
                )

            ops = OpsServer(cfg.ops.ops_host, cfg.gateway_ops_port, ready)
            await ops.start()
        try:
            yield
        finally:
            if ops is not None:
                await ops.stop()
            stop.set()
            for running in (task, writer_task):
                if running is not None:
                    with contextlib.suppress(Exception):
                        await asyncio.wait_for(running, 5)
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
        # served from one cached serialisation by _add_ops_routes (FastAPI's own route
        # re-serialises ~300 KB per request); app.openapi_url is set below for the docs pages
        openapi_url=None,
        docs_url=None,  # served from packaged assets by mount_api_docs (works offline)
        redoc_url=None,
    )
    app.openapi_url = OPENAPI_URL
    app.state.settings = cfg
    app.state.tickets = TicketBook(cfg.api_keys(), ttl_s=cfg.gateway_ws_ticket_ttl_s)
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
        trusted_proxies=cfg.trusted_proxies(),
        auth_failure_limit=cfg.gateway_auth_failure_limit,
        judge_limit=cfg.gateway_judge_rate_limit,
        vendor_limit=cfg.gateway_vendor_rate_limit,
        research_limit=cfg.gateway_research_rate_limit,
        public_limit=cfg.gateway_public_rate_limit,
        unlimited_paths=PROBE_PATHS,
        tickets=app.state.tickets,
        # a long-lived key in a URL ends up in proxies' logs: tickets only in staging/prod
        allow_query_key=cfg.environment not in SECURE_ENVIRONMENTS,
    )
    if cfg.cors_origins():
        app.add_middleware(
            JsonCorsMiddleware,
            allow_origins=cfg.cors_origins(),
            allow_methods=["GET", "POST", "OPTIONS"],
            allow_headers=["X-API-Key", "Content-Type"],
            # 429, 503 and the on-demand 202 say when to retry in this header; a browser
            # shows a cross-origin page only the safelisted ones unless they are exposed
            expose_headers=["Retry-After"],
        )
    if host_guarded(cfg):
        # outside CORS: a preflight for a foreign Host or Origin is refused like the request
        app.add_middleware(
            HostGuardMiddleware,
            allowed_hosts=cfg.allowed_hosts(),
            check_origin=not cfg.api_keys(),
            cors_origins=cfg.cors_origins(),
        )
    app.add_middleware(MetricsMiddleware)
    # outermost: refusals, the hot path and the metrics' 500 get the headers too
    app.add_middleware(SecurityHeadersMiddleware, hsts_max_age_s=cfg.gateway_hsts_max_age_s)
    return app


def host_guarded(cfg: GatewaySettings) -> bool:
    """Return True when the gateway answers only known Host names (see `HostGuardMiddleware`)."""
    return not cfg.api_keys() or bool(cfg.allowed_hosts())


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
            started_from=follower.started_from,
            degraded_sources=degraded,
        )
        return json_response(body, status=200 if ready else 503)

    if not cfg.gateway_ops_port:  # else the ops server serves them, off the public port

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

    full_openapi = app.openapi

    def secured_openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            doc = add_security(full_openapi(), cfg.public_paths())
            if host_guarded(cfg):
                add_host_guard(doc, exempt_paths=PROBE_PATHS, check_origin=not cfg.api_keys())
            registry = getattr(app.state, "registry", None)
            if registry is None:  # before the lifespan: not cached, the exact body comes later
                return doc
            doc["components"]["schemas"]["InvokeBody"] = registry.body_schema()
            doc["components"]["schemas"]["InvokeResult"] = registry.result_schema(doc["paths"])
            app.openapi_schema = doc
        return app.openapi_schema

    app.openapi = secured_openapi  # type: ignore[method-assign]
    full_doc, gpt_doc = CachedDocument(), CachedDocument()

    def complete() -> bool:  # secured_openapi keeps the document once the registry exists
        return app.openapi_schema is not None

    @app.get(OPENAPI_URL, include_in_schema=False)
    async def openapi_json(request: Request) -> Response:
        return full_doc.response(request, app.openapi, complete)

    @app.get("/openapi-gpt.json", include_in_schema=False)
    async def openapi_gpt(request: Request) -> Response:
        def build() -> dict[str, Any]:
            return build_gpt_openapi(app.openapi(), cfg.gateway_public_url)

        return gpt_doc.response(request, build, complete)


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
    install_redaction(configured_secrets(settings, os.environ))
    host = settings.listen_host()
    if not settings.api_keys() and host not in ("127.0.0.1", "::1", "localhost"):
        log.warning(
            "no GATEWAY_API_KEYS: the gateway is open to anyone who reaches it",
            extra={"host": host},
        )
    config = uvicorn.Config(
        create_app(settings),
        host=host,
        port=settings.gateway_port,
        log_config=None,
        access_log=False,
        # X-Forwarded-For is read by the security middleware, from trusted proxies only
        proxy_headers=False,
        http=guarded_h11(
            header_timeout_s=settings.gateway_header_timeout_s,
            body_timeout_s=settings.gateway_body_timeout_s,
            max_connections=connection_cap(settings.gateway_max_connections),
        ),
        timeout_keep_alive=settings.gateway_keep_alive_s,
        h11_max_incomplete_event_size=settings.gateway_max_header_bytes,
        ws=settings.gateway_ws_impl,
        # clients send only small subscribe messages; the 16 MiB default invites abuse
        ws_max_size=settings.gateway_max_body_bytes,
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
