"""Vendor clients: ingestor polling, outcomes price fallback, gateway pass-through."""
