"""Errors of a backtest run the command reports in one line (kept import-light: the
in-process path must not import the broker client to name them)."""

from __future__ import annotations


class BrokerRunError(Exception):
    """The broker-mode run failed: a service exited, was not ready, or fell behind."""
