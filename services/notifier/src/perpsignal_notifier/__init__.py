"""PerpSignal notifier service."""
