"""Contracts and plumbing shared by every PerpSignal service (never business rules)."""
