"""Gateway settings: HTTP server, security, on-demand and RPC deadlines, WebSocket buffers."""

from __future__ import annotations

import ipaddress
import re
from typing import Literal, Self
from urllib.parse import urlsplit

from limits import parse as parse_limit
from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from perpsignal_common.settings import DatabaseSettings, ServiceSettings
from perpsignal_connectors.coinapi import constants as coinapi

DEFAULT_PUBLIC_PATHS = (
    "/healthz,/readyz,/docs,/docs/oauth2-redirect,/redoc,/openapi.json,/openapi-gpt.json"
)
METRICS_PATH = "/metrics"
# what may be public in staging/prod: probes, metrics and documentation, never data or RPC
SAFE_PUBLIC_PATHS = frozenset(DEFAULT_PUBLIC_PATHS.split(",")) | {METRICS_PATH, "/ping"}
SECURE_ENVIRONMENTS = ("staging", "prod")
# 128 bits as hex (OWASP: an API key is a secret of at least 128 bits of entropy)
MIN_API_KEY_LENGTH = 32
# one GATEWAY_ALLOWED_HOSTS item: a name, an IPv4 or a bracketed IPv6 address, optional port
_HOST_ITEM = re.compile(r"(?:[A-Za-z0-9.-]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?")


def split_csv(value: str) -> list[str]:
    """Return the non-empty, stripped items of a comma-separated setting."""
    return [item.strip() for item in value.split(",") if item.strip()]


def parse_service_urls(value: str) -> list[tuple[str, str]]:
    """Parse `name=http://host:port,...` into (name, URL without trailing slash) pairs."""
    out: list[tuple[str, str]] = []
    for item in split_csv(value):
        name, sep, url = (part.strip() for part in item.partition("="))
        parts = urlsplit(url)
        if not sep or not name or parts.scheme not in ("http", "https") or not parts.netloc:
            # the value is not echoed: a URL may carry credentials
            raise ValueError(
                f"GATEWAY_SERVICE_URLS: item {len(out) + 1} is not name=http://host:port"
            )
        if any(name == seen for seen, _ in out):
            raise ValueError(f"GATEWAY_SERVICE_URLS: {name!r} is listed twice")
        out.append((name, url.rstrip("/")))
    return out


