"""Shared HTTP transport: timeouts, rate limits, retries with jitter, circuit breaker, metrics.

Each vendor's `http.py` builds one `VendorHttp` with its own quotas (from its `constants.py`)
and calls `get(endpoint, params)`; this class does everything that is the same everywhere:

1. the circuit must be closed (an open circuit fails fast with `CircuitOpen`);
2. the endpoint's costs are reserved in the vendor's fixed-window budgets;
3. the request goes out with the client's timeouts, and the whole answer must arrive within
   `TOTAL_READ_TIMEOUTS` read timeouts (a body dripped out slowly never ends otherwise);
   transport failures and timeouts are transient; a request httpx refuses to send (a key
   with a newline in its header) is permanent, and its error never repeats the header;
4. the status is mapped to the error taxonomy; 429 pauses the vendor for `Retry-After`
   (1 s to 5 min; without one, until its quota's window ends), or only the quotas of the
   call when each is a cap of its own (`Quota.own_cap`: Binance's statistics endpoints), a
   5xx with `Retry-After` likewise; 418 opens the circuit until the ban expires
   (`Retry-After`, else the time Binance's message names, else 2 min; at most 3 days);
   usage headers correct the budgets;
5. the JSON body is decoded; a body that is not JSON, or larger than `max_body_bytes` (read
   as a stream and abandoned at the cap, never held whole), is `MalformedResponse` (never
   retried). The cap counts decoded bytes: gzip/deflate (the only encodings we accept) are
   inflated here, never more than the cap, since httpx would inflate a whole network read
   at once (a 64 KiB gzip bomb is 64 MiB);
6. transient failures are retried with capped, fully jittered exponential backoff.
"""

from __future__ import annotations

import asyncio
import logging
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx
import orjson
from pydantic import TypeAdapter, ValidationError

from perpsignal_common.errors import (
    PermanentError,
    PerpSignalError,
    RateLimited,
    TransientError,
    VenueBanned,
)
from perpsignal_common.retry import RetryPolicy, is_transient
from perpsignal_connectors.circuit import CircuitBreaker, CircuitOpen, CircuitState
from perpsignal_connectors.errors import (
    IpBanned,
    MalformedResponse,
    ServiceUnavailable,
    error_for_status,
    error_kind,
)
from perpsignal_connectors.loglimit import LogLimit
from perpsignal_connectors.metrics import (
    VENDOR_CIRCUIT_STATE,
    VENDOR_ERRORS,
    VENDOR_LATENCY,
    VENDOR_REQUESTS,
    VENDOR_WEIGHT_USED,
)
from perpsignal_connectors.ratelimit import QuotaSpent, RateLimiter
from perpsignal_connectors.redact import WINDOW, redact, remember

log = logging.getLogger(__name__)
T = TypeVar("T")

Params = Mapping[str, str | int | float | None]
# Called with the response headers; returns {quota name: server-reported units used}
UsageReader = Callable[[httpx.Headers], dict[str, int]]
# Called with the decoded body; raises the vendor's error when the envelope says failure
EnvelopeCheck = Callable[[str, Any], None]

DEFAULT_TIMEOUT = httpx.Timeout(10.0, connect=5.0)
# A ban without Retry-After: Binance bans start at 2 minutes and grow (docs, "IP Limits")
DEFAULT_BAN_S = 120.0
# ... up to 3 days for repeat offenders: a longer Retry-After is garbage (a proxy, ms sent as
# seconds) and must not silence the vendor for years; after this the circuit probes again
MAX_BAN_S = 3 * 86_400.0
# A 429's Retry-After is at most a few minutes for every vendor here (Binance: the weight
# minute or a 5-minute statistics window); a larger one is garbage (milliseconds sent as
# seconds by a proxy) and must not silence the vendor for hours: pause this long, then ask
MAX_RATE_LIMIT_PAUSE_S = 300.0
# ... and at least this long: "Retry-After: 0" (or "-1") in a 429 storm would send every retry
# and every other request at once, which Binance answers with an IP ban (418)
MIN_RATE_LIMIT_PAUSE_S = 1.0
# How many read timeouts a whole answer may take (each read alone is bounded by httpx)
TOTAL_READ_TIMEOUTS = 3
# The largest bodies we read are a few MB (Binance exchangeInfo, LunarCrush's 1,000 coins)
MAX_BODY_BYTES = 32 * 1024 * 1024
# What we ask for, whatever decoders httpx happens to have (brotli, zstd): only what
# `_Inflater` can decode within the cap
ACCEPT_ENCODING = "gzip, deflate"


