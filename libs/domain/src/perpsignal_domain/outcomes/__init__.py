"""Outcomes: how a signal is scored against the price path that followed it."""
