"""PerpSignal gateway service."""
