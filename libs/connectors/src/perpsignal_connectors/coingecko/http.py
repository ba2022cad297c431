"""CoinGecko v3 client (demo key header by default, pro key header with the pro base URL)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from perpsignal_common.retry import RetryPolicy
from perpsignal_connectors.coingecko import constants as c
from perpsignal_connectors.coingecko.errors import check_envelope
from perpsignal_connectors.coingecko.schemas import (
    COIN_MARKET,
    NEW_COINS,
    TRENDING,
    CoinMarket,
    NewCoin,
    Trending,
)
from perpsignal_connectors.http import VendorHttp
from perpsignal_connectors.ratelimit import RateLimiter, Sleep


class CoinGeckoHttp:
    """CoinGecko market data."""

    def __init__(
        self,
        base_url: str = c.BASE_URL,
        api_key: str | None = None,
        *,
        pro: bool | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        # a paid plan (pro API): inferred from the base URL unless given
        self.pro = "pro-api" in base_url if pro is None else pro
        header = c.PRO_KEY_HEADER if self.pro else c.DEMO_KEY_HEADER
        headers = {header: api_key} if api_key else {}
        self.http = VendorHttp(
            c.VENDOR,
            base_url,
            limiter=RateLimiter([c.QUOTA], clock=clock, sleep=sleep),
            headers=headers,
            secrets=[api_key] if api_key else [],
            retry=retry,
            envelope_check=check_envelope,
            clock=clock,
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.http.aclose()

    async def fetch_coins_markets(
        self,
        *,
        category: str | None = None,
        per_page: int = 100,
        page: int = 1,
        order: str = "market_cap_desc",
        ids: list[str] | None = None,
    ) -> list[CoinMarket]:
        """Return coins (by market cap, by volume, or the given ids) with supply, FDV, volume;
        a coin of an unexpected shape is dropped alone, not the 249 others of its page."""
        body = await self.http.get(
            c.COINS_MARKETS,
            {
                "vs_currency": "usd",
                "category": category,
                "ids": ",".join(ids) if ids else None,
                "order": order,
                "per_page": min(per_page, c.PER_PAGE_MAX),
                "page": page,
                "sparkline": "false",
            },
        )
        return self.http.validate_rows(c.COINS_MARKETS, COIN_MARKET, body)

    async def fetch_new_coins(self) -> list[NewCoin]:
        """Return the 200 coins most recently listed on CoinGecko (paid plans only)."""
        return await self.http.get_model(c.COINS_LIST_NEW, NEW_COINS)

    async def fetch_trending(self) -> Trending:
        """Return the most searched coins of the last 24 h (every plan)."""
        return await self.http.get_model(c.SEARCH_TRENDING, TRENDING)
