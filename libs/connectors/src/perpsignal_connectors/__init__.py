"""Vendor clients shared by the ingestor (polling), outcomes (price fallback) and gateway (pass-through)."""
