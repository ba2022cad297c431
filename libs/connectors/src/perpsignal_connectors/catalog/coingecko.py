# ruff: noqa: E501
"""CoinGecko v3 endpoints as data (https://docs.coingecko.com/v3.0.1/reference/endpoint-overview).

The demo plan uses `x-cg-demo-api-key` (optional for the public API) and allows about
30 calls/min; set `COINGECKO_BASE_URL` to the pro base and the key to a pro key for more.
"""

from __future__ import annotations

from typing import Any

VENDOR: dict[str, Any] = {
    "name": "coingecko",
    "title": "CoinGecko API v3",
    "base_url": "https://api.coingecko.com/api/v3",
    "base_url_env": "COINGECKO_BASE_URL",
    "docs": "https://docs.coingecko.com/v3.0.1/reference/endpoint-overview",
    "auth_header": "x-cg-demo-api-key",
    "key_required": False,
    "budget_per_min": 25,
    "cache_ttl_s": 60.0,
    "enums": {
        "order": "market_cap_desc market_cap_asc volume_desc volume_asc id_asc id_desc",
    },
    # name | path | summary | params (see catalog/__init__.py for the spec)
    "endpoints": """
ping                           | /ping                                   | API server status
simple_price                   | /simple/price                           | Prices by coin ids | vs_currencies* ids names symbols include_market_cap:bool include_24hr_vol:bool include_24hr_change:bool include_last_updated_at:bool precision
simple_token_price             | /simple/token_price/{id}                | Token prices by contract address | id* contract_addresses* vs_currencies* include_market_cap:bool include_24hr_vol:bool include_24hr_change:bool
simple_supported_vs_currencies | /simple/supported_vs_currencies         | Supported quote currencies
coins_list                     | /coins/list                             | Every coin id | include_platform:bool status
coins_markets                  | /coins/markets                          | Coins with market data | vs_currency* ids category order:order per_page:int page:int sparkline:bool price_change_percentage
coin                           | /coins/{id}                             | Coin data by id | id* localization:bool tickers:bool market_data:bool community_data:bool developer_data:bool sparkline:bool
coin_tickers                   | /coins/{id}/tickers                     | Coin tickers | id* exchange_ids page:int order depth:bool
coin_history                   | /coins/{id}/history                     | Coin data at a date (dd-mm-yyyy) | id* date* localization:bool
coin_market_chart              | /coins/{id}/market_chart                | Coin price/market cap/volume chart | id* vs_currency* days* interval precision
coin_market_chart_range        | /coins/{id}/market_chart/range          | Coin chart in a time range | id* vs_currency* from*:int to*:int precision
coin_ohlc                      | /coins/{id}/ohlc                        | Coin OHLC | id* vs_currency* days* precision
coin_by_contract               | /coins/{id}/contract/{contract_address} | Coin data by contract address | id* contract_address*
categories_list                | /coins/categories/list                  | Category ids
categories                     | /coins/categories                       | Categories with market data | order
asset_platforms                | /asset_platforms                        | Asset platforms | filter
exchanges                      | /exchanges                              | Exchanges with volume | per_page:int page:int
exchanges_list                 | /exchanges/list                         | Exchange ids
exchange                       | /exchanges/{id}                         | Exchange data | id*
exchange_tickers               | /exchanges/{id}/tickers                 | Exchange tickers | id* coin_ids page:int depth:bool order
exchange_volume_chart          | /exchanges/{id}/volume_chart            | Exchange volume chart (BTC) | id* days*
derivatives                    | /derivatives                            | Derivatives tickers
derivatives_exchanges          | /derivatives/exchanges                  | Derivatives exchanges | order per_page:int page:int
derivatives_exchange           | /derivatives/exchanges/{id}             | One derivatives exchange | id* include_tickers
derivatives_exchanges_list     | /derivatives/exchanges/list             | Derivatives exchange ids
exchange_rates                 | /exchange_rates                         | BTC exchange rates
search                         | /search                                 | Search coins, categories and markets | query*
search_trending                | /search/trending                        | Trending searches
global                         | /global                                 | Global market data
global_defi                    | /global/decentralized_finance_defi      | Global DeFi data
public_treasury                | /companies/public_treasury/{coin_id}    | Public companies' holdings | coin_id*
nfts_list                      | /nfts/list                              | NFT collections | order per_page:int page:int
nft                            | /nfts/{id}                              | NFT collection data | id*
""",
}
