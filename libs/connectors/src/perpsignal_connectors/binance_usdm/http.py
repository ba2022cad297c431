"""Binance USD-M REST client: every public market-data endpoint the platform reads.

Public API (also used by the outcomes service as a price fallback)::

    async with BinanceUsdmHttp(base_url) as client:
        rows = await client.fetch_klines("BTCUSDT", "1h", start_time=None, end_time=None,
                                         limit=100)   # list[KlineRow], oldest first
        candles = parse_klines(rows, "BTCUSDT", "1h", now)  # closed candles as events

`fetch_klines` returns wire rows (`schemas.KlineRow`: open_time_ms, open, high, low, close,
volume, close_time_ms, ...); the last row may be the still-forming candle, which
`parsing.parse_klines` drops. Every call is weighed against the shared 2,400/min budget
(corrected from `X-MBX-USED-WEIGHT-1M`), retried on transient failures, and fails fast while
the circuit is open (after a 418 ban, until it expires).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import datetime

import httpx

from perpsignal_common.retry import RetryPolicy
from perpsignal_connectors.binance_usdm import constants as c
from perpsignal_connectors.binance_usdm import schemas as s
from perpsignal_connectors.binance_usdm.errors import read_usage
from perpsignal_connectors.circuit import CircuitBreaker
from perpsignal_connectors.http import DEFAULT_TIMEOUT, VendorHttp
from perpsignal_connectors.ratelimit import RateLimiter, Sleep


def _ms(t: datetime | int | None) -> int | None:
    if t is None or isinstance(t, int):
        return t
    return int(t.timestamp() * 1000)


class BinanceUsdmHttp:
    """Binance USD-M Futures public REST endpoints, typed."""

    def __init__(
        self,
        base_url: str = c.BASE_URL,
        *,
        weight_budget: int = c.WEIGHT_LIMIT_1M,
        limiter: RateLimiter | None = None,
        retry: RetryPolicy | None = None,
        breaker: CircuitBreaker | None = None,
        timeout: httpx.Timeout = DEFAULT_TIMEOUT,
        client: httpx.AsyncClient | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.limiter = limiter or RateLimiter(c.quotas(weight_budget), clock=clock, sleep=sleep)
        self.http = VendorHttp(
            c.VENDOR,
            base_url,
            limiter=self.limiter,
            retry=retry,
            breaker=breaker,
            timeout=timeout,
            usage_reader=read_usage,
            client=client,
            clock=clock,
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.http.aclose()

    async def __aenter__(self) -> BinanceUsdmHttp:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def fetch_exchange_info(self) -> s.ExchangeInfo:
        """Return every symbol with its status, contract type and onboard date."""
        return await self.http.get_model(c.EXCHANGE_INFO, s.EXCHANGE_INFO)

    async def fetch_klines(
        self,
        symbol: str,
        interval: str,
        start_time: datetime | int | None = None,
        end_time: datetime | int | None = None,
        limit: int = 500,
    ) -> list[s.KlineRow]:
        """Return klines oldest first (the last one may still be forming)."""
        limit = max(1, min(limit, c.KLINES_MAX_LIMIT))
        return await self.http.get_model(
            c.klines_endpoint(limit),
            s.KLINES,
            {
                "symbol": symbol,
                "interval": interval,
                "startTime": _ms(start_time),
                "endTime": _ms(end_time),
                "limit": limit,
            },
        )

    async def fetch_premium_index_all(self) -> list[s.PremiumIndex]:
        """Return mark price and next funding of every symbol in one call (weight 10); a row
        of an unexpected shape is dropped alone (`VendorHttp.validate_rows`)."""
        rows = await self.http.get(c.PREMIUM_INDEX_ALL)
        return self.http.validate_rows(c.PREMIUM_INDEX_ALL, s.PREMIUM_INDEX_ONE, rows)

    async def fetch_premium_index(self, symbol: str) -> s.PremiumIndex:
        """Return mark price and next funding of one symbol."""
        return await self.http.get_model(c.PREMIUM_INDEX, s.PREMIUM_INDEX_ONE, {"symbol": symbol})

    async def fetch_funding_rates(
        self, symbol: str, start_time: datetime | int | None = None, limit: int = 100
    ) -> list[s.FundingRateRow]:
        """Return settled funding rates, oldest first (500/5min shared cap)."""
        return await self.http.get_model(
            c.FUNDING_RATE,
            s.FUNDING_RATES,
            {"symbol": symbol, "startTime": _ms(start_time), "limit": limit},
        )

    async def fetch_open_interest(self, symbol: str) -> s.OpenInterest:
        """Return the live open interest of one symbol."""
        return await self.http.get_model(c.OPEN_INTEREST, s.OPEN_INTEREST, {"symbol": symbol})

    async def fetch_open_interest_hist(
        self, symbol: str, period: str = "5m", limit: int = 2
    ) -> list[s.OpenInterestHistRow]:
        """Return open interest history (last ~30 days only); a row of an unexpected shape
        is dropped alone (`VendorHttp.validate_rows`), as for every statistics history."""
        ep = c.OPEN_INTEREST_HIST
        rows = await self.http.get(ep, {"symbol": symbol, "period": period, "limit": limit})
        return self.http.validate_rows(ep, s.OPEN_INTEREST_HIST_ROW, rows)

    async def fetch_long_short(
        self, kind: str, symbol: str, period: str = "5m", limit: int = 2
    ) -> list[s.LongShortRow]:
        """Return a long/short ratio series; `kind` is global_account/top_account/top_position."""
        ep = {
            "global_account": c.GLOBAL_LS_ACCOUNT,
            "top_account": c.TOP_LS_ACCOUNT,
            "top_position": c.TOP_LS_POSITION,
        }[kind]
        rows = await self.http.get(ep, {"symbol": symbol, "period": period, "limit": limit})
        return self.http.validate_rows(ep, s.LONG_SHORT_ROW, rows)

    async def fetch_taker_ratio(
        self, symbol: str, period: str = "5m", limit: int = 2
    ) -> list[s.TakerRatioRow]:
        """Return taker buy/sell volume per period."""
        ep = c.TAKER_RATIO
        rows = await self.http.get(ep, {"symbol": symbol, "period": period, "limit": limit})
        return self.http.validate_rows(ep, s.TAKER_RATIO_ROW, rows)

    async def fetch_tickers_24h(self) -> list[s.Ticker24h]:
        """Return the 24h ticker of every symbol in one call (weight 40); a row of an
        unexpected shape is dropped alone (`VendorHttp.validate_rows`)."""
        rows = await self.http.get(c.TICKER_24H_ALL)
        return self.http.validate_rows(c.TICKER_24H_ALL, s.TICKER_ONE, rows)

    async def fetch_ticker_24h(self, symbol: str) -> s.Ticker24h:
        """Return the 24h ticker of one symbol."""
        return await self.http.get_model(c.TICKER_24H, s.TICKER_ONE, {"symbol": symbol})
