"""`GET /health/services`: every other service's readiness and key metrics, seen from the gateway.

The services are listed in `GATEWAY_SERVICE_URLS` (`name=http://host:port`, their ops ports;
`perpsignal up` fills it in). One round of probes fetches `/readyz` and `/metrics` of every
service concurrently, each under a hard deadline of `GATEWAY_HEALTH_TIMEOUT_S`, and is reused
for `GATEWAY_HEALTH_CACHE_S`: concurrent requests share the round in flight, so a dashboard
poll (or many open dashboards) never multiplies the fan-out. A service that cannot be reached
is reported as `"unreachable"`, never as a gateway error.

The Prometheus text is parsed with `prometheus_client`'s parser and reduced to a few sums:
consumer lag (`perpsignal_consumer_lag_records`), dead-lettered messages
(`perpsignal_dlq_messages_total`), handled messages (`perpsignal_consumer_messages_total`
with `outcome="ok"`), handler errors (`perpsignal_consumer_errors_total`), and the vendor
circuit states (`perpsignal_vendor_circuit_state`, which only the ingestor exports).

`sources` lists the ingestor sources that are not up (`degraded` or `down`, with the reason
and since when), from the `source.status` events in the read model; `demo` says when the
stack is a `perpsignal demo` replay (which data, what speed), from `PERPSIGNAL_DEMO`.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

import httpx
import orjson
from fastapi import APIRouter, Depends, Request
from prometheus_client.parser import text_string_to_metric_families
from pydantic import Field
from starlette.responses import Response

from perpsignal_gateway.errors import known_query_only
from perpsignal_gateway.readmodel import ReadModel
from perpsignal_gateway.routes import ERRORS, json_response
from perpsignal_gateway.schemas import ApiModel
from perpsignal_gateway.settings import GatewaySettings

log = logging.getLogger(__name__)

LAG = "perpsignal_consumer_lag_records"
DLQ = "perpsignal_dlq_messages_total"
HANDLED = "perpsignal_consumer_messages_total"
ERRORS_TOTAL = "perpsignal_consumer_errors_total"
CIRCUIT = "perpsignal_vendor_circuit_state"
CircuitState = Literal["closed", "half-open", "open", "unknown"]
CIRCUIT_STATES: dict[float, CircuitState] = {0: "closed", 1: "half-open", 2: "open"}


class CircuitOut(ApiModel):
    vendor: str
    state: CircuitState


class ServiceHealth(ApiModel):
    """One service as the gateway sees it through its ops port."""

    name: str
    ready: bool | Literal["unreachable"] = Field(
        description='true, false (answered, not ready) or "unreachable" (refused or timed out)'
    )
    consumer_lag: int | None = None
    dlq_messages: int | None = None
    handled: int | None = None
    errors: int | None = None
    circuits: list[CircuitOut] = Field(default_factory=list)
    problem: str | None = Field(
        default=None, description="What failed (readyz or metrics), never a URL or secret"
    )


class SourceHealth(ApiModel):
    """An ingestor source that is not up, from its latest `source.status` event."""

    name: str
    state: Literal["up", "degraded", "down"]
    since: datetime
    reason: str | None = None
    failures: int = 0


class DemoInfo(ApiModel):
    """What a `perpsignal demo` stack replays: the data, its span and the speed."""

    data: str = Field(description="The replayed files and where they come from")
    symbols: list[str] = Field(default_factory=list)
    speed: float = Field(description="Replay speed: market seconds per wall-clock second")
    first: str | None = Field(default=None, description="First replayed market time (UTC)")
    last: str | None = Field(default=None, description="Last replayed market time (UTC)")
    message: str


class ServicesHealth(ApiModel):
    """Every configured service, in GATEWAY_SERVICE_URLS order, from one round of probes."""

    checked_at: datetime
    services: list[ServiceHealth]
    sources: list[SourceHealth] = Field(
        default_factory=list,
        description="Ingestor sources that are degraded or down (empty when all are up)",
    )
    demo: DemoInfo | None = Field(
        default=None, description="Set when this stack is a `perpsignal demo` replay"
    )


DEMO_ENV = "PERPSIGNAL_DEMO"


def demo_info() -> DemoInfo | None:
    """Return the demo description `perpsignal demo` gave the gateway, or None."""
    raw = os.environ.get(DEMO_ENV)
    if not raw:
        return None
    try:
        data: Any = orjson.loads(raw)
        return DemoInfo.model_validate(data)
    except (ValueError, TypeError):
        return None


def failing_sources(model: ReadModel | None) -> list[SourceHealth]:
    """Return the read model's sources that are not up, longest failing first."""
    if model is None:
        return []
    return [
        SourceHealth(
            name=s.name, state=s.state, since=s.since, reason=s.reason, failures=s.failures
        )
        for s in model.failing_sources()
    ]


