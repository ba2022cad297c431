"""Coinglass v4: aggregated derivatives data across exchanges and a live liquidation stream.

The full endpoint catalogue (for the gateway's pass-through) lives in
`perpsignal_connectors.catalog.coinglass`.
"""
