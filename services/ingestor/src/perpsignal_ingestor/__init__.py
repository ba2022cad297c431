"""PerpSignal ingestor service."""