@dataclass
class MetricSums:
    """The figures the health view takes from one service's `/metrics`."""

    consumer_lag: int = 0
    dlq_messages: int = 0
    handled: int = 0
    errors: int = 0
    circuits: dict[str, CircuitState] = field(default_factory=dict)


def summarize_metrics(text: str) -> MetricSums:
    """Reduce Prometheus text exposition to the health figures (ValueError when malformed)."""
    lag = dlq = handled = errors = 0.0
    circuits: dict[str, CircuitState] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            name, labels, value = sample.name, sample.labels, sample.value
            if name == LAG:
                lag += value
            elif name == DLQ:
                dlq += value
            elif name == HANDLED and labels.get("outcome") == "ok":
                handled += value
            elif name == ERRORS_TOTAL:
                errors += value
            elif name == CIRCUIT:
                circuits[labels.get("vendor", "?")] = CIRCUIT_STATES.get(value, "unknown")
    if not all(math.isfinite(v) for v in (lag, dlq, handled, errors)):
        # Prometheus text allows NaN and +Inf samples; round() of one raised OverflowError,
        # which failed the whole round: a 500 for every service's health
        raise NonFiniteFigure("a health figure is NaN or infinite")
    return MetricSums(
        consumer_lag=round(lag),
        dlq_messages=round(dlq),
        handled=round(handled),
        errors=round(errors),
        circuits=dict(sorted(circuits.items())),
    )


class NonFiniteFigure(ValueError):
    """A summed health figure is NaN or infinite."""


def _problem(what: str, exc: BaseException) -> str:
    if isinstance(exc, TimeoutError | httpx.TimeoutException):
        return f"{what}: timed out"
    if isinstance(exc, httpx.ConnectError):
        return f"{what}: connection refused or host unknown"
    if isinstance(exc, NonFiniteFigure):
        return f"{what}: a figure is NaN or infinite"
    if isinstance(exc, ValueError):
        return f"{what}: not Prometheus text"
    return f"{what}: {type(exc).__name__}"


