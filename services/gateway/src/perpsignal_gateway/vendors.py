"""Cached, budgeted pass-through calls to the data vendors, driven by the endpoint catalogues.

Each vendor gets a per-minute budget (moving window, `limits`), a TTL cache of answers keyed by
endpoint and arguments (`cachetools`), its key from the env var its catalogue names, and its
errors translated: 429 → 429 with Retry-After, 401/403 → 502 naming the key, other 4xx → 400
with the vendor's message, 5xx → 502, timeout → 504, missing key → 503 naming the env var.

A vendor whose key has credits per 24 h that another service spends too (CoinAPI: the
ingestor's whale trades) also gets a daily share (`DailyShare`): a rolling 24 h window of its
own calls, and the key's use as the vendor reports it, beyond the other service's part,
counted against it (which also holds several gateway processes to one share).
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx
import orjson
from cachetools import TTLCache
from limits import RateLimitItemPerDay, RateLimitItemPerMinute
from limits.aio.storage import MemoryStorage
from limits.aio.strategies import MovingWindowRateLimiter
from prometheus_client import Counter

from perpsignal_common.retry import retry_after_s
from perpsignal_connectors.catalog import Endpoint, VendorCatalog
from perpsignal_connectors.errors import banned_until_s
from perpsignal_gateway.errors import ApiError
from perpsignal_gateway.redaction import MIN_SECRET_LEN

log = logging.getLogger(__name__)

MAX_MESSAGE = 300  # characters of a vendor's error message passed on
MAX_RETRY_AFTER_S = 3 * 86_400  # Binance's longest IP ban; more is a vendor's garbage

# The key's use a vendor reported is trusted this long while it leaves us nothing: then one
# call asks again (what others spent frees as it ages out of the vendor's 24 h, unseen by us)
REPORTED_USE_RECHECK_S = 900
DAY_S = 86_400


@dataclass(frozen=True)
class DailyShare:
    """The pass-through's credits per rolling 24 h of a key another service spends too."""

    credits: int  # ours (0: none)
    others: int  # the other users' part: the key's reported use beyond it is counted as ours
    used_header: str  # the vendor's count of the key's use over its 24 h


VENDOR_CALLS = Counter(
    "perpsignal_gateway_vendor_calls_total",
    "Pass-through calls by vendor and outcome",
    ["vendor", "outcome"],
)


