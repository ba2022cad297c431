"""Pollers, one per source: each returns the events of one poll (see scheduler.SourceLoop)."""
