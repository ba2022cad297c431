"""The backtest importers, by input kind; `perpsignal_cli.backtesting.importers` is their
public face (it re-exports what callers use)."""
