"""PerpSignal's domain core: the pure logic the live services and the backtest both run.

Nothing here reads Kafka, a database, HTTP or the clock; it imports only `perpsignal_common`'s
contracts, so one code path scores, judges and evaluates in production and in history.
"""

from perpsignal_domain._native import activate as _activate

# run the mypyc-compiled copy of these modules when it was built from this very source
_activate(__path__)