class VendorClient:
    """Call catalogue endpoints with caching, a per-vendor budget and error translation."""

    def __init__(
        self,
        catalogs: tuple[VendorCatalog, ...],
        env: Mapping[str, str],
        *,
        http: httpx.AsyncClient | None = None,
        timeout_s: float = 10.0,
        cache_size: int = 2048,
        daily_shares: Mapping[str, DailyShare] | None = None,
    ) -> None:
        self._catalogs = {c.name: c for c in catalogs}
        self._env = dict(env)
        self._http = http  # built on first use: loading TLS roots costs ~0.3 s at start-up
        self._timeout_s = timeout_s
        self._owns_http = http is None
        self._limiter = MovingWindowRateLimiter(MemoryStorage())
        self._budgets = {
            c.name: RateLimitItemPerMinute(max(1, self.budget_per_min(c))) for c in catalogs
        }
        self._caches: dict[str, TTLCache[str, Any]] = {
            c.name: TTLCache(maxsize=cache_size, ttl=max(0.001, c.cache_ttl_s)) for c in catalogs
        }
        self._inflight: dict[str, asyncio.Future[Any]] = {}
        self._daily = {k: v for k, v in (daily_shares or {}).items() if k in self._catalogs}
        self._daily_items = {
            name: RateLimitItemPerDay(max(1, share.credits)) for name, share in self._daily.items()
        }
        # vendor -> (the key's use it last reported, when)
        self._reported: dict[str, tuple[int, float]] = {}

    async def close(self) -> None:
        """Close the HTTP client when we own it."""
        if self._owns_http and self._http is not None:
            await self._http.aclose()

    def _client(self) -> httpx.AsyncClient:
        if self._http is None:
            self._http = httpx.AsyncClient(
                timeout=httpx.Timeout(self._timeout_s, connect=min(3.0, self._timeout_s)),
                limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
                headers={"User-Agent": "perpsignal-gateway"},
            )
        return self._http

    def budget_per_min(self, vendor: VendorCatalog) -> int:
        """Return the vendor's calls/min budget (`GATEWAY_<VENDOR>_BUDGET_PER_MIN` overrides)."""
        raw = self._env.get(budget_env(vendor), "")
        return int(raw) if raw.isdigit() else vendor.budget_per_min

    def base_url(self, vendor: VendorCatalog) -> str:
        """Return the vendor's base URL (its env var overrides the catalogue's)."""
        url: str = self._env.get(vendor.base_url_env, vendor.base_url)
        return url.rstrip("/")

    def key_configured(self, vendor: VendorCatalog) -> bool:
        """Return True when the vendor's key is set (or it needs none)."""
        return not vendor.key_required or bool(vendor.key_env and self._env.get(vendor.key_env))

    async def call(self, endpoint: Endpoint, args: Mapping[str, Any]) -> Any:
        """Return the vendor's JSON answer for `endpoint` with `args` (already validated)."""
        vendor = self._catalogs[endpoint.vendor]
        headers: dict[str, str] = {}
        key = self._env.get(vendor.key_env, "") if vendor.key_env else ""
        if vendor.key_required and not key:
            raise ApiError(
                503,
                "vendor_key_missing",
                f"{vendor.title} needs an API key: set {vendor.key_env}",
                {"vendor": vendor.name, "env": vendor.key_env},
            )
        if key and vendor.auth_header:
            headers[vendor.auth_header] = vendor.auth_prefix + key
        path = endpoint.path
        query: dict[str, str] = {}
        for param in endpoint.params:
            if param.name not in args or args[param.name] is None:
                continue
            value = _wire(args[param.name])
            if param.location == "path":
                if value.strip(".") == "" or "/" in value or "\\" in value:
                    raise _outside(endpoint, param.name)
                path = path.replace("{" + param.name + "}", quote(value, safe=""))
            else:
                query[param.name] = value
        # last line of defence: the URL the client will send must name exactly this path
        # (httpx resolves dot segments, so a ".." would silently become another endpoint)
        base = httpx.URL(self.base_url(vendor))
        if httpx.URL(self.base_url(vendor) + path).raw_path != (
            base.raw_path.rstrip(b"/") + path.encode()
        ):
            raise _outside(endpoint, "path")
        cache_key = (
            endpoint.operation + "?" + "&".join(f"{k}={v}" for k, v in sorted(query.items()))
        )
        cache_key += "#" + path
        cache = self._caches[vendor.name]
        if cache_key in cache:
            VENDOR_CALLS.labels(vendor.name, "cache_hit").inc()
            return cache[cache_key]
        running = self._inflight.get(cache_key)
        if running is not None:  # identical call in flight: share its answer
            return await asyncio.shield(running)
        await self._spend_budget(vendor)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[cache_key] = fut
        try:
            data = await self._request(vendor, endpoint, path, query, headers)
        except BaseException as exc:
            fut.set_exception(exc)
            fut.exception()  # mark retrieved: waiters re-raise it themselves
            raise
        finally:
            self._inflight.pop(cache_key, None)
        fut.set_result(data)
        cache[cache_key] = data
        return data

    async def _spend_budget(self, vendor: VendorCatalog) -> None:
        share = self._daily.get(vendor.name)
        if share is not None:
            await self._check_daily(vendor, share)
        item = self._budgets[vendor.name]
        if await self._limiter.hit(item, vendor.name):
            if share is not None:
                await self._limiter.hit(self._daily_items[vendor.name], vendor.name + "#day")
            return
        reset_at, _ = await self._limiter.get_window_stats(item, vendor.name)
        retry = max(1, math.ceil(reset_at - time.time()))
        VENDOR_CALLS.labels(vendor.name, "budget_exhausted").inc()
        raise ApiError(
            429,
            "vendor_budget_exhausted",
            f"the gateway's budget for {vendor.title} is spent; retry in {retry} s",
            {"vendor": vendor.name, "budgetPerMinute": self.budget_per_min(vendor)},
            {"Retry-After": str(retry)},
        )

    async def _check_daily(self, vendor: VendorCatalog, share: DailyShare) -> None:
        """Refuse the call when the daily share is spent, saying when it frees."""
        item, key = self._daily_items[vendor.name], vendor.name + "#day"
        now = time.time()
        retry: int | None = None
        if share.credits <= 0:
            retry = DAY_S
        elif not await self._limiter.test(item, key):
            reset_at, _ = await self._limiter.get_window_stats(item, key)
            retry = max(1, math.ceil(reset_at - now))  # our oldest call of the 24 h ages out
        elif (reported := self._reported.get(vendor.name)) is not None:
            used, at = reported
            if used - share.others >= share.credits and now - at < REPORTED_USE_RECHECK_S:
                retry = max(1, math.ceil(at + REPORTED_USE_RECHECK_S - now))
        if retry is None:
            return
        VENDOR_CALLS.labels(vendor.name, "budget_exhausted").inc()
        raise ApiError(
            429,
            "vendor_budget_exhausted",
            f"the gateway's daily share of {vendor.title}'s credits is spent; retry in {retry} s",
            {"vendor": vendor.name, "dailyCredits": share.credits},
            {"Retry-After": str(retry)},
        )

    def _observe_use(self, vendor: VendorCatalog, response: httpx.Response) -> None:
        share = self._daily.get(vendor.name)
        raw = response.headers.get(share.used_header) if share is not None else None
        if raw is not None and raw.strip().isdigit():
            self._reported[vendor.name] = (int(raw), time.time())

    async def _request(
        self,
        vendor: VendorCatalog,
        endpoint: Endpoint,
        path: str,
        query: dict[str, str],
        headers: dict[str, str],
    ) -> Any:
        url = self.base_url(vendor) + path
        try:
            response = await self._client().request(
                endpoint.method, url, params=query, headers=headers
            )
        except httpx.TimeoutException as exc:
            VENDOR_CALLS.labels(vendor.name, "timeout").inc()
            raise ApiError(
                504,
                "vendor_timeout",
                f"{vendor.title} did not answer in time",
                {"vendor": vendor.name},
            ) from exc
        except httpx.HTTPError as exc:
            VENDOR_CALLS.labels(vendor.name, "unreachable").inc()
            raise ApiError(
                502,
                "vendor_unreachable",
                f"{vendor.title} cannot be reached ({type(exc).__name__})",
                {"vendor": vendor.name},
            ) from exc
        self._observe_use(vendor, response)
        return self._translate(vendor, response)

    def _translate(self, vendor: VendorCatalog, response: httpx.Response) -> Any:
        status = response.status_code
        body = _json_or_text(response)
        message = _message(body)
        key = self._env.get(vendor.key_env, "") if vendor.key_env else ""
        # a vendor may echo the key it refused: it is the operator's, not the caller's
        # (redacted before the message is cut, or a key across the cut leaks its start)
        if message and len(key) >= MIN_SECRET_LEN:
            message = message.replace(key, "***")
        message = message[:MAX_MESSAGE] if message else message
        details = {"vendor": vendor.name, "vendorStatus": status, "vendorMessage": message}
        if status == 429 or status == 418:
            retry = _retry_after(response, message if status == 418 else None)
            VENDOR_CALLS.labels(vendor.name, "rate_limited").inc()
            raise ApiError(
                429,
                "vendor_rate_limited",
                f"{vendor.title} is rate limiting us; retry in {retry} s",
                details,
                {"Retry-After": str(retry)},
            )
        if status >= 500:
            VENDOR_CALLS.labels(vendor.name, "vendor_error").inc()
            raise ApiError(502, "vendor_error", f"{vendor.title} failed (HTTP {status})", details)
        if status in (401, 403):
            VENDOR_CALLS.labels(vendor.name, "auth_error").inc()
            env = vendor.key_env or "its API key"
            raise ApiError(
                502, "vendor_auth_failed", f"{vendor.title} refused our key; check {env}", details
            )
        if status >= 400:
            VENDOR_CALLS.labels(vendor.name, "rejected").inc()
            raise ApiError(400, "vendor_rejected", f"{vendor.title} rejected the request", details)
        # Coinglass and OKX answer 200 with an error code in the envelope
        code = body.get("code") if isinstance(body, dict) else None
        if code not in (None, 0, "0", 200, "200") and isinstance(body, dict) and "data" in body:
            if str(code) == "429" or str(code) == "50011":
                raise ApiError(
                    429,
                    "vendor_rate_limited",
                    f"{vendor.title} is rate limiting us",
                    details,
                    {"Retry-After": "60"},
                )
            VENDOR_CALLS.labels(vendor.name, "rejected").inc()
            raise ApiError(400, "vendor_rejected", f"{vendor.title} answered code {code}", details)
        VENDOR_CALLS.labels(vendor.name, "ok").inc()
        return body


