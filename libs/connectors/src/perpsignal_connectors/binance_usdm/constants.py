"""Binance USD-M Futures: URLs, endpoint paths, weights and limits, each with its doc link.

References:
- General info / limits: https://developers.binance.com/docs/derivatives/usds-margined-futures/general-info
- Market data endpoints: https://developers.binance.com/docs/derivatives/usds-margined-futures/market-data/rest-api
- Liquidation stream: https://developers.binance.com/docs/derivatives/usds-margined-futures/websocket-market-streams/All-Market-Liquidation-Order-Streams
"""

from __future__ import annotations

from perpsignal_connectors.http import Endpoint
from perpsignal_connectors.ratelimit import Quota

VENDOR = "binance"
BASE_URL = "https://fapi.binance.com"
WS_URL = "wss://fstream.binance.com"
# "WebSocket connections have a limit of 10 incoming messages per second": a connection
# beyond it is disconnected. Our SUBSCRIBE/UNSUBSCRIBE requests go at most 5 a second
WS_MIN_SEND_INTERVAL_S = 0.2

# Per-IP request weight per minute (general-info "IP Limits"; exchangeInfo.rateLimits)
WEIGHT = "weight_1m"
WEIGHT_LIMIT_1M = 2400
USED_WEIGHT_HEADER = "x-mbx-used-weight-1m"
# /futures/data/* statistics: weight 0 but "IP rate limit 1000 requests/5min", stated on each
# endpoint's page; we keep one budget per endpoint (e.g. .../Long-Short-Ratio)
STATS_LIMIT_5M = 1000
# /fapi/v1/fundingRate "share 500/5min/IP rate limit with GET /fapi/v1/fundingInfo"
FUNDING_LIMIT_5M = 500
FUNDING = "funding_5m"


def stats_quota_name(endpoint: str) -> str:
    """Return the 5-minute quota name of one statistics endpoint."""
    return f"stats_5m:{endpoint}"


STATS_ENDPOINTS = (
    "openInterestHist",
    "globalLongShortAccountRatio",
    "topLongShortAccountRatio",
    "topLongShortPositionRatio",
    "takerlongshortRatio",
)


def quotas(weight_budget: int = WEIGHT_LIMIT_1M, headroom: float = 0.2) -> list[Quota]:
    """Return every Binance quota; `weight_budget` lets a deployment claim less than 2,400."""
    out = [
        Quota(WEIGHT, weight_budget, 60.0, headroom, doc="general-info#ip-limits"),
        Quota(FUNDING, FUNDING_LIMIT_5M, 300.0, headroom, doc="Get-Funding-Rate-History"),
    ]
    # a statistics 429 is that endpoint's own cap (weight 0: the IP's weight is untouched,
    # and its X-MBX-USED-WEIGHT-1M, adopted by the weight budget, still holds klines back when
    # the weight is what ran out): it pauses only that endpoint, klines and the rest go on
    out += [
        Quota(stats_quota_name(n), STATS_LIMIT_5M, 300.0, headroom, doc=n, own_cap=True)
        for n in STATS_ENDPOINTS
    ]
    return out


def klines_weight(limit: int) -> int:
    """Return the klines weight of `limit` rows (docs: <100→1, <500→2, ≤1000→5, else 10)."""
    if limit < 100:
        return 1
    if limit < 500:
        return 2
    if limit <= 1000:
        return 5
    return 10


EXCHANGE_INFO = Endpoint("exchangeInfo", "/fapi/v1/exchangeInfo", {WEIGHT: 1})
# weight 1 with a symbol, 10 without (all symbols): Mark-Price
PREMIUM_INDEX = Endpoint("premiumIndex", "/fapi/v1/premiumIndex", {WEIGHT: 1})
PREMIUM_INDEX_ALL = Endpoint("premiumIndex", "/fapi/v1/premiumIndex", {WEIGHT: 10})
FUNDING_RATE = Endpoint("fundingRate", "/fapi/v1/fundingRate", {FUNDING: 1})
OPEN_INTEREST = Endpoint("openInterest", "/fapi/v1/openInterest", {WEIGHT: 1})
# weight 1 with a symbol, 40 without: 24hr-Ticker-Price-Change-Statistics
TICKER_24H = Endpoint("ticker24hr", "/fapi/v1/ticker/24hr", {WEIGHT: 1})
TICKER_24H_ALL = Endpoint("ticker24hr", "/fapi/v1/ticker/24hr", {WEIGHT: 40})


def klines_endpoint(limit: int) -> Endpoint:
    """Return the klines endpoint priced for `limit` rows."""
    return Endpoint("klines", "/fapi/v1/klines", {WEIGHT: klines_weight(limit)})


def stats_endpoint(name: str) -> Endpoint:
    """Return a /futures/data statistics endpoint (weight 0, own 5-minute cap)."""
    return Endpoint(name, f"/futures/data/{name}", {stats_quota_name(name): 1})


OPEN_INTEREST_HIST = stats_endpoint("openInterestHist")
GLOBAL_LS_ACCOUNT = stats_endpoint("globalLongShortAccountRatio")
TOP_LS_ACCOUNT = stats_endpoint("topLongShortAccountRatio")
TOP_LS_POSITION = stats_endpoint("topLongShortPositionRatio")
TAKER_RATIO = stats_endpoint("takerlongshortRatio")

KLINE_INTERVALS = ("1m", "3m", "5m", "15m", "30m", "1h", "2h", "4h", "6h", "8h", "12h", "1d")
STATS_PERIODS = ("5m", "15m", "30m", "1h", "2h", "4h", "6h", "12h", "1d")
KLINES_MAX_LIMIT = 1500
LIQUIDATION_STREAM = "!forceOrder@arr"
