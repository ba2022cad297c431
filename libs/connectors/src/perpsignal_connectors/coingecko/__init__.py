"""CoinGecko v3 `coins/markets`: tokenomics for discovery and MSS (optional demo/pro key)."""
