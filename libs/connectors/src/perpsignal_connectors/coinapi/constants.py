"""CoinAPI REST. Docs: https://docs.coinapi.io/market-data/rest-api"""

from __future__ import annotations

from perpsignal_connectors.http import Endpoint
from perpsignal_connectors.ratelimit import Quota

VENDOR = "coinapi"
BASE_URL = "https://rest.coinapi.io"
KEY_HEADER = "X-CoinAPI-Key"
# Credit-based plans; recordings show x-ratelimit-limit 100 with cost 1 per call, and the docs
# price a data call at about 1 credit per 100 items. Plans differ: keep a per-minute guard
QUOTA = Quota("requests_1m", 100, 60.0, doc="https://docs.coinapi.io/market-data/rest-api#limits")
OHLCV_HISTORY = Endpoint("ohlcvHistory", "/v1/ohlcv/{symbol_id}/history", {QUOTA.name: 1})
EXCHANGE_RATE = Endpoint("exchangeRate", "/v1/exchangerate/{base}/{quote}", {QUOTA.name: 1})
TRADES_LATEST = Endpoint("tradesLatest", "/v1/trades/{symbol_id}/latest", {QUOTA.name: 1})
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
