"""CoinAPI errors: HTTP status (shared); the body is `{"error": "..."}` (400/401/403/429/5xx)."""