class GatewaySettings(ServiceSettings):
    """Everything the gateway reads from the environment (README lists every variable)."""

    service_name: str = "gateway"
    gateway_host: str | None = Field(
        default=None,
        description="Listen address; unset = 0.0.0.0 with API keys, 127.0.0.1 without "
        "(an open gateway is reachable from this machine only); containers set 0.0.0.0",
    )
    gateway_port: int = 8000
    gateway_ops_port: int = Field(
        default=0,
        ge=0,
        le=65535,
        description="Serve /healthz, /readyz and /metrics without a key on OPS_HOST:this port "
        "(as every worker's ops server) and no /metrics on GATEWAY_PORT, so an Ingress in "
        "front of the gateway never exposes its counters; 0 = /metrics on GATEWAY_PORT "
        "(local runs). Kubernetes and compose set it (9106)",
    )
    gateway_public_url: str = Field(
        default="http://localhost:8000", description="Server URL published to GPT Actions"
    )
    gateway_api_keys: SecretStr = Field(
        default=SecretStr(""),
        description="Comma list of API keys callers send as X-API-Key; empty = auth off "
        "(local development only). Staging and prod require keys of at least "
        f"{MIN_API_KEY_LENGTH} characters (e.g. `openssl rand -hex 32`)",
    )
    gateway_public_paths: str = Field(
        default=DEFAULT_PUBLIC_PATHS,
        description="Comma list of paths served without an API key (staging and prod: only "
        "probes, /metrics and the API documents). Left unset, /metrics is added while "
        "GATEWAY_OPS_PORT is 0; with an ops port this port serves no /metrics, listed or not",
    )
    gateway_rate_limit: str = Field(
        default="120/minute", description="Per-key limit in `limits` notation, e.g. 10/second"
    )
    gateway_max_body_bytes: int = 64 * 1024
    gateway_cors_origins: str = ""
    gateway_on_demand_wait_s: float = 20.0
    gateway_judge_timeout_s: float = 20.0
    gateway_ws_queue_size: int = 256
    gateway_ws_heartbeat_s: float = 15.0
    gateway_ws_send_timeout_s: float = Field(
        default=10.0,
        gt=0,
        description="A WebSocket message (or heartbeat) the client has not taken within this "
        "many seconds closes the socket with 1013: a client that stopped reading holds no "
        "connection slot, queue or task past it",
    )
    gateway_ws_max_per_key: int = Field(
        default=20,
        ge=1,
        description="Open WebSockets per key (per client address when auth is off); "
        "one more is closed with 4429",
    )
    # the sans-I/O implementation measured about a third faster on 1,000-client fan-out
    gateway_ws_impl: Literal["websockets", "websockets-sansio"] = "websockets-sansio"
    gateway_liquidations_kept: int = Field(
        default=200, description="Recent liquidation orders kept per symbol"
    )
    gateway_snapshot_read: bool = Field(
        default=True,
        description="Start from the read-model snapshot topic when it holds a complete one "
        "(else, or when false, re-read every retained event)",
    )
    gateway_snapshot_write: bool = Field(
        default=True,
        description="Take part in electing the one replica that writes the snapshot",
    )
    gateway_snapshot_interval_s: float = Field(
        default=15.0, gt=0, description="How often the snapshot writer publishes changed keys"
    )
    gateway_snapshot_full_every_s: float = Field(
        default=300.0,
        gt=0,
        description="How often the snapshot writer rewrites every key; a new replica reads "
        "the snapshot topic back this far (plus a minute)",
    )
    gateway_vendor_timeout_s: float = 10.0
    # CoinAPI's credits are per key per 24 h, and the ingestor spends the same key: the
    # pass-through's per-minute budget alone let a GPT user spend the day's credits in minutes
    coinapi_daily_credits: int = Field(
        default=coinapi.DAILY_CREDITS, ge=1, description=coinapi.DAILY_CREDITS_DOC
    )
    gateway_coinapi_daily_share: float = Field(
        default=coinapi.GATEWAY_DAILY_SHARE,
        ge=0.0,
        le=1.0,
        description=coinapi.GATEWAY_DAILY_SHARE_DOC,
    )
    gateway_universe_ttl_s: float = 600.0
    gateway_enable_database: bool = True
    gateway_service_urls: str = Field(
        default="",
        description="Services shown by GET /health/services: comma list of "
        "name=http://host:port (each service's ops port); empty = none",
    )
    gateway_health_timeout_s: float = Field(
        default=2.0, gt=0, description="Deadline of each /readyz and /metrics probe of a service"
    )
    gateway_health_cache_s: float = Field(
        default=3.0, ge=0, description="How long GET /health/services reuses one round of probes"
    )
    gateway_trusted_proxies: str = Field(
        default="",
        description="Comma list of proxy addresses/CIDRs whose X-Forwarded-For is believed "
        "(empty = none: the client is the TCP peer)",
    )
    gateway_auth_failure_limit: str = Field(
        default="60/minute",
        description="Wrong keys or tickets allowed per client before 429 (`limits` notation)",
    )
    gateway_public_rate_limit: str = Field(
        # ~15 assets per dashboard page load: room for a few dozen people behind one NAT
        # address, while one client cannot pull documents and assets without end
        default="1200/minute",
        description="Per-client-address limit of the paths served without a key (the "
        "dashboard and its assets, /docs, /redoc, the OpenAPI documents); the probes "
        "/healthz, /readyz and /metrics are never limited (`limits` notation)",
    )
    gateway_judge_rate_limit: str = Field(
        default="10/minute", description="POST /judge/validate (LLM judge) budget per key"
    )
    gateway_vendor_rate_limit: str = Field(
        default="60/minute", description="Vendor pass-through (/invoke vendor.*) budget per key"
    )
    gateway_research_rate_limit: str = Field(
        default="30/minute",
        description="GET /analytics/signal-research (and /invoke signal_research) budget "
        "per key: each uncached query bootstraps over up to 100k outcome rows",
    )
    gateway_vendor_write_operations: bool = Field(
        default=False,
        description="Expose vendor endpoints that change the operator's vendor account "
        "(e.g. LunarCrush searches create/update/delete) through /invoke",
    )
    gateway_ws_ticket_ttl_s: float = Field(
        default=60.0, gt=0, le=600, description="Lifetime of a WebSocket ticket (POST /ws/ticket)"
    )
    gateway_header_timeout_s: float = Field(
        default=10.0, gt=0, description="Close a connection that has not sent its request head"
    )
    gateway_body_timeout_s: float = Field(
        default=30.0, gt=0, description="Close a connection whose request body is not complete"
    )
    gateway_keep_alive_s: int = Field(
        default=5, ge=1, description="Close an idle keep-alive connection after this"
    )
    gateway_max_connections: int = Field(
        default=4096,
        ge=16,
        description="Open connections kept; above it the longest-idle ones are closed "
        "(capped below the process's file-handle limit)",
    )
    gateway_max_header_bytes: int = Field(
        default=16 * 1024, ge=1024, description="Largest request head accepted"
    )
    gateway_allowed_hosts: str = Field(
        default="",
        description="Comma list of Host names (a port is ignored) answered besides localhost, "
        "127.0.0.1 and [::1]; empty = without GATEWAY_API_KEYS only those (DNS-rebinding "
        "guard: any other Host is refused with 421, except on /healthz, /readyz and "
        "/metrics), with keys any Host; set = enforced with keys too",
    )
    gateway_hsts_max_age_s: int = Field(
        default=0,
        ge=0,
        description="Send Strict-Transport-Security: max-age=<this> on every response; "
        "0 = not sent (TLS usually ends at the ingress, which should send it); set it only "
        "when every client reaches the gateway over HTTPS",
    )
    db: DatabaseSettings = Field(default_factory=DatabaseSettings)

    @field_validator("gateway_allowed_hosts")
    @classmethod
    def _check_allowed_hosts(cls, value: str) -> str:
        for item in split_csv(value):
            if not _HOST_ITEM.fullmatch(item):
                raise ValueError(
                    f"GATEWAY_ALLOWED_HOSTS: {item!r} is not a host name (no scheme or path)"
                )
        return value

    @field_validator(
        "gateway_rate_limit",
        "gateway_auth_failure_limit",
        "gateway_public_rate_limit",
        "gateway_judge_rate_limit",
        "gateway_vendor_rate_limit",
        "gateway_research_rate_limit",
    )
    @classmethod
    def _check_limit(cls, value: str, info: ValidationInfo) -> str:
        # parsed where the middleware is built, on the first request: a typo failed every
        # request there, and "0/minute" answered every one 429, instead of failing start-up
        name = (info.field_name or "").upper()
        try:
            item = parse_limit(value)
        except ValueError as exc:
            raise ValueError(
                f"{name}: {value!r} is not a limit such as 120/minute or 10/second"
            ) from exc
        if item.amount < 1:
            raise ValueError(f"{name}: {value!r} allows nothing: at least 1 per period")
        return value

    @model_validator(mode="after")
    def _ops_port_is_its_own(self) -> Self:
        if self.gateway_ops_port and self.gateway_ops_port == self.gateway_port:
            raise ValueError(
                f"GATEWAY_OPS_PORT ({self.gateway_ops_port}) must differ from GATEWAY_PORT: "
                "the ops port serves unauthenticated metrics"
            )
        return self

    @field_validator("gateway_trusted_proxies")
    @classmethod
    def _check_proxies(cls, value: str) -> str:
        for item in split_csv(value):
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError as exc:
                raise ValueError(f"GATEWAY_TRUSTED_PROXIES: {item!r} is not an address") from exc
        return value

    def production_problems(self) -> list[str]:
        """Refuse to run open or leaky in staging/prod; name every setting at fault (raised
        by ServiceSettings together with its Kafka and database checks)."""
        if self.environment not in SECURE_ENVIRONMENTS:
            return []
        env = f"ENVIRONMENT={self.environment}"
        problems = []
        keys = self.api_keys()
        if not keys:
            problems.append("GATEWAY_API_KEYS must list at least one key")
        short = sum(len(k) < MIN_API_KEY_LENGTH for k in keys)
        if short:
            # a guessable key is an open gateway; the keys themselves are never printed
            problems.append(
                f"GATEWAY_API_KEYS: {short} of {len(keys)} keys are shorter than "
                f"{MIN_API_KEY_LENGTH} characters (make each with `openssl rand -hex 32`)"
            )
        if "*" in self.cors_origins():
            problems.append("GATEWAY_CORS_ORIGINS must name origins, not *")
        exposed = sorted(self.public_paths() - SAFE_PUBLIC_PATHS)
        if exposed:
            problems.append(
                f"GATEWAY_PUBLIC_PATHS may hold only {','.join(sorted(SAFE_PUBLIC_PATHS))} "
                f"(not {','.join(exposed)})"
            )
        if urlsplit(self.gateway_public_url).scheme != "https":
            problems.append("GATEWAY_PUBLIC_URL must be an https:// URL")
        return [f"{env} refuses to start: " + "; ".join(problems)] if problems else []

    def snapshot_window_s(self) -> float:
        """Return how far back a new replica reads the snapshot topic for a full dump."""
        return self.gateway_snapshot_full_every_s + max(60.0, 4 * self.gateway_snapshot_interval_s)

    def listen_host(self) -> str:
        """Return the address to bind: explicit, else every interface only with keys on."""
        if self.gateway_host:
            return self.gateway_host
        return "0.0.0.0" if self.api_keys() else "127.0.0.1"

    def trusted_proxies(self) -> list[ipaddress.IPv4Network | ipaddress.IPv6Network]:
        """Return the networks whose X-Forwarded-For header is believed."""
        return [
            ipaddress.ip_network(p, strict=False) for p in split_csv(self.gateway_trusted_proxies)
        ]

    @field_validator("gateway_service_urls")
    @classmethod
    def _check_service_urls(cls, value: str) -> str:
        parse_service_urls(value)  # fail at start-up, not on the first /health/services
        return value

    def service_urls(self) -> list[tuple[str, str]]:
        """Return the (name, base URL) pairs of GATEWAY_SERVICE_URLS, in the given order."""
        return parse_service_urls(self.gateway_service_urls)

    def api_keys(self) -> list[str]:
        """Return the configured API keys (empty list = auth disabled)."""
        return split_csv(self.gateway_api_keys.get_secret_value())

    def public_paths(self) -> set[str]:
        """Return the paths served without an API key.

        `/metrics` only where this port serves it: by default while there is no ops port
        (local runs, scraped as before), never with one (it lives on the ops port then).
        """
        paths = set(split_csv(self.gateway_public_paths))
        if self.gateway_ops_port:
            paths.discard(METRICS_PATH)
        elif "gateway_public_paths" not in self.model_fields_set:
            paths.add(METRICS_PATH)
        return paths

    def allowed_hosts(self) -> list[str]:
        """Return the Host names served besides the loopback ones (empty = see the field)."""
        return split_csv(self.gateway_allowed_hosts)

    def cors_origins(self) -> list[str]:
        """Return the origins allowed by CORS (empty = CORS off)."""
        return split_csv(self.gateway_cors_origins)
