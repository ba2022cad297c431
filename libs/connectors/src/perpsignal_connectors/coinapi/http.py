"""CoinAPI REST client (`X-CoinAPI-Key`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime

import httpx

from perpsignal_common.retry import RetryPolicy
from perpsignal_connectors.coinapi import constants as c
from perpsignal_connectors.coinapi import schemas as s
from perpsignal_connectors.http import VendorHttp
from perpsignal_connectors.ratelimit import RateLimiter, Sleep


def read_usage(headers: httpx.Headers) -> dict[str, int]:
    """Return the credits CoinAPI says the key spent over the last 24 hours (all its users:
    the gateway's pass-through and other programs spend the same credits)."""
    raw = headers.get(c.USED_HEADER)
    try:
        return {c.CREDITS: int(raw)} if raw is not None else {}
    except ValueError:
        return {}


class CoinApiHttp:
    """CoinAPI market data."""

    def __init__(
        self,
        api_key: str,
        base_url: str = c.BASE_URL,
        *,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
        daily_credits: int = c.DAILY_CREDITS,
        gateway_share: float = c.GATEWAY_DAILY_SHARE,
    ) -> None:
        _, gateway = c.credit_split(daily_credits, gateway_share)

        def own_usage(headers: httpx.Headers) -> dict[str, int]:
            # the key's use beyond the gateway's share is ours (or another program's)
            return {k: v - gateway for k, v in read_usage(headers).items()}

        self.http = VendorHttp(
            c.VENDOR,
            base_url,
            limiter=RateLimiter(c.quotas(daily_credits, gateway_share), clock=clock, sleep=sleep),
            headers={c.KEY_HEADER: api_key},
            secrets=[api_key],
            retry=retry,
            usage_reader=own_usage,
            clock=clock,
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.http.aclose()

    async def fetch_ohlcv(
        self, symbol_id: str, timeframe: str, time_start: datetime, limit: int = 10
    ) -> list[s.OhlcvRow]:
        """Return OHLCV periods from `time_start` (naive = UTC), oldest first."""
        ep = c.OHLCV_HISTORY
        if time_start.tzinfo is not None:  # CoinAPI reads the zone-less time as UTC
            time_start = time_start.astimezone(UTC)
        return await self.http.get_model(
            ep,
            s.OHLCV,
            {
                "period_id": c.PERIODS[timeframe],
                "time_start": time_start.strftime("%Y-%m-%dT%H:%M:%S"),
                "limit": limit,
            },
            path=ep.path.format(symbol_id=symbol_id),
        )

    async def fetch_exchange_rate(self, base: str, quote: str) -> s.ExchangeRate:
        """Return the current rate base→quote."""
        ep = c.EXCHANGE_RATE
        return await self.http.get_model(
            ep, s.EXCHANGE_RATE, path=ep.path.format(base=base, quote=quote)
        )

    async def fetch_latest_trades(self, symbol_id: str, limit: int = 100) -> list[s.Trade]:
        """Return the latest trades of a symbol, newest first; a trade of an unexpected shape
        is dropped alone (`VendorHttp.validate_rows`).

        Raises MalformedResponse when a trade is another symbol's (a cache or proxy that
        ignores the path): Kraken's spot BTC/USD trades would be published as whale trades
        of the Binance perpetual, and none of that answer is `symbol_id`'s.
        """
        ep = c.TRADES_LATEST
        rows = await self.http.get(ep, {"limit": limit}, path=ep.path.format(symbol_id=symbol_id))
        trades = self.http.validate_rows(ep, s.TRADE, rows)
        other = next(
            (t.symbol_id for t in trades if t.symbol_id.upper() != symbol_id.upper()), None
        )
        if other is not None:
            raise self.http.malformed(
                ep, f"trades of {other[:64]!r} in the answer for {symbol_id!r}"
            )
        return trades
