"""LunarCrush API v4. Docs: https://lunarcrush.com/developers/api/endpoints"""

from __future__ import annotations

from perpsignal_connectors.http import Endpoint
from perpsignal_connectors.ratelimit import Quota

VENDOR = "lunarcrush"
BASE_URL = "https://lunarcrush.com/api4"
# Limits are per plan and were not found in the docs we have; 10/min is a conservative guess
# for the entry plan (429 still pauses us for Retry-After)
QUOTA = Quota("requests_1m", 10, 60.0, doc="https://lunarcrush.com/pricing")
COINS_LIST = Endpoint("coinsList", "/public/coins/list/v2", {QUOTA.name: 1})
LIST_LIMIT_MAX = 1000  # rows per page of the coins list (docs: default 10, max 1000)
COIN_TIME_SERIES = Endpoint(
    "coinTimeSeries", "/public/coins/{coin}/time-series/v2", {QUOTA.name: 1}
)
TOPIC = Endpoint("topic", "/public/topic/{topic}/v1", {QUOTA.name: 1})
