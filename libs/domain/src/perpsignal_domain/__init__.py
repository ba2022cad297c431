"""PerpSignal's domain core: the pure logic the live services and the backtest both run.

Nothing here reads Kafka, a database, HTTP or the clock; it imports only `perpsignal_common`'s
contracts, so one code path scores, judges and evaluates in production and in history.
"""
