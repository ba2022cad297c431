"""Event contracts: envelope, payloads, topic registry and codec."""
