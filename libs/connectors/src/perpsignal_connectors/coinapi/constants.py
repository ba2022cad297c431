"""CoinAPI REST. Docs: https://docs.coinapi.io/market-data/rest-api"""

from __future__ import annotations

import math

from perpsignal_connectors.http import Endpoint
from perpsignal_connectors.ratelimit import Quota

VENDOR = "coinapi"
BASE_URL = "https://rest.coinapi.io"
KEY_HEADER = "X-CoinAPI-Key"
# Credits, counted by CoinAPI over the last 24 hours (a rolling window): a call costs 1, or 1
# per 100 items when `limit` is sent; `x-ratelimit-limit` is the plan's daily credits (100 in
# the recordings: the free plan), `x-ratelimit-used` what the key spent, here and elsewhere.
# Over it, a hard-limited plan answers 429 until credits free up. The budget mirrors it as the
# same rolling 24 h (the plan's size: a setting) corrected from `x-ratelimit-used`
DAILY_CREDITS = 100
CREDITS = "credits_24h"
USED_HEADER = "x-ratelimit-used"
DOC = "https://docs.coinapi.io/market-data/rest-api#limits"
# a full day's budget is refused at once rather than waited for: the poll fails, saying so
MAX_CREDIT_WAIT_S = 60.0


# The key's two users split the day: the gateway's `/invoke coinapi.*` pass-through may spend
# this share (GATEWAY_COINAPI_DAILY_SHARE), the ingestor the rest, at most 80 % (the rest is
# headroom for clock skew and a fixed day against CoinAPI's rolling one)
GATEWAY_DAILY_SHARE = 0.1
INGESTOR_MAX_SHARE = 0.8

# the settings' texts: the ingestor and the gateway read both
DAILY_CREDITS_DOC = (
    "The CoinAPI plan's credits per 24 h (its x-ratelimit-limit; 100 = the free plan), shared "
    "by the key's users: the gateway's /invoke coinapi.* spends GATEWAY_COINAPI_DAILY_SHARE of "
    "them, the ingestor the rest, at most 80 %; each counts the key's x-ratelimit-used beyond "
    "the other's part as its own. Spent, an ingestor poll fails saying so and /invoke answers "
    "429 vendor_budget_exhausted, instead of earning CoinAPI's 429s"
)
GATEWAY_DAILY_SHARE_DOC = (
    "Share of COINAPI_DAILY_CREDITS the gateway's /invoke coinapi.* may spend per 24 h, all "
    "gateway processes and keys together (0 = none; the ingestor keeps the rest, at most 80 %)"
)


def credit_split(
    daily_credits: int = DAILY_CREDITS, gateway_share: float = GATEWAY_DAILY_SHARE
) -> tuple[int, int]:
    """Return (the ingestor's, the gateway's) credits of a 24 h window.

    Each counts the key's `x-ratelimit-used` beyond the other's credits against its own, so
    a GPT user of the pass-through cannot spend what the whale-trade source needs, and the
    ingestor cannot starve the pass-through either."""
    gateway = math.floor(daily_credits * gateway_share)
    ingestor = min(math.floor(daily_credits * INGESTOR_MAX_SHARE), daily_credits - gateway)
    return max(0, ingestor), gateway


def quotas(
    daily_credits: int = DAILY_CREDITS, gateway_share: float = GATEWAY_DAILY_SHARE
) -> list[Quota]:
    """Return the ingestor's budget: its part of `daily_credits` a day (`credit_split`)."""
    ingestor, _ = credit_split(daily_credits, gateway_share)
    return [
        Quota(
            CREDITS,
            max(1, ingestor),
            86_400.0,
            headroom=0.0,
            doc=DOC,
            max_wait_s=MAX_CREDIT_WAIT_S,
            rolling=True,  # a calendar day's budget sat spent every other day
        )
    ]


OHLCV_HISTORY = Endpoint("ohlcvHistory", "/v1/ohlcv/{symbol_id}/history", {CREDITS: 1})
EXCHANGE_RATE = Endpoint("exchangeRate", "/v1/exchangerate/{base}/{quote}", {CREDITS: 1})
TRADES_LATEST = Endpoint("tradesLatest", "/v1/trades/{symbol_id}/latest", {CREDITS: 1})
# Our timeframes → CoinAPI period ids (v1/ohlcv/periods)
PERIODS = {
    "1m": "1MIN",
    "5m": "5MIN",
    "15m": "15MIN",
    "30m": "30MIN",
    "1h": "1HRS",
    "2h": "2HRS",
    "4h": "4HRS",
    "8h": "8HRS",
    "1d": "1DAY",
}


def perp_symbol_id(symbol: str) -> str:
    """Return CoinAPI's id of a Binance USD-M perpetual (`BTCUSDT` → `BINANCEFTS_PERP_BTC_USDT`)."""
    return f"BINANCEFTS_PERP_{symbol.removesuffix('USDT')}_USDT"
