# ruff: noqa: E501
"""alternative.me endpoints as data: the Crypto Fear & Greed Index (https://alternative.me/crypto/fear-and-greed-index/).

No key. The provider asks for a modest rate (about 60 requests/min); the index changes once
a day, so answers are cached for 10 minutes.
"""

from __future__ import annotations

from typing import Any

VENDOR: dict[str, Any] = {
    "name": "feargreed",
    "title": "Fear & Greed Index (alternative.me)",
    "base_url": "https://api.alternative.me",
    "base_url_env": "FEAR_GREED_BASE_URL",
    "docs": "https://alternative.me/crypto/fear-and-greed-index/",
    "budget_per_min": 30,
    "cache_ttl_s": 600.0,
    "enums": {
        "format": "json csv",
        "date_format": "us cn kr world",
        "convert": "USD EUR GBP BTC ETH",
    },
    # name | path | summary | params (see catalog/__init__.py for the spec)
    "endpoints": """
fng         | /fng/            | Fear & Greed Index (limit=0: full history) | limit:int format:format date_format:date_format
ticker      | /v2/ticker/      | Coin tickers | limit:int start:int convert:convert structure sort
ticker_coin | /v2/ticker/{id}/ | One coin's ticker | id* convert:convert
listings    | /v2/listings/    | Coin listings
global      | /v2/global/      | Global market data | convert:convert
""",
}