@dataclass(frozen=True)
class Endpoint:
    """One vendor endpoint: a bounded metric name, its path and its cost per quota."""

    name: str
    path: str
    costs: Mapping[str, int] = field(default_factory=dict)
    doc: str = ""


_LIST: TypeAdapter[list[Any]] = TypeAdapter(list[Any])


def _no_usage(_: httpx.Headers) -> dict[str, int]:
    return {}


def _no_envelope(_: str, __: Any) -> None:
    return None


def _retryable(exc: BaseException) -> bool:
    # An open circuit or a ban will not heal within one call's retry budget
    return is_transient(exc) and not isinstance(exc, CircuitOpen | VenueBanned | QuotaSpent)


class _Inflater:
    """Inflate a gzip or deflate body piece by piece, never more than asked for per piece.

    zlib's `max_length` stops inflating at the room left under the cap (plus one byte, to
    know it was exceeded), so a bomb costs the cap, not its decoded size.
    """

    def __init__(self, wbits: int | None) -> None:
        self._wbits = wbits
        self._zlib = zlib.decompressobj(wbits) if wbits is not None else None
        self._fed = False

    @classmethod
    def for_encoding(cls, header: str) -> _Inflater | None:
        """The inflater of a Content-Encoding, or None for one we cannot bound (br, zstd,
        several layers)."""
        codings = [c.strip().lower() for c in header.split(",")]
        codings = [c for c in codings if c and c != "identity"]
        if not codings:
            return cls(None)
        if len(codings) > 1:
            return None
        if codings[0] in ("gzip", "x-gzip"):
            return cls(zlib.MAX_WBITS | 16)
        if codings[0] == "deflate":  # zlib-wrapped as RFC 9110 says; raw too (see feed)
            return cls(zlib.MAX_WBITS)
        return None

    def feed(self, data: bytes, room: int) -> bytes:
        """Return what `data` inflates to, at most `room` + 1 bytes (more means too large)."""
        if self._zlib is None:
            return data
        room = max(room, 0) + 1  # max_length 0 would mean "no limit"
        try:
            out = self._zlib.decompress(data, room)
        except zlib.error:
            if self._fed or self._wbits != zlib.MAX_WBITS:
                raise
            # deflate without the zlib header (what httpx also accepts)
            self._wbits = -zlib.MAX_WBITS
            self._zlib = zlib.decompressobj(self._wbits)
            out = self._zlib.decompress(data, room)
        self._fed = True
        # output stops short of max_length only when the input is used up; a full output is
        # already over the cap, and the caller stops reading
        return out

    def finish(self) -> None:
        """Raise zlib.error when the compressed body ended early (a cut connection)."""
        if self._zlib is not None and self._fed and not self._zlib.eof:
            raise zlib.error("compressed body ends before its end of stream")


