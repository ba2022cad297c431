"""CoinGecko v3. Docs: https://docs.coingecko.com/v3.0.1/reference/coins-markets

Budgets (docs "Rate limit" and pricing): Demo plan 30 calls/min and 10,000 calls/month, every
call 1 credit; `/coins/list/new` (the 200 newest coins) is for paid plans only, so on the Demo
plan the newest coins come from `/search/trending` instead.
"""

from __future__ import annotations

from perpsignal_connectors.http import Endpoint
from perpsignal_connectors.ratelimit import Quota

VENDOR = "coingecko"
BASE_URL = "https://api.coingecko.com/api/v3"
PRO_BASE_URL = "https://pro-api.coingecko.com/api/v3"
DEMO_KEY_HEADER = "x-cg-demo-api-key"
PRO_KEY_HEADER = "x-cg-pro-api-key"
# Demo plan: 30 calls/min (docs "Rate limit"); keyless public use is lower and varies
QUOTA = Quota("calls_1m", 30, 60.0, doc="https://docs.coingecko.com/docs/common-errors-rate-limit")
COINS_MARKETS = Endpoint("coinsMarkets", "/coins/markets", {QUOTA.name: 1})
COINS_LIST_NEW = Endpoint("coinsListNew", "/coins/list/new", {QUOTA.name: 1})
SEARCH_TRENDING = Endpoint("searchTrending", "/search/trending", {QUOTA.name: 1})
PER_PAGE_MAX = 250
DEMO_MONTHLY_CALLS = 10_000
MARKET_ORDERS = ("market_cap_desc", "volume_desc")
