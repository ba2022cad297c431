# ruff: noqa: E501
"""Binance USD-M futures public market endpoints as data (https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api).

Public: no key. The venue's budget is 2400 request weight/min per IP, shared with the
ingestor's polling from the same IP, so the gateway keeps a small slice (120 calls/min) for
pass-through. `/futures/data/*` only serves the last ~30 days.
"""

from __future__ import annotations

from typing import Any

VENDOR: dict[str, Any] = {
    "name": "binance",
    "title": "Binance USD-M Futures (public market data)",
    "base_url": "https://fapi.binance.com",
    "base_url_env": "BINANCE_FAPI_BASE_URL",
    "docs": "https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api",
    "auth_header": "X-MBX-APIKEY",
    "key_required": False,
    "budget_per_min": 120,
    "cache_ttl_s": 5.0,
    "enums": {
        "interval": "1m 3m 5m 15m 30m 1h 2h 4h 6h 8h 12h 1d 3d 1w 1M",
        "period": "5m 15m 30m 1h 2h 4h 6h 12h 1d",
        "contract_type": "PERPETUAL CURRENT_QUARTER NEXT_QUARTER",
    },
    # name | path | summary | params (see catalog/__init__.py for the spec)
    "endpoints": """
ping                            | /fapi/v1/ping                             | Test connectivity
time                            | /fapi/v1/time                             | Server time
exchange_info                   | /fapi/v1/exchangeInfo                     | Trading rules and every symbol (onboardDate = listing time)
depth                           | /fapi/v1/depth                            | Order book | symbol* limit:int
trades                          | /fapi/v1/trades                           | Recent trades | symbol* limit:int
historical_trades               | /fapi/v1/historicalTrades                 | Older trades | symbol* limit:int fromId:int
agg_trades                      | /fapi/v1/aggTrades                        | Compressed aggregate trades | symbol* fromId:int startTime:int endTime:int limit:int
klines                          | /fapi/v1/klines                           | Candles (oldest first) | symbol* interval*:interval startTime:int endTime:int limit:int
continuous_klines               | /fapi/v1/continuousKlines                 | Candles of a continuous contract | pair* contractType*:contract_type interval*:interval startTime:int endTime:int limit:int
index_price_klines              | /fapi/v1/indexPriceKlines                 | Index price candles | pair* interval*:interval startTime:int endTime:int limit:int
mark_price_klines               | /fapi/v1/markPriceKlines                  | Mark price candles | symbol* interval*:interval startTime:int endTime:int limit:int
premium_index_klines            | /fapi/v1/premiumIndexKlines               | Premium index candles | symbol* interval*:interval startTime:int endTime:int limit:int
premium_index                   | /fapi/v1/premiumIndex                     | Mark price and current funding rate | symbol
funding_rate                    | /fapi/v1/fundingRate                      | Settled funding rate history | symbol startTime:int endTime:int limit:int
funding_info                    | /fapi/v1/fundingInfo                      | Funding caps, floors and intervals
ticker_24hr                     | /fapi/v1/ticker/24hr                      | Rolling 24h statistics | symbol
ticker_price                    | /fapi/v1/ticker/price                     | Last price | symbol
ticker_price_v2                 | /fapi/v2/ticker/price                     | Last price (v2) | symbol
book_ticker                     | /fapi/v1/ticker/bookTicker                | Best bid/ask | symbol
open_interest                   | /fapi/v1/openInterest                     | Current open interest | symbol*
open_interest_hist              | /futures/data/openInterestHist            | Open interest history | symbol* period*:period limit:int startTime:int endTime:int
top_long_short_position_ratio   | /futures/data/topLongShortPositionRatio   | Top traders long/short ratio (positions) | symbol* period*:period limit:int startTime:int endTime:int
top_long_short_account_ratio    | /futures/data/topLongShortAccountRatio    | Top traders long/short ratio (accounts) | symbol* period*:period limit:int startTime:int endTime:int
global_long_short_account_ratio | /futures/data/globalLongShortAccountRatio | All accounts long/short ratio | symbol* period*:period limit:int startTime:int endTime:int
taker_long_short_ratio          | /futures/data/takerlongshortRatio         | Taker buy/sell volume | symbol* period*:period limit:int startTime:int endTime:int
basis                           | /futures/data/basis                       | Basis history | pair* contractType*:contract_type period*:period limit*:int startTime:int endTime:int
delivery_price                  | /futures/data/delivery-price              | Quarterly contract settlement prices | pair*
index_info                      | /fapi/v1/indexInfo                        | Composite index symbols | symbol
asset_index                     | /fapi/v1/assetIndex                       | Multi-assets mode asset index | symbol
constituents                    | /fapi/v1/constituents                     | Index price constituents | symbol*
insurance_balance               | /fapi/v1/insuranceBalance                 | Insurance fund balance | symbol
""",
}
