"""Scoring: the 8-factor engine, SMC structure, MSS scanner and their per-symbol state."""
