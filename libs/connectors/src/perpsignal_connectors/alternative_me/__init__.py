"""alternative.me Crypto Fear & Greed Index (no key)."""
