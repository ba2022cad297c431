"""MSS reads funding per 8 h and social volume growth day over day, as the scorer does.

Its funding health (100 at 0.01 % per 8 h) read a 4 h symbol's rate per its own interval
(half the carry), and its social volume growth read `social_volume_change_pct`, which no
producer sets (LunarCrush gives `social_volume_24h`): the sub-score was always missing.
Events come from the connectors' parsers on the recorded responses.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from perpsignal_common.events.base import Event
from perpsignal_connectors.binance_usdm.parsing import parse_premium_index
from perpsignal_connectors.binance_usdm.schemas import PREMIUM_INDEX_ONE
from perpsignal_connectors.lunarcrush.parsing import parse_coins_list
from perpsignal_connectors.lunarcrush.schemas import COINS_LIST
from perpsignal_domain.scoring.mss import MssScanner

DAY = 86_400
HOUR_MS = 3_600_000


def _social(api: Path, shift_s: int, volume_scale: float) -> list[Event]:
    body = json.loads((api / "lunarcrush" / "coins_list_v2.json").read_text())
    body["config"]["generated"] += shift_s
    btc = body["data"][0]
    btc["social_volume_24h"] *= volume_scale
    body["data"] = [btc]
    social, profiles = parse_coins_list(COINS_LIST.validate_python(body))
    return [*profiles, *social]


def _premium(api: Path, now_ms: int, interval_h: int, rate: float) -> Event:
    doc: dict[str, Any] = json.loads(
        (api / "binance_usdm" / "fapi_v1_premiumIndex.doc_current.json").read_text()
    )
    step = interval_h * HOUR_MS
    return parse_premium_index(
        PREMIUM_INDEX_ONE.validate_python(
            {
                **doc,
                "symbol": "BTCUSDT",
                "lastFundingRate": str(rate),
                "nextFundingTime": (now_ms // step) * step + step,
                "time": now_ms,
            }
        )
    )


def test_social_volume_growth_is_the_24h_volume_against_a_day_earlier(
    shared_data: Path,
) -> None:
    api = shared_data / "api"
    mss = MssScanner()
    for shift, scale in ((0, 1.0), (DAY // 2, 1.1), (DAY, 1.5)):
        for ev in _social(api, shift, scale):
            mss.observe(ev)
    assert mss.coins["BTC"].social_volume_change_pct == pytest.approx(50.0)


@pytest.mark.parametrize(("interval_h", "per_8h"), [(8, 0.0001), (4, 0.0002), (1, 0.0008)])
def test_funding_health_reads_the_rate_per_8h(
    shared_data: Path, interval_h: int, per_8h: float
) -> None:
    api = shared_data / "api"
    mss = MssScanner()
    events = _social(api, 0, 1.0)
    for ev in events:
        mss.observe(ev)
    start = int(events[0].observed_at.timestamp() * 1000)
    for minute in range(0, 9 * 60, 5):  # polls across at least one settlement
        mss.observe(_premium(api, start + minute * 60_000, interval_h, 0.0001))
    assert mss.coins["BTC"].funding_rate == pytest.approx(per_8h)
