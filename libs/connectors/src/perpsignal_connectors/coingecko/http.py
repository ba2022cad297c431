"""CoinGecko v3 client (demo key header by default, pro key header with the pro base URL)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from perpsignal_common.retry import RetryPolicy
from perpsignal_connectors.coingecko import constants as c
from perpsignal_connectors.coingecko.schemas import COINS_MARKETS, CoinMarket
from perpsignal_connectors.http import VendorHttp
from perpsignal_connectors.ratelimit import RateLimiter, Sleep


class CoinGeckoHttp:
    """CoinGecko market data."""

    def __init__(
        self,
        base_url: str = c.BASE_URL,
        api_key: str | None = None,
        *,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        header = c.PRO_KEY_HEADER if "pro-api" in base_url else c.DEMO_KEY_HEADER
        headers = {header: api_key} if api_key else {}
        self.http = VendorHttp(
            c.VENDOR,
            base_url,
            limiter=RateLimiter([c.QUOTA], clock=clock, sleep=sleep),
            headers=headers,
            retry=retry,
            clock=clock,
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.http.aclose()

    async def fetch_coins_markets(
        self, *, category: str | None = None, per_page: int = 100, page: int = 1
    ) -> list[CoinMarket]:
        """Return coins by market cap with supply, FDV and volume."""
        return await self.http.get_model(
            c.COINS_MARKETS,
            COINS_MARKETS,
            {
                "vs_currency": "usd",
                "category": category,
                "order": "market_cap_desc",
                "per_page": min(per_page, c.PER_PAGE_MAX),
                "page": page,
                "sparkline": "false",
            },
        )
