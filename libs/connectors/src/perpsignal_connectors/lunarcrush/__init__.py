"""LunarCrush v4: coins list (galaxy score, alt rank, sentiment, social), time series, topics."""
