"""CoinAPI REST. Docs: https://docs.coinapi.io/market-data/rest-api"""

from __future__ import annotations

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


def quotas(daily_credits: int = DAILY_CREDITS) -> list[Quota]:
    """Return the key's budget: `daily_credits` a day (the plan's `x-ratelimit-limit`)."""
    return [
        Quota(
            CREDITS,
            daily_credits,
            86_400.0,
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
