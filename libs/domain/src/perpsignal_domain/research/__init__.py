"""Research statistics over measured outcomes (pure)."""
