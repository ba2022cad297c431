# ruff: noqa: E501
"""OKX v5 public endpoints as data (https://www.okx.com/docs-v5/en/#public-data-rest-api).

Public: no key. Most market endpoints allow 20-40 requests per 2 s per IP; the gateway keeps
a modest 120 calls/min. Instrument ids look like `BTC-USDT-SWAP`; candles come newest first.
"""

from __future__ import annotations

from typing import Any

VENDOR: dict[str, Any] = {
    "name": "okx",
    "title": "OKX v5 (public market data)",
    "base_url": "https://www.okx.com",
    "base_url_env": "OKX_BASE_URL",
    "docs": "https://www.okx.com/docs-v5/en/",
    "budget_per_min": 120,
    "cache_ttl_s": 5.0,
    "enums": {
        "inst_type": "SPOT MARGIN SWAP FUTURES OPTION",
        "bar": "1m 3m 5m 15m 30m 1H 2H 4H 6H 12H 1D 1W 1M 6Hutc 12Hutc 1Dutc 1Wutc 1Mutc",
        "period": "5m 1H 1D",
    },
    # name | path | summary | params (see catalog/__init__.py for the spec)
    "endpoints": """
tickers                                 | /api/v5/market/tickers                                         | Tickers of an instrument type | instType*:inst_type uly instFamily
ticker                                  | /api/v5/market/ticker                                          | Ticker of one instrument | instId*
index_tickers                           | /api/v5/market/index-tickers                                   | Index tickers | quoteCcy instId
books                                   | /api/v5/market/books                                           | Order book | instId* sz:int
candles                                 | /api/v5/market/candles                                         | Candles (newest first, last 1,440 bars) | instId* bar:bar after before limit:int
history_candles                         | /api/v5/market/history-candles                                 | Older candles | instId* bar:bar after before limit:int
index_candles                           | /api/v5/market/index-candles                                   | Index candles | instId* bar:bar after before limit:int
mark_price_candles                      | /api/v5/market/mark-price-candles                              | Mark price candles | instId* bar:bar after before limit:int
trades                                  | /api/v5/market/trades                                          | Recent trades | instId* limit:int
history_trades                          | /api/v5/market/history-trades                                  | Older trades | instId* type after before limit:int
platform_24_volume                      | /api/v5/market/platform-24-volume                              | Platform 24h volume
instruments                             | /api/v5/public/instruments                                     | Instruments | instType*:inst_type uly instFamily instId
funding_rate                            | /api/v5/public/funding-rate                                    | Current funding rate | instId*
funding_rate_history                    | /api/v5/public/funding-rate-history                            | Funding rate history | instId* before after limit:int
open_interest                           | /api/v5/public/open-interest                                   | Open interest | instType*:inst_type uly instFamily instId
mark_price                              | /api/v5/public/mark-price                                      | Mark price | instType*:inst_type uly instFamily instId
price_limit                             | /api/v5/public/price-limit                                     | Price limits | instId*
estimated_price                         | /api/v5/public/estimated-price                                 | Estimated delivery price | instId*
time                                    | /api/v5/public/time                                            | Server time
position_tiers                          | /api/v5/public/position-tiers                                  | Position tiers | instType*:inst_type tdMode* uly instFamily instId ccy tier
insurance_fund                          | /api/v5/public/insurance-fund                                  | Insurance fund | instType*:inst_type type uly instFamily ccy before after limit:int
underlying                              | /api/v5/public/underlying                                      | Underlyings | instType*:inst_type
liquidation_orders                      | /api/v5/public/liquidation-orders                              | Liquidation orders | instType*:inst_type mgnMode instFamily uly ccy alias state before after limit:int
rubik_support_coin                      | /api/v5/rubik/stat/trading-data/support-coin                   | Coins with trading statistics
rubik_taker_volume                      | /api/v5/rubik/stat/taker-volume                                | Taker buy/sell volume | ccy* instType*:inst_type begin end period:period
rubik_margin_loan_ratio                 | /api/v5/rubik/stat/margin/loan-ratio                           | Margin lending ratio | ccy* begin end period:period
rubik_long_short_account_ratio          | /api/v5/rubik/stat/contracts/long-short-account-ratio          | Long/short account ratio | ccy* begin end period:period
rubik_long_short_account_ratio_contract | /api/v5/rubik/stat/contracts/long-short-account-ratio-contract | Long/short account ratio of a contract | instId* period:period begin end limit:int
rubik_open_interest_volume              | /api/v5/rubik/stat/contracts/open-interest-volume              | Contracts open interest and volume | ccy* begin end period:period
rubik_open_interest_history             | /api/v5/rubik/stat/contracts/open-interest-history             | Contract open interest history | instId* period:period begin end limit:int
""",
}
