"""CoinAPI: OHLCV, exchange rates and recent trades (whale trades above a notional)."""
