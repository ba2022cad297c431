"""PerpSignal judge service."""
