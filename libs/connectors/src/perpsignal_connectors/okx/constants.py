"""OKX v5 public market data.

Docs: https://www.okx.com/docs-v5/en/#public-data-rest-api-get-candlesticks
"""

from __future__ import annotations

from perpsignal_connectors.http import Endpoint
from perpsignal_connectors.ratelimit import Quota

VENDOR = "okx"
BASE_URL = "https://www.okx.com"
# "Rate Limit: 40 requests per 2 seconds" (IP), get-candlesticks
CANDLES_QUOTA = Quota("candles_2s", 40, 2.0, doc="#public-data-rest-api-get-candlesticks")
QUOTAS = [CANDLES_QUOTA]
CANDLES = Endpoint("candles", "/api/v5/market/candles", {CANDLES_QUOTA.name: 1})
# "50011: Rate limit reached" (error codes, REST); 50001/50004/50013 = service busy/timeouts
RATE_LIMIT_CODES = frozenset({"50011", "50061"})
TRANSIENT_CODES = frozenset({"50001", "50004", "50013", "50026"})
# Our timeframes → OKX `bar` (hours are upper case; 1D would be Hong Kong aligned)
BARS = {
    "1m": "1m",
    "5m": "5m",
    "15m": "15m",
    "30m": "30m",
    "1h": "1H",
    "2h": "2H",
    "4h": "4H",
    "1d": "1Dutc",
}
CANDLES_MAX_LIMIT = 300


def inst_id(symbol: str) -> str:
    """Return the OKX USDT swap id of a Binance-style symbol (`BTCUSDT` → `BTC-USDT-SWAP`)."""
    base = symbol.removesuffix("USDT")
    return f"{base}-USDT-SWAP"
