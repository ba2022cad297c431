"""Coinglass API v4: URLs, the endpoints the ingestor polls, plan limits.

Docs: https://docs.coinglass.com/reference (endpoints), .../reference/authentication
(`CG-API-KEY`), .../reference/websocket (liquidationOrders channel, ping every 20 s).
"""

from __future__ import annotations

from perpsignal_connectors.http import Endpoint
from perpsignal_connectors.ratelimit import Quota

VENDOR = "coinglass"
BASE_URL = "https://open-api-v4.coinglass.com"
WS_URL = "wss://open-ws.coinglass.com/ws-api"
KEY_HEADER = "CG-API-KEY"
# Per-plan calls per minute (Hobbyist 30); `API-KEY-USE-LIMIT` reports the window's usage
CALLS = "calls_1m"
PLAN_LIMIT_1M = 30
USE_LIMIT_HEADER = "api-key-use-limit"
WS_PING_INTERVAL_S = 20.0


def quotas(limit_per_min: int = PLAN_LIMIT_1M) -> list[Quota]:
    """Return the plan's per-minute budget."""
    return [Quota(CALLS, limit_per_min, 60.0, doc="reference/rate-limit")]


def _ep(name: str, path: str) -> Endpoint:
    return Endpoint(name, path, {CALLS: 1})


LIQUIDATION_AGG_HISTORY = _ep(
    "liquidationAggregatedHistory", "/api/futures/liquidation/aggregated-history"
)
FUNDING_OI_WEIGHT_HISTORY = _ep(
    "fundingOiWeightHistory", "/api/futures/funding-rate/oi-weight-history"
)
OI_AGG_HISTORY = _ep(
    "openInterestAggregatedHistory", "/api/futures/open-interest/aggregated-history"
)
GLOBAL_LS_HISTORY = _ep(
    "globalLongShortAccountRatio", "/api/futures/global-long-short-account-ratio/history"
)
TOP_LS_ACCOUNT_HISTORY = _ep(
    "topLongShortAccountRatio", "/api/futures/top-long-short-account-ratio/history"
)
TOP_LS_POSITION_HISTORY = _ep(
    "topLongShortPositionRatio", "/api/futures/top-long-short-position-ratio/history"
)
TAKER_AGG_HISTORY = _ep(
    "takerAggregatedHistory", "/api/futures/aggregated-taker-buy-sell-volume/history"
)
# Envelope codes mirror HTTP meanings (docs "Response codes")
RATE_LIMIT_CODES = frozenset({"429"})
TRANSIENT_CODES = frozenset({"408", "500", "502", "503", "504"})