def _outside(endpoint: Endpoint, field: str) -> ApiError:
    return ApiError(
        422,
        "invalid_arguments",
        f"invalid arguments for {endpoint.operation}: {field} would leave {endpoint.path}",
        [{"field": field, "message": "not a single path segment", "type": "path_segment"}],
    )


def budget_env(vendor: VendorCatalog) -> str:
    """Return the env var that overrides a vendor's per-minute budget."""
    return f"GATEWAY_{vendor.name.upper()}_BUDGET_PER_MIN"


def _wire(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _json_or_text(response: httpx.Response) -> Any:
    try:
        return orjson.loads(response.content)
    except orjson.JSONDecodeError:
        return response.text[:2000]


def _message(body: Any) -> str | None:
    if isinstance(body, dict):
        for key in ("msg", "message", "error", "description"):
            if isinstance(body.get(key), str):
                return str(body[key])
    if isinstance(body, str):
        return body
    return None


def _retry_after(response: httpx.Response, ban_message: str | None = None) -> int:
    """The vendor's Retry-After for our caller; without one, the end of a ban its message
    names (Binance: "banned until <epoch ms>"), else 60 s."""
    seconds = retry_after_s(response.headers)
    if seconds is None and ban_message and (until := banned_until_s(ban_message)) is not None:
        seconds = until - time.time() if until > time.time() else None
    if seconds is None:
        return 60
    return min(MAX_RETRY_AFTER_S, max(1, math.ceil(seconds)))
