# ruff: noqa: E501
"""Coinglass API v4 endpoints as data (https://docs.coinglass.com/reference).

Every request needs the `CG-API-KEY` header; plans set the per-minute budget (the Hobbyist
plan allows 30 calls/min, hence the default) and restrict short intervals. Per-pair endpoints
take a pair symbol (`BTCUSDT`) and an `exchange`; aggregated ones take a coin (`BTC`).
"""

from __future__ import annotations

from typing import Any

VENDOR: dict[str, Any] = {
    "name": "coinglass",
    "title": "Coinglass API v4",
    "base_url": "https://open-api-v4.coinglass.com",
    "base_url_env": "COINGLASS_BASE_URL",
    "docs": "https://docs.coinglass.com/reference",
    "auth_header": "CG-API-KEY",
    "key_required": True,
    "budget_per_min": 30,
    "cache_ttl_s": 30.0,
    "enums": {
        "interval": "1m 3m 5m 15m 30m 1h 4h 6h 8h 12h 1d 1w",
        "unit": "usd coin",
    },
    # name | path | summary | params (see catalog/__init__.py for the spec)
    "endpoints": """
futures_funding_rate_accumulated_exchange_list       | /api/futures/funding-rate/accumulated-exchange-list       | Futures - Funding Rate - Cumulative Exchange List | range*
futures_funding_rate_arbitrage                       | /api/futures/funding-rate/arbitrage                       | Futures - Funding Rate - Arbitrage | usd*:int exchange_list
futures_funding_rate_exchange_list                   | /api/futures/funding-rate/exchange-list                   | Futures - Funding Rate - Exchange List
futures_funding_rate_history                         | /api/futures/funding-rate/history                         | Futures - Funding Rate - History (OHLC) | exchange* symbol* interval*:interval limit:int start_time:int end_time:int
futures_funding_rate_oi_weight_history               | /api/futures/funding-rate/oi-weight-history               | Futures - Funding Rate - OI Weight History (OHLC) | symbol* interval*:interval limit:int start_time:int end_time:int
futures_funding_rate_vol_weight_history              | /api/futures/funding-rate/vol-weight-history              | Futures - Funding Rate - Vol Weight History (OHLC) | symbol* interval*:interval limit:int start_time:int end_time:int
hyperliquid_position                                 | /api/hyperliquid/position                                 | Hyperliquid Positions - Hyperliquid Wallet Positions by Coin | symbol* current_page
hyperliquid_user_position                            | /api/hyperliquid/user-position                            | Hyperliquid Positions - Hyperliquid Wallet Positions by Address | user_address*
hyperliquid_wallet_pnl_distribution                  | /api/hyperliquid/wallet/pnl-distribution                  | Hyperliquid Positions - Hyperliquid Wallet PNL Distribution
hyperliquid_wallet_position_distribution             | /api/hyperliquid/wallet/position-distribution             | Hyperliquid Positions - Hyperliquid Wallet Positions Distribution
hyperliquid_whale_alert                              | /api/hyperliquid/whale-alert                              | Hyperliquid Positions - Hyperliquid Whale Alert
hyperliquid_whale_position                           | /api/hyperliquid/whale-position                           | Hyperliquid Positions - Hyperliquid Whale Position
futures_liquidation_aggregated_history               | /api/futures/liquidation/aggregated-history               | Liquidation - Coin Liquidation History | exchange_list* symbol* interval*:interval limit:int start_time:int end_time:int
futures_liquidation_aggregated_heatmap_model2        | /api/futures/liquidation/aggregated-heatmap/model2        | Liquidation - Coin Liquidation Heatmap Model2 | symbol* range*
futures_liquidation_aggregated_heatmap_model1        | /api/futures/liquidation/aggregated-heatmap/model1        | Liquidation - Coin Liquidation Heatmap Model1 | symbol* range*
futures_liquidation_aggregated_heatmap_model3        | /api/futures/liquidation/aggregated-heatmap/model3        | Liquidation - Coin Liquidation Heatmap Model3 | symbol* range*
futures_liquidation_aggregated_map                   | /api/futures/liquidation/aggregated-map                   | Liquidation - Coin Liquidation Map | symbol* range*
futures_liquidation_coin_list                        | /api/futures/liquidation/coin-list                        | Liquidation - Liquidation Coin List | exchange*
futures_liquidation_exchange_list                    | /api/futures/liquidation/exchange-list                    | Liquidation - Liquidation Exchange List | symbol range*
futures_liquidation_heatmap_model2                   | /api/futures/liquidation/heatmap/model2                   | Liquidation - Pair Liquidation Heatmap Model2 | exchange* symbol* range*
futures_liquidation_heatmap_model3                   | /api/futures/liquidation/heatmap/model3                   | Liquidation - Pair Liquidation Heatmap Model3 | exchange* symbol* range*
futures_liquidation_heatmap_model1                   | /api/futures/liquidation/heatmap/model1                   | Liquidation - Pair Liquidation Heatmap Model1 | exchange* symbol* range*
futures_liquidation_history                          | /api/futures/liquidation/history                          | Liquidation - Pair Liquidation History | exchange* symbol* interval*:interval limit:int start_time:int end_time:int
futures_liquidation_map                              | /api/futures/liquidation/map                              | Liquidation - Pair Liquidation Map | exchange* symbol* range*
futures_liquidation_max_pain                         | /api/futures/liquidation/max-pain                         | Liquidation - Liquidation Max Pain | range
futures_liquidation_order                            | /api/futures/liquidation/order                            | Liquidation - Liquidation Order | exchange* symbol* min_liquidation_amount* start_time:int end_time:int
futures_global_long_short_account_ratio_history      | /api/futures/global-long-short-account-ratio/history      | Long-Short Ratio - Global Account Ratio | exchange* symbol* interval*:interval limit:int start_time:int end_time:int
futures_v2_net_position_history                      | /api/futures/v2/net-position/history                      | Long-Short Ratio - Net Position (v2) | exchange* symbol* interval*:interval limit:int start_time:int end_time:int
spot_volume_footprint_history                        | /api/spot/volume/footprint-history                        | Spot - Footprint History | exchange* symbol* interval*:interval limit:int start_time:int end_time:int
futures_taker_buy_sell_volume_exchange_list          | /api/futures/taker-buy-sell-volume/exchange-list          | Long-Short Ratio - Exchange Taker Buy/Sell Ratio | symbol* range*
futures_top_long_short_account_ratio_history         | /api/futures/top-long-short-account-ratio/history         | Long-Short Ratio - Top Account Ratio History | exchange* symbol* interval*:interval limit:int start_time:int end_time:int
futures_top_long_short_position_ratio_history        | /api/futures/top-long-short-position-ratio/history        | Long-Short Ratio - Top Position Ratio History | exchange* symbol* interval*:interval limit:int start_time:int end_time:int
futures_open_interest_exchange_history_chart         | /api/futures/open-interest/exchange-history-chart         | Open Interest - Exchange History Chart | symbol* range* unit:unit
futures_open_interest_exchange_list                  | /api/futures/open-interest/exchange-list                  | Open Interest - Exchange List | symbol*
futures_open_interest_aggregated_coin_margin_history | /api/futures/open-interest/aggregated-coin-margin-history | Open Interest - Aggregated Coin Margin History (OHLC) | exchange_list* symbol* interval*:interval limit:int start_time:int end_time:int
futures_open_interest_aggregated_history             | /api/futures/open-interest/aggregated-history             | Open Interest - Aggregated History (OHLC) | symbol* interval*:interval limit:int start_time:int end_time:int unit:unit
futures_open_interest_aggregated_stablecoin_history  | /api/futures/open-interest/aggregated-stablecoin-history  | Open Interest - Aggregated Stablecoin Margin History (OHLC) | exchange_list* symbol* interval*:interval limit:int start_time:int end_time:int
futures_open_interest_history                        | /api/futures/open-interest/history                        | Open Interest - History (OHLC) | exchange* symbol* interval*:interval limit:int start_time:int end_time:int unit:unit
futures_orderbook_aggregated_ask_bids_history        | /api/futures/orderbook/aggregated-ask-bids-history        | Order Book - Coin Aggregated Orderbook Bid&Ask(±range) | exchange_list* symbol* interval*:interval limit:int start_time:int end_time:int range
futures_orderbook_ask_bids_history                   | /api/futures/orderbook/ask-bids-history                   | Order Book - Pair Orderbook Bid&Ask(±range) | exchange* symbol* interval*:interval limit:int start_time:int end_time:int range
futures_orderbook_large_limit_order_history          | /api/futures/orderbook/large-limit-order-history          | Order Book - Large Orderbook History | exchange* symbol* start_time*:int end_time*:int state*:int
futures_orderbook_large_limit_order                  | /api/futures/orderbook/large-limit-order                  | Order Book - Large Orderbook | exchange* symbol*
futures_orderbook_history                            | /api/futures/orderbook/history                            | Order Book - Orderbook Heatmap | exchange* symbol* interval*:interval limit*:int start_time:int end_time:int
futures_aggregated_taker_buy_sell_volume_history     | /api/futures/aggregated-taker-buy-sell-volume/history     | Taker Buy/Sell - Coin Taker Buy/Sell History | exchange_list* symbol* interval*:interval limit:int start_time:int end_time:int unit:unit
futures_aggregated_cvd_history                       | /api/futures/aggregated-cvd/history                       | Taker Buy/Sell - Aggregated Cumulative Volume Delta (CVD) | exchange_list* symbol* interval*:interval limit:int start_time:int end_time:int unit:unit
futures_cvd_history                                  | /api/futures/cvd/history                                  | Taker Buy/Sell - Cumulative Volume Delta (CVD) | exchange* symbol* interval*:interval limit:int start_time:int end_time:int
futures_volume_footprint_history                     | /api/futures/volume/footprint-history                     | Taker Buy/Sell - Footprint History (90d) | exchange* symbol* interval*:interval limit:int start_time:int end_time:int
futures_v2_taker_buy_sell_volume_history             | /api/futures/v2/taker-buy-sell-volume/history             | Taker Buy/Sell - Pair Taker Buy/Sell History | exchange* symbol* interval*:interval limit:int start_time:int end_time:int
futures_coins_markets                                | /api/futures/coins-markets                                | Trading Market - Coins Markets | exchange_list per_page:int page:int
futures_coins_price_change                           | /api/futures/coins-price-change                           | Trading Market - Coins Price Change
futures_supported_coins                              | /api/futures/supported-coins                              | Trading Market - Supported Coins
futures_delisted_exchange_pairs                      | /api/futures/delisted-exchange-pairs                      | Trading Market - Delisted Pairs
futures_indicators_rsi                               | /api/futures/indicators/rsi                               | Indicator - RSI | exchange* symbol* interval*:interval limit:int start_time:int end_time:int window:int series_type
futures_supported_exchange_pairs                     | /api/futures/supported-exchange-pairs                     | Trading Market - Supported Exchange and Pairs | exchange
futures_pairs_markets                                | /api/futures/pairs-markets                                | Trading Market - Pairs Markets | symbol*
futures_price_history                                | /api/futures/price/history                                | Trading Market - Price History (OHLC) | exchange* symbol* interval*:interval limit*:int start_time:int end_time:int
futures_supported_exchanges                          | /api/futures/supported-exchanges                          | Trading Market - Supported Exchanges
futures_basis_history                                | /api/futures/basis/history                                | Futures - Futures Basis | exchange* symbol* interval*:interval limit:int start_time:int end_time:int
index_fear_greed_history                             | /api/index/fear-greed-history                             | Other - Crypto Fear & Greed Index
coinbase_premium_index                               | /api/coinbase-premium-index                               | Spots - Coinbase Premium Index | interval*:interval limit:int start_time:int end_time:int
spot_supported_coins                                 | /api/spot/supported-coins                                 | Spot - Supported Coins
spot_supported_exchange_pairs                        | /api/spot/supported-exchange-pairs                        | Spot - Supported Exchange and Pairs | exchange
spot_coins_markets                                   | /api/spot/coins-markets                                   | Spot - Coins Markets | per_page:int page:int
spot_pairs_markets                                   | /api/spot/pairs-markets                                   | Spot - Pairs Markets | symbol*
spot_price_history                                   | /api/spot/price/history                                   | Spot - Price History (OHLC) | exchange* symbol* interval*:interval limit:int start_time:int end_time:int
spot_orderbook_ask_bids_history                      | /api/spot/orderbook/ask-bids-history                      | Spot - Pair Orderbook Bid&Ask(±range) | exchange* symbol* interval*:interval limit:int start_time:int end_time:int range
spot_orderbook_aggregated_ask_bids_history           | /api/spot/orderbook/aggregated-ask-bids-history           | Spot - Coin Aggregated Orderbook Bid&Ask(±range) | exchange_list* symbol* interval*:interval limit:int start_time:int end_time:int range
spot_orderbook_history                               | /api/spot/orderbook/history                               | Spot - Orderbook Heatmap | exchange* symbol* interval*:interval limit:int start_time:int end_time:int
spot_orderbook_large_limit_order                     | /api/spot/orderbook/large-limit-order                     | Spot - Large Orderbook | exchange* symbol*
spot_orderbook_large_limit_order_history             | /api/spot/orderbook/large-limit-order-history             | Spot - Large Orderbook History | exchange* symbol* start_time*:int end_time*:int state*:int
spot_taker_buy_sell_volume_history                   | /api/spot/taker-buy-sell-volume/history                   | Spot - Pair Taker Buy/Sell History | exchange* symbol* interval*:interval limit:int start_time:int end_time:int
spot_aggregated_taker_buy_sell_volume_history        | /api/spot/aggregated-taker-buy-sell-volume/history        | Spot - Coin Taker Buy/Sell History | exchange_list* symbol* interval*:interval limit:int start_time:int end_time:int unit:unit
spot_cvd_history                                     | /api/spot/cvd/history                                     | Spot - Cumulative Volume Delta (CVD) | exchange* symbol* interval*:interval limit:int start_time:int end_time:int
spot_aggregated_cvd_history                          | /api/spot/aggregated-cvd/history                          | Spot - Aggregated CVD | exchange_list* symbol* interval*:interval limit:int start_time:int end_time:int unit:unit
option_max_pain                                      | /api/option/max-pain                                      | Options - Max Pain | symbol* exchange*
option_info                                          | /api/option/info                                          | Options - Info | symbol*
option_exchange_oi_history                           | /api/option/exchange-oi-history                           | Options - Exchange Open Interest History | symbol* unit:unit range*
option_exchange_vol_history                          | /api/option/exchange-vol-history                          | Options - Exchange Volume History | symbol* unit:unit range*
exchange_assets                                      | /api/exchange/assets                                      | On-chain - Exchange Assets | exchange* per_page:int page:int
exchange_balance_list                                | /api/exchange/balance/list                                | On-chain - Exchange Balance List | symbol*
exchange_balance_chart                               | /api/exchange/balance/chart                               | On-chain - Exchange Balance Chart | symbol*
exchange_chain_tx_list                               | /api/exchange/chain/tx/list                               | On-chain - Exchange Transfers (ERC-20) | symbol min_usd:number per_page:int page:int start_time:int
etf_bitcoin_list                                     | /api/etf/bitcoin/list                                     | ETF - Bitcoin ETF List
etf_bitcoin_flow_history                             | /api/etf/bitcoin/flow-history                             | ETF - Bitcoin ETF Flow History
etf_bitcoin_net_assets_history                       | /api/etf/bitcoin/net-assets/history                       | ETF - Bitcoin ETF Net Assets History | ticker
etf_bitcoin_premium_discount_history                 | /api/etf/bitcoin/premium-discount/history                 | ETF - Bitcoin ETF Premium/Discount History | ticker
etf_bitcoin_history                                  | /api/etf/bitcoin/history                                  | ETF - Bitcoin ETF History | ticker*
etf_bitcoin_price_history                            | /api/etf/bitcoin/price/history                            | ETF - Bitcoin ETF Price History | ticker* range*
etf_bitcoin_detail                                   | /api/etf/bitcoin/detail                                   | ETF - Bitcoin ETF Detail | ticker*
etf_ethereum_list                                    | /api/etf/ethereum/list                                    | ETF - Ethereum ETF List
etf_ethereum_flow_history                            | /api/etf/ethereum/flow-history                            | ETF - Ethereum ETF Flow History
etf_ethereum_net_assets_history                      | /api/etf/ethereum/net-assets/history                      | ETF - Ethereum ETF Net Assets History
hk_etf_bitcoin_flow_history                          | /api/hk-etf/bitcoin/flow-history                          | ETF - Hong Kong Bitcoin ETF Flow History
grayscale_holdings_list                              | /api/grayscale/holdings-list                              | ETF - Grayscale Holdings
grayscale_premium_history                            | /api/grayscale/premium-history                            | ETF - Grayscale Premium History | symbol*
index_ahr999                                         | /api/index/ahr999                                         | Indicator - AHR999
index_puell_multiple                                 | /api/index/puell-multiple                                 | Indicator - Puell Multiple
index_stock_flow                                     | /api/index/stock-flow                                     | Indicator - Stock-to-Flow
index_pi_cycle_indicator                             | /api/index/pi-cycle-indicator                             | Indicator - Pi Cycle Top
index_golden_ratio_multiplier                        | /api/index/golden-ratio-multiplier                        | Indicator - Golden Ratio Multiplier
index_profitable_days                                | /api/index/profitable-days                                | Indicator - Bitcoin Profitable Days
index_bitcoin_rainbow_chart                          | /api/index/bitcoin/rainbow-chart                          | Indicator - Bitcoin Rainbow Chart
index_two_year_ma_multiplier                         | /api/index/2-year-ma-multiplier                           | Indicator - 2-Year MA Multiplier
index_200_week_ma_heatmap                            | /api/index/200-week-moving-average-heatmap                | Indicator - 200-Week MA Heatmap
bull_market_peak_indicator                           | /api/bull-market-peak-indicator                           | Indicator - Bull Market Peak Signals
index_bitcoin_bubble_index                           | /api/index/bitcoin-bubble-index                           | Indicator - Bitcoin Bubble Index
index_stablecoin_market_cap_history                  | /api/index/stableCoin-marketCap-history                   | Indicator - Stablecoin Market Cap History
bitfinex_margin_long_short                           | /api/bitfinex-margin-long-short                           | Indicator - Bitfinex Margin Long/Short | symbol* interval*:interval limit:int start_time:int end_time:int
borrow_interest_rate_history                         | /api/borrow-interest-rate/history                         | Indicator - Borrow Interest Rate | exchange* symbol* interval*:interval limit:int start_time:int end_time:int
""",
}
