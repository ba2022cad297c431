"""LunarCrush v4 client (`Authorization: Bearer <key>`)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from perpsignal_common.retry import RetryPolicy
from perpsignal_connectors.http import VendorHttp
from perpsignal_connectors.lunarcrush import constants as c
from perpsignal_connectors.lunarcrush import schemas as s
from perpsignal_connectors.ratelimit import RateLimiter, Sleep


class LunarCrushHttp:
    """LunarCrush social and market metrics."""

    def __init__(
        self,
        api_key: str,
        base_url: str = c.BASE_URL,
        *,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.http = VendorHttp(
            c.VENDOR,
            base_url,
            limiter=RateLimiter([c.QUOTA], clock=clock, sleep=sleep),
            headers={"Authorization": f"Bearer {api_key}"},
            secrets=[api_key],
            retry=retry,
            clock=clock,
        )

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self.http.aclose()

    async def fetch_coins_list(
        self,
        *,
        sort: str = "market_cap_rank",
        limit: int = 100,
        page: int = 0,
        desc: bool = False,
    ) -> s.CoinsList:
        """Return coins with galaxy score, alt rank, sentiment and social metrics.

        `sort` is any metric key (`galaxy_score`, `alt_rank`, ...); `desc` sorts descending
        (the API takes any value of `desc` as descending, so it is sent only when true).
        """
        params: dict[str, str | int | float | None] = {
            "sort": sort,
            "limit": min(limit, c.LIST_LIMIT_MAX),
            "page": page,
        }
        if desc:
            params["desc"] = 1
        # coin by coin: one coin of an unexpected shape is dropped, not the 1,000 others
        body = await self.http.get(c.COINS_LIST, params)
        shell = self.http.validate(c.COINS_LIST, s.COINS_LIST_SHELL, body)
        coins = self.http.validate_rows(c.COINS_LIST, s.COIN_ROW, shell.data)
        return s.CoinsList(config=shell.config, data=tuple(coins))

    async def fetch_coin_series(
        self, coin: str, bucket: str = "hour", interval: str = "1d"
    ) -> s.CoinSeries:
        """Return a coin's social/market time series; a bucket of an unexpected shape is
        dropped alone (`VendorHttp.validate_rows`)."""
        ep = c.COIN_TIME_SERIES
        body = await self.http.get(
            ep, {"bucket": bucket, "interval": interval}, path=ep.path.format(coin=coin.lower())
        )
        shell = self.http.validate(ep, s.COIN_SERIES_SHELL, body)
        points = self.http.validate_rows(ep, s.SERIES_POINT, shell.data)
        return s.CoinSeries(config=shell.config, data=tuple(points))

    async def fetch_topic(self, topic: str) -> s.Topic:
        """Return a topic's social summary."""
        ep = c.TOPIC
        return await self.http.get_model(ep, s.TOPIC, path=ep.path.format(topic=topic.lower()))