class HealthProbe:
    """Probes the configured services; one round is shared and reused for `cache_s`."""

    def __init__(self, services: list[tuple[str, str]], *, timeout_s: float, cache_s: float):
        self.services = services
        self.timeout_s = timeout_s
        self.cache_s = cache_s
        self._snapshot: ServicesHealth | None = None
        self._taken_at = 0.0
        self._inflight: asyncio.Task[ServicesHealth] | None = None
        self._unreachable: set[str] = set()

    async def snapshot(self) -> ServicesHealth:
        """Return the latest round if younger than `cache_s`, else run (or join) a new one."""
        if self._snapshot is not None and time.monotonic() - self._taken_at < self.cache_s:
            return self._snapshot
        if self._inflight is None:
            self._inflight = asyncio.create_task(self._round(), name="gateway-health-probe")
            self._inflight.add_done_callback(self._store)
        # shield: a caller that goes away must not cancel the round the others wait for
        return await asyncio.shield(self._inflight)

    def _store(self, task: asyncio.Task[ServicesHealth]) -> None:
        self._inflight = None
        if not task.cancelled() and task.exception() is None:
            self._snapshot = task.result()
            self._taken_at = time.monotonic()

    async def _round(self) -> ServicesHealth:
        timeout = httpx.Timeout(self.timeout_s)
        # trust_env=False: ops ports are internal, never reached through an HTTP proxy
        async with httpx.AsyncClient(timeout=timeout, trust_env=False) as http:
            services = await asyncio.gather(
                *(self._probe(http, name, url) for name, url in self.services)
            )
        return ServicesHealth(checked_at=datetime.now(UTC), services=list(services))

    async def _get(self, http: httpx.AsyncClient, url: str) -> httpx.Response:
        async with asyncio.timeout(self.timeout_s):  # hard deadline, even for a slow trickle
            return await http.get(url)

    async def _probe(self, http: httpx.AsyncClient, name: str, base: str) -> ServiceHealth:
        ready_r, metrics_r = await asyncio.gather(
            self._get(http, base + "/readyz"),
            self._get(http, base + "/metrics"),
            return_exceptions=True,
        )
        problems: list[str] = []
        ready: bool | Literal["unreachable"]
        if isinstance(ready_r, BaseException):
            ready = "unreachable"
            problems.append(_problem("readyz", ready_r))
        else:
            ready = ready_r.status_code == 200
            if ready_r.status_code not in (200, 503):
                problems.append(f"readyz: HTTP {ready_r.status_code}")
        sums: MetricSums | None = None
        if isinstance(metrics_r, BaseException):
            if ready != "unreachable":
                problems.append(_problem("metrics", metrics_r))
        elif metrics_r.status_code != 200:
            problems.append(f"metrics: HTTP {metrics_r.status_code}")
        else:
            try:
                sums = summarize_metrics(metrics_r.text)
            except ValueError as exc:
                problems.append(_problem("metrics", exc))
        self._note_reachability(name, ready)
        return ServiceHealth(
            name=name,
            ready=ready,
            consumer_lag=sums.consumer_lag if sums else None,
            dlq_messages=sums.dlq_messages if sums else None,
            handled=sums.handled if sums else None,
            errors=sums.errors if sums else None,
            circuits=[CircuitOut(vendor=v, state=s) for v, s in sums.circuits.items()]
            if sums
            else [],
            problem="; ".join(problems) or None,
        )

    def _note_reachability(self, name: str, ready: bool | Literal["unreachable"]) -> None:
        # say it once per change, not on every poll
        if ready == "unreachable" and name not in self._unreachable:
            self._unreachable.add(name)
            log.warning("service unreachable from the gateway", extra={"service": name})
        elif ready != "unreachable" and name in self._unreachable:
            self._unreachable.discard(name)
            log.info("service reachable again", extra={"service": name})


def probe_of(request: Request) -> HealthProbe:
    """Return the app's probe, built on first use from the app's settings."""
    probe: HealthProbe | None = getattr(request.app.state, "health_probe", None)
    if probe is None:
        cfg: GatewaySettings = request.app.state.settings
        probe = HealthProbe(
            cfg.service_urls(),
            timeout_s=cfg.gateway_health_timeout_s,
            cache_s=cfg.gateway_health_cache_s,
        )
        request.app.state.health_probe = probe
    return probe


router = APIRouter(dependencies=[Depends(known_query_only)])


@router.get(
    "/health/services",
    response_model=ServicesHealth,
    responses=ERRORS,
    operation_id="servicesHealth",
    summary="Readiness, consumer lag, DLQ counts and vendor circuits of every service",
    description="Probes /readyz and /metrics of each service in GATEWAY_SERVICE_URLS "
    '(answers are reused for a few seconds). ready is true, false or "unreachable"; the '
    "counts are null when the service's metrics could not be read. sources lists the data "
    "sources that are degraded or down (reason, since when); demo is set on a replay demo.",
    tags=["ops"],
)
async def services_health(request: Request) -> Response:
    snapshot = await probe_of(request).snapshot()
    model: ReadModel | None = getattr(request.app.state, "model", None)
    view = snapshot.model_copy(update={"sources": failing_sources(model), "demo": demo_info()})
    return json_response(view)
