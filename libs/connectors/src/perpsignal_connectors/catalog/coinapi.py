# ruff: noqa: E501
"""CoinAPI REST v1 endpoints as data (https://docs.coinapi.io/market-data/rest-api).

Auth is the `X-CoinAPI-Key` header. Limits are credit-based (about one credit per 100 items
returned); the free tier allows 100 credits/day, so the gateway budgets calls per minute, a
daily share of the key's credits (`GATEWAY_COINAPI_DAILY_SHARE`), and caches. `symbol_id` looks like `BINANCEFTS_PERP_BTC_USDT`; times are ISO 8601.
"""

from __future__ import annotations

from typing import Any

VENDOR: dict[str, Any] = {
    "name": "coinapi",
    "title": "CoinAPI Market Data REST v1",
    "base_url": "https://rest.coinapi.io",
    "base_url_env": "COINAPI_BASE_URL",
    "docs": "https://docs.coinapi.io/market-data/rest-api",
    "auth_header": "X-CoinAPI-Key",
    "key_required": True,
    "budget_per_min": 20,
    "cache_ttl_s": 30.0,
    "enums": {
        "period": "1SEC 1MIN 5MIN 15MIN 30MIN 1HRS 4HRS 8HRS 1DAY 7DAY 1MTH",
    },
    # name | path | summary | params (see catalog/__init__.py for the spec)
    "endpoints": """
exchanges                    | /v1/exchanges                                             | List exchanges | filter_exchange_id
exchange                     | /v1/exchanges/{exchange_id}                               | One exchange | exchange_id*
exchange_icons               | /v1/exchanges/icons/{size}                                | Exchange icons | size*
assets                       | /v1/assets                                                | List assets | filter_asset_id
asset                        | /v1/assets/{asset_id}                                     | One asset | asset_id*
asset_icons                  | /v1/assets/icons/{size}                                   | Asset icons | size*
symbols                      | /v1/symbols                                               | List symbols | filter_symbol_id filter_exchange_id filter_asset_id
symbols_by_exchange          | /v1/symbols/{exchange_id}                                 | Symbols of one exchange | exchange_id* filter_symbol_id filter_asset_id
symbols_map                  | /v1/symbols/map/{exchange_id}                             | Symbol mapping of one exchange | exchange_id*
exchangerate_pair            | /v1/exchangerate/{asset_id_base}/{asset_id_quote}         | Exchange rate of a pair | asset_id_base* asset_id_quote* time
exchangerate_base            | /v1/exchangerate/{asset_id_base}                          | All rates of a base asset | asset_id_base* filter_asset_id invert:bool
exchangerate_history_periods | /v1/exchangerate/history/periods                          | Exchange-rate history periods
exchangerate_pair_history    | /v1/exchangerate/{asset_id_base}/{asset_id_quote}/history | Exchange-rate history of a pair | asset_id_base* asset_id_quote* period_id*:period time_start time_end limit:int
indexes                      | /v1/indexes                                               | List indexes
index                        | /v1/indexes/{index_id}                                    | One index | index_id*
index_timeseries             | /v1/indexes/{index_id}/timeseries                         | Index time series | index_id* time_start time_end limit:int
metrics_listing              | /v1/metrics/listing                                       | List metrics
metrics_asset_listing        | /v1/metrics/asset/listing                                 | Metrics available per asset | exchange_id asset_id
metrics_asset_current        | /v1/metrics/asset/current                                 | Current asset metrics | metric_id exchange_id asset_id
metrics_asset_history        | /v1/metrics/asset/history                                 | Asset metric history | metric_id* asset_id* exchange_id time_start time_end period_id:period limit:int
metrics_exchange_listing     | /v1/metrics/exchange/listing                              | Metrics available per exchange | exchange_id*
metrics_exchange_current     | /v1/metrics/exchange/current                              | Current exchange metrics | exchange_id* metric_id
metrics_exchange_history     | /v1/metrics/exchange/history                              | Exchange metric history | metric_id* exchange_id* time_start time_end period_id:period limit:int
metrics_symbol_listing       | /v1/metrics/symbol/listing                                | Metrics available per symbol | exchange_id symbol_id
metrics_symbol_current       | /v1/metrics/symbol/current                                | Current symbol metrics | metric_id exchange_id symbol_id
metrics_symbol_history       | /v1/metrics/symbol/history                                | Symbol metric history | metric_id* symbol_id* time_start time_end period_id:period limit:int
ohlcv_periods                | /v1/ohlcv/periods                                         | OHLCV periods
ohlcv_latest                 | /v1/ohlcv/{symbol_id}/latest                              | Latest OHLCV of a symbol | symbol_id* period_id*:period limit:int include_empty_items:bool
ohlcv_history                | /v1/ohlcv/{symbol_id}/history                             | OHLCV history of a symbol | symbol_id* period_id*:period time_start time_end limit:int include_empty_items:bool
ohlcv_exchange_history       | /v1/ohlcv/exchanges/{exchange_id}/history                 | OHLCV of every symbol of an exchange | exchange_id* period_id*:period time_start* time_end
trades_latest                | /v1/trades/latest                                         | Latest trades of all symbols | filter_symbol_id limit:int include_id:bool
trades_symbol_latest         | /v1/trades/{symbol_id}/latest                             | Latest trades of a symbol | symbol_id* limit:int include_id:bool
trades_symbol_history        | /v1/trades/{symbol_id}/history                            | Trade history of a symbol | symbol_id* time_start* time_end limit:int include_id:bool
quotes_current               | /v1/quotes/current                                        | Current quotes | filter_symbol_id
quotes_latest                | /v1/quotes/latest                                         | Latest quotes | filter_symbol_id limit:int
quotes_symbol_current        | /v1/quotes/{symbol_id}/current                            | Current quote of a symbol | symbol_id*
quotes_symbol_latest         | /v1/quotes/{symbol_id}/latest                             | Latest quotes of a symbol | symbol_id* limit:int
quotes_symbol_history        | /v1/quotes/{symbol_id}/history                            | Quote history of a symbol | symbol_id* time_start* time_end limit:int
orderbooks_current           | /v1/orderbooks/current                                    | Current order books | filter_symbol_id limit_levels:int
orderbooks_symbol_current    | /v1/orderbooks/{symbol_id}/current                        | Current order book of a symbol | symbol_id* limit_levels:int
orderbooks_symbol_latest     | /v1/orderbooks/{symbol_id}/latest                         | Latest order books of a symbol | symbol_id* limit:int limit_levels:int
orderbooks_symbol_history    | /v1/orderbooks/{symbol_id}/history                        | Order book history of a symbol | symbol_id* time_start* time_end limit:int limit_levels:int
orderbooks3_current          | /v1/orderbooks3/current                                   | Current L3 order books | filter_symbol_id limit_levels:int
orderbooks3_symbol_current   | /v1/orderbooks3/{symbol_id}/current                       | Current L3 order book of a symbol | symbol_id* limit_levels:int
""",
}
