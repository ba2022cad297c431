"""Coinglass v4 REST client (`CG-API-KEY`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any, TypeVar

from pydantic import TypeAdapter

from perpsignal_common.retry import RetryPolicy
from perpsignal_connectors.coinglass import constants as c
from perpsignal_connectors.coinglass import schemas as s
from perpsignal_connectors.coinglass.errors import check_envelope, read_usage
from perpsignal_connectors.http import Endpoint, Params, VendorHttp
from perpsignal_connectors.ratelimit import RateLimiter, Sleep

T = TypeVar("T")

# kind -> (endpoint, adapter of one row)
RATIO_ENDPOINTS: dict[str, tuple[Endpoint, TypeAdapter[Any]]] = {
    "global_account": (c.GLOBAL_LS_HISTORY, s.GLOBAL_RATIO_ROW),
    "top_account": (c.TOP_LS_ACCOUNT_HISTORY, s.TOP_ACCOUNT_ROW),
    "top_position": (c.TOP_LS_POSITION_HISTORY, s.TOP_POSITION_ROW),
}


class CoinglassHttp:
    """Coinglass aggregated derivatives data."""

    def __init__(
        self,
        api_key: str,
        base_url: str = c.BASE_URL,
        *,
        limit_per_min: int = c.PLAN_LIMIT_1M,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.http = VendorHttp(
            c.VENDOR,
            base_url,
            limiter=RateLimiter(c.quotas(limit_per_min), clock=clock, sleep=sleep),
            headers={c.KEY_HEADER: api_key},
            secrets=[api_key],
            retry=retry,
            usage_reader=read_usage,
            envelope_check=check_envelope,
            clock=clock,
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.http.aclose()

    async def _data(self, ep: Endpoint, row: TypeAdapter[T], params: Params) -> list[T]:
        """The envelope's `data` rows; a row of an unexpected shape is dropped alone."""
        body = await self.http.get(ep, params)
        return self.http.validate_rows(ep, row, body["data"])

    async def fetch_liquidation_history(
        self, coin: str, interval: str, limit: int = 3, exchange_list: str = "Binance,OKX,Bybit"
    ) -> list[s.LiquidationAggRow]:
        """Return a coin's liquidations aggregated over `exchange_list`."""
        return await self._data(
            c.LIQUIDATION_AGG_HISTORY,
            s.LIQUIDATION_AGG_ROW,
            {"symbol": coin, "interval": interval, "limit": limit, "exchange_list": exchange_list},
        )

    async def fetch_funding_ohlc(self, coin: str, interval: str, limit: int = 3) -> list[s.OhlcRow]:
        """Return the OI-weighted funding rate OHLC (percent) of a coin."""
        return await self._data(
            c.FUNDING_OI_WEIGHT_HISTORY,
            s.OHLC_ROW,
            {"symbol": coin, "interval": interval, "limit": limit},
        )

    async def fetch_oi_ohlc(self, coin: str, interval: str, limit: int = 3) -> list[s.OhlcRow]:
        """Return the aggregated open interest OHLC (USD) of a coin."""
        return await self._data(
            c.OI_AGG_HISTORY,
            s.OHLC_ROW,
            {"symbol": coin, "interval": interval, "limit": limit, "unit": "usd"},
        )

    async def fetch_ratio(
        self, kind: str, pair: str, interval: str, exchange: str = "Binance", limit: int = 3
    ) -> list[Any]:
        """Return a long/short ratio history (global_account, top_account, top_position)."""
        ep, adapter = RATIO_ENDPOINTS[kind]
        return list(
            await self._data(
                ep,
                adapter,
                {"exchange": exchange, "symbol": pair, "interval": interval, "limit": limit},
            )
        )

    async def fetch_taker_history(
        self, coin: str, interval: str, limit: int = 3, exchange_list: str = "Binance,OKX,Bybit"
    ) -> list[s.TakerAggRow]:
        """Return aggregated taker buy/sell volume (USD) of a coin."""
        return await self._data(
            c.TAKER_AGG_HISTORY,
            s.TAKER_AGG_ROW,
            {"symbol": coin, "interval": interval, "limit": limit, "exchange_list": exchange_list},
        )