class VendorHttp:
    """Rate-limited, retried, circuit-broken JSON GETs against one vendor."""

    max_body_bytes = MAX_BODY_BYTES

    def __init__(
        self,
        vendor: str,
        base_url: str,
        *,
        limiter: RateLimiter,
        headers: Mapping[str, str] | None = None,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        usage_reader: UsageReader = _no_usage,
        envelope_check: EnvelopeCheck = _no_envelope,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
        secrets: Iterable[str] = (),
    ) -> None:
        self.vendor = vendor
        # the key(s) in `headers`: masked in any vendor text we log or publish
        remember(*secrets)
        self.limiter = limiter
        self.retry = retry or RetryPolicy(max_attempts=3, base_delay_s=0.5, max_delay_s=8.0)
        self.breaker = breaker or CircuitBreaker(vendor, clock=clock, on_change=self._on_circuit)
        self._usage_reader = usage_reader
        self._envelope_check = envelope_check
        self._clock = clock
        self._owns_client = client is None
        self._client = client or httpx.AsyncClient(
            base_url=base_url.rstrip("/"),
            headers=dict(headers or {}),
            timeout=timeout,
            limits=httpx.Limits(max_connections=32, max_keepalive_connections=16),
        )
        if client is not None:
            self._client.base_url = httpx.URL(base_url.rstrip("/"))
            self._client.headers.update(dict(headers or {}))
        VENDOR_CIRCUIT_STATE.labels(vendor).set(0)
        # endpoints answering malformed bodies now: warned about when it starts, not per call
        self._malformed: set[str] = set()
        self._dropped_rows = LogLimit()

    def _on_circuit(self, state: CircuitState) -> None:
        # one line per change of the circuit, never per refused call
        VENDOR_CIRCUIT_STATE.labels(self.vendor).set(state)
        if state is CircuitState.OPEN:
            log.info("vendor circuit open: calls paused", extra={"vendor": self.vendor})
        elif state is CircuitState.CLOSED:
            log.info("vendor circuit closed: calls resume", extra={"vendor": self.vendor})

    async def aclose(self) -> None:
        """Close the connection pool (when this object created it)."""
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> VendorHttp:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def get(
        self, endpoint: Endpoint, params: Params | None = None, path: str | None = None
    ) -> Any:
        """GET `endpoint` (or a formatted `path`) and return its decoded JSON body."""
        return await self.retry.call(
            lambda: self._once(endpoint, params or {}, path or endpoint.path),
            retry_if=_retryable,
        )

    async def get_model(
        self,
        endpoint: Endpoint,
        adapter: TypeAdapter[T],
        params: Params | None = None,
        path: str | None = None,
    ) -> T:
        """GET and validate the body against a wire schema; a mismatch is MalformedResponse."""
        body = await self.get(endpoint, params, path)
        return self.validate(endpoint, adapter, body)

    def validate(self, endpoint: Endpoint, adapter: TypeAdapter[T], body: Any) -> T:
        """Validate `body` as the endpoint's wire schema, counting and logging a mismatch."""
        try:
            model = adapter.validate_python(body)
        except ValidationError as exc:
            err = MalformedResponse(
                f"{self.vendor} {endpoint.name}: unexpected body shape: "
                + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in exc.errors()[:3])
            )
            self._on_error(endpoint, err)
            raise err from exc
        self._well_formed(endpoint)
        return model

    def malformed(self, endpoint: Endpoint, message: str) -> MalformedResponse:
        """Return the MalformedResponse of an answer well-shaped but not what was asked for
        (another symbol's, another interval's), counted and logged as any malformed one."""
        err = MalformedResponse(f"{self.vendor} {endpoint.name}: {message}"[:300])
        self._on_error(endpoint, err)
        return err

    def _well_formed(self, endpoint: Endpoint) -> None:
        if endpoint.name in self._malformed:
            self._malformed.discard(endpoint.name)
            log.info(
                "vendor answers are well-formed again",
                extra={"vendor": self.vendor, "endpoint": endpoint.name},
            )

    def validate_rows(self, endpoint: Endpoint, adapter: TypeAdapter[T], rows: Any) -> list[T]:
        """Validate a list answer row by row: a row of the wrong shape is dropped alone.

        One odd row (a symbol of the bulk answers, a period of a history) must not cost the
        others. The answer is used; the dropped rows are counted (`malformed`) and logged,
        a warning at first, then at most one a minute per endpoint (`LogLimit`): one
        endpoint serves every symbol, so its good and bad answers interleave and an
        incident would be said again each poll. An answer with no good row (or no list) is
        MalformedResponse, as a whole bad answer is.
        """
        if not isinstance(rows, list):
            self.validate(endpoint, _LIST, rows)  # raises MalformedResponse
        good: list[T] = []
        first: ValidationError | None = None
        for row in rows:
            try:
                good.append(adapter.validate_python(row))
            except ValidationError as exc:
                first = first or exc
        if first is None:
            self._well_formed(endpoint)
            return good
        bad = len(rows) - len(good)
        err = MalformedResponse(
            f"{self.vendor} {endpoint.name}: {bad} of {len(rows)} rows of an unexpected shape: "
            + "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in first.errors()[:2])
        )
        if not good:
            self._on_error(endpoint, err)
            raise err from first
        VENDOR_ERRORS.labels(self.vendor, endpoint.name, "malformed").inc()
        level, quiet = self._dropped_rows.level(endpoint.name)
        log.log(
            level,
            "vendor rows of an unexpected shape skipped; the rest of the answer is used",
            extra={
                "vendor": self.vendor,
                "endpoint": endpoint.name,
                "error": redact(str(err))[:300],
                "quiet_before": quiet,
            },
        )
        return good

    async def _once(self, ep: Endpoint, params: Params, path: str) -> Any:
        self.breaker.check()
        await self.limiter.acquire(ep.costs)
        clean = {k: v for k, v in params.items() if v is not None}
        started = time.perf_counter()
        try:
            try:
                resp, content = await self._fetch_in_time(ep, path, clean)
            except httpx.TimeoutException as exc:
                raise TimeoutError(f"{self.vendor} {ep.name}: timed out ({exc!r})") from exc
            except httpx.LocalProtocolError:
                # our own request is malformed, never sent: a header value with a character
                # HTTP forbids, almost always an API key with a stray newline or space. The
                # error names the value, key included: not repeated, not chained, not retried
                raise PermanentError(
                    f"{self.vendor} {ep.name}: request not sent: a header value has a character "
                    "HTTP forbids (check the API key setting for a stray newline or space)"
                ) from None
            except httpx.TransportError as exc:
                raise TransientError(f"{self.vendor} {ep.name}: {exc!r}") from exc
            finally:
                VENDOR_LATENCY.labels(self.vendor, ep.name).observe(time.perf_counter() - started)
            self._observe_usage(resp.headers)
            error = error_for_status(
                self.vendor,
                ep.name,
                resp.status_code,
                resp.headers,
                # masked, then cut to a snippet: a vendor may echo the key in its error
                content[:WINDOW].decode(errors="replace") if resp.status_code >= 400 else "",
            )
            if error is not None:
                raise error
            body = self._decode(ep, resp, content)
            self._envelope_check(ep.name, body)
        except PerpSignalError as exc:
            self._on_error(ep, exc)
            raise
        except TimeoutError as exc:
            self._on_error(ep, exc)
            raise
        self.breaker.record_success()
        VENDOR_REQUESTS.labels(self.vendor, ep.name, "ok").inc()
        return body

    async def _fetch_in_time(
        self, ep: Endpoint, path: str, params: Params
    ) -> tuple[httpx.Response, bytes]:
        """`_fetch` within `TOTAL_READ_TIMEOUTS` read timeouts (no limit without one)."""
        read = self._client.timeout.read
        if read is None:
            return await self._fetch(ep, path, params)
        total = TOTAL_READ_TIMEOUTS * read
        try:
            async with asyncio.timeout(total):
                return await self._fetch(ep, path, params)
        except TimeoutError as exc:
            raise TimeoutError(
                f"{self.vendor} {ep.name}: no complete answer within {total:g} s"
            ) from exc

    async def _fetch(self, ep: Endpoint, path: str, params: Params) -> tuple[httpx.Response, bytes]:
        """GET and read the body as a stream, giving up past `max_body_bytes` decoded."""
        cap = self.max_body_bytes
        request = self._client.build_request(
            "GET", path, params=params, headers={"Accept-Encoding": ACCEPT_ENCODING}
        )
        resp = await self._client.send(request, stream=True)
        try:
            declared = resp.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > cap:
                raise self._too_large(ep, int(declared))
            inflater = _Inflater.for_encoding(resp.headers.get("content-encoding", ""))
            if inflater is None:
                raise MalformedResponse(
                    f"{self.vendor} {ep.name}: body in an encoding we did not ask for "
                    f"({resp.headers.get('content-encoding', '')[:40]!r})"
                )
            chunks: list[bytes] = []
            size = 0
            # raw bytes, inflated here: httpx's own decoder inflates a whole read at once
            async for raw in resp.aiter_raw():
                chunk = inflater.feed(raw, cap - size)
                size += len(chunk)
                if size > cap:
                    raise self._too_large(ep, size)
                chunks.append(chunk)
            inflater.finish()
        except zlib.error as exc:
            # a body that is not the encoding it claims (gzip): no transport error, and
            # it escaped every caller, failing the whole poll of every symbol
            raise MalformedResponse(
                f"{self.vendor} {ep.name}: body could not be decoded ({exc})"[:300]
            ) from None
        finally:
            await resp.aclose()
        return resp, b"".join(chunks)

    def _too_large(self, ep: Endpoint, size: int) -> MalformedResponse:
        return MalformedResponse(
            f"{self.vendor} {ep.name}: body larger than {self.max_body_bytes} bytes "
            f"(at least {size}, decoded); not read"
        )

    def _decode(self, ep: Endpoint, resp: httpx.Response, content: bytes) -> Any:
        try:
            return orjson.loads(content)
        except orjson.JSONDecodeError as exc:
            ctype = resp.headers.get("content-type", "?")
            raise MalformedResponse(
                f"{self.vendor} {ep.name}: body is not JSON ({ctype}, {len(content)} bytes)"
            ) from exc

    def _observe_usage(self, headers: httpx.Headers) -> None:
        for quota, used in self._usage_reader(headers).items():
            self.limiter.observe_used(quota, used)
            VENDOR_WEIGHT_USED.labels(self.vendor, quota).set(used)

    def _on_error(self, ep: Endpoint, exc: BaseException) -> None:
        VENDOR_REQUESTS.labels(self.vendor, ep.name, "error").inc()
        VENDOR_ERRORS.labels(self.vendor, ep.name, error_kind(exc)).inc()
        now = self._clock()
        if isinstance(exc, VenueBanned | TransientError | TimeoutError):
            self.breaker.last_error = redact(str(exc))[:200]
        if isinstance(exc, VenueBanned):
            ban = exc.retry_after_s
            if ban is None and isinstance(exc, IpBanned) and exc.until_s is not None:
                # no Retry-After, but Binance's message says until when (epoch ms): its
                # bans grow to 3 days, and 120 s would only come back to a longer one
                ban = exc.until_s - now if exc.until_s > now else None
            ban = min(ban if ban is not None else DEFAULT_BAN_S, MAX_BAN_S)
            self.breaker.open_for(ban)
            self.limiter.pause_until(now + ban)
            log.error(
                "vendor banned us; circuit open until the ban expires",
                extra={"vendor": self.vendor, "endpoint": ep.name, "ban_s": ban},
            )
        elif isinstance(exc, RateLimited):
            # without Retry-After (CoinGecko, Coinglass's and OKX's codes in a 200): until the
            # vendor's window ends, when its count starts again; 1 s was a retry into the same
            # window, and the next poll's backoff (1 s, 2 s...) a few more
            wait = exc.retry_after_s
            if wait is None:
                wait = self.limiter.window_left_s(ep.costs) or MIN_RATE_LIMIT_PAUSE_S
            wait = min(max(wait, MIN_RATE_LIMIT_PAUSE_S), MAX_RATE_LIMIT_PAUSE_S)
            own = self.limiter.own_caps(ep.costs)
            if own:
                self.limiter.pause_quotas(own, now + wait)
            else:
                self.limiter.pause_until(now + wait)
            log.warning(
                "vendor rate limit hit; pausing",
                extra={
                    "vendor": self.vendor,
                    "endpoint": ep.name,
                    "pause_s": wait,
                    "paused": ",".join(own) if own else "vendor",
                },
            )
        elif isinstance(exc, TransientError | TimeoutError):
            self.breaker.record_failure()
            if isinstance(exc, ServiceUnavailable) and exc.retry_after_s is not None:
                # a 503 saying when to come back: the retries (and every other call) wait
                # for it, within the bounds of a 429's pause, instead of coming back at once
                wait = min(max(exc.retry_after_s, MIN_RATE_LIMIT_PAUSE_S), MAX_RATE_LIMIT_PAUSE_S)
                self.limiter.pause_until(now + wait)
                log.warning(
                    "vendor unavailable; pausing for its Retry-After",
                    extra={"vendor": self.vendor, "endpoint": ep.name, "pause_s": wait},
                )
        elif isinstance(exc, MalformedResponse):
            # once per incident (an HTML page for every symbol's klines is one line, not
            # one per call and poll); the metric counts each
            new = ep.name not in self._malformed
            self._malformed.add(ep.name)
            log.log(
                logging.WARNING if new else logging.DEBUG,
                "malformed vendor response; nothing published from it",
                extra={"vendor": self.vendor, "endpoint": ep.name, "error": redact(str(exc))},
            )
