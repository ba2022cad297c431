"""OKX v5 public candles: a second venue for price confirmation and for symbols Binance lacks."""
