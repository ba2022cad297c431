"""PerpSignal scorer service."""
