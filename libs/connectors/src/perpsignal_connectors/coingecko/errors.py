"""CoinGecko errors: HTTP status only (429 on excess; body `{"status": {...}}`)."""
