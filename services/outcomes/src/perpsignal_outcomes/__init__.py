"""PerpSignal outcomes service."""
