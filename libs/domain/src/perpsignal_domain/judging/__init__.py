"""Judging: the deterministic rule judge, volatility/trade plan and the LLM prompt text."""
