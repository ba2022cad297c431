"""One hostile row of a history costs only itself, not the answer it came in.

Binance's statistics histories, Coinglass's histories and ratios, CoinAPI's trades and
LunarCrush's coins and series were validated (and turned into events) as a whole: one row of
an unexpected shape made the whole answer MalformedResponse, one row the event contract
refuses made the whole answer refused. Each body here is the recorded real one with one row
made hostile, served by the fake vendor to the real client and poller.
"""

from __future__ import annotations

import logging
from collections import Counter
from typing import Any

import pytest

from perpsignal_common.events.base import Event
from perpsignal_connectors.coinapi.http import CoinApiHttp
from perpsignal_connectors.coinglass.http import CoinglassHttp
from perpsignal_connectors.ids import ms_to_dt
from perpsignal_connectors.lunarcrush.http import LunarCrushHttp
from perpsignal_ingestor.sources.binance import BinanceRatiosPoller
from perpsignal_ingestor.sources.vendors import CoinApiPoller, CoinglassPoller, LunarCrushPoller
from perpsignal_ingestor.universe import Universe
from tests.fakes.vendors import FakeVendors
from tests.unit.connectors.clock import FakeClock
from tests.unit.ingestor.test_binance_pollers import T0, client

YEAR_2100_MS = 4_102_444_800_000
JAN_2_1970_MS = 86_400_000  # before 2009: no market data is that old, the contract says
SKIPPED = "vendor rows of an unexpected shape skipped; the rest of the answer is used"

# (endpoint, recorded body, a numeric field, the event type, its `kind` if any)
BINANCE_STATS = [
    (
        "openInterestHist",
        "futures_data_openInterestHist.doc_current.json",
        "sumOpenInterest",
        "market.open_interest",
        None,
    ),
    (
        "globalLongShortAccountRatio",
        "futures_data_globalLongShortAccountRatio.doc_current.json",
        "longAccount",
        "market.long_short_ratio",
        "global_account",
    ),
    (
        "topLongShortPositionRatio",
        "futures_data_topLongShortPositionRatio.doc_current.json",
        "longAccount",
        "market.long_short_ratio",
        "top_position",
    ),
    (
        "takerlongshortRatio",
        "futures_data_takerlongshortRatio.doc_current.json",
        "buyVol",
        "market.taker_flow",
        None,
    ),
]


def hostile(row: dict[str, Any], how: str, number: str, time: str) -> dict[str, Any]:
    """`row` with a value of the wrong shape (`wire`) or one the event contract refuses
    (`contract`: a time in 1970)."""
    if how == "wire":
        return {**row, number: "n/a"}
    return {**row, time: JAN_2_1970_MS if isinstance(row[time], int) else str(JAN_2_1970_MS)}


def kinds(events: list[Event]) -> Counter[str]:
    return Counter(e.type for e in events)


@pytest.mark.parametrize("how", ["wire", "contract"])
@pytest.mark.parametrize(("name", "recorded", "number", "etype", "kind"), BINANCE_STATS)
async def test_one_hostile_row_of_a_binance_statistics_history_costs_only_itself(
    fake: FakeVendors, how: str, name: str, recorded: str, number: str, etype: str, kind: str
) -> None:
    rows = fake.load("binance", recorded)
    assert len(rows) == 2
    served = [rows[0], hostile(rows[1], how, number, "timestamp")]
    fake.set_body("binance", f"/futures/data/{name}", served)
    clock = FakeClock(T0)
    poller = BinanceRatiosPoller(client(fake, clock), Universe(["BTCUSDT"], clock=clock.time))
    events = await poller.poll()
    kept = [e for e in events if e.type == etype and getattr(e, "kind", None) == kind]
    assert [e.observed_at for e in kept] == [ms_to_dt(int(rows[0]["timestamp"]))]


async def test_rows_skipped_are_one_warning_then_quiet(
    fake: FakeVendors, caplog: pytest.LogCaptureFixture
) -> None:
    """Every poll of every symbol meets the same odd row: one warning, not one per answer."""
    name, recorded, number, _, _ = BINANCE_STATS[3]
    rows = fake.load("binance", recorded)
    fake.set_body(
        "binance", f"/futures/data/{name}", [rows[0], hostile(rows[1], "wire", number, "")]
    )
    clock = FakeClock(T0)
    poller = BinanceRatiosPoller(client(fake, clock), Universe(["BTCUSDT", "ETHUSDT"]))
    with caplog.at_level(logging.DEBUG, logger="perpsignal_connectors.http"):
        for _ in range(3):
            assert kinds(await poller.poll())["market.taker_flow"] == 2  # one per symbol
    said = [r for r in caplog.records if r.getMessage() == SKIPPED]
    assert len(said) == 6  # 3 polls x 2 symbols, each counted...
    assert [r.levelno for r in said].count(logging.WARNING) == 1  # ...one of them a warning
    assert "1 of 2 rows" in said[0].error  # type: ignore[attr-defined]


@pytest.mark.parametrize("how", ["wire", "contract"])
async def test_one_hostile_coinglass_ratio_row_costs_only_itself(
    fake: FakeVendors, how: str
) -> None:
    path = "/api/futures/global-long-short-account-ratio/history"
    body = fake.load("coinglass", "long-short-ratio__global-longshort-account-ratio.json")
    first, second = body["data"]
    body["data"] = [first, hostile(second, how, "global_account_long_percent", "time")]
    fake.set_body("coinglass", path, body)
    cg = CoinglassHttp("cg-key", fake.url("coinglass"))
    events = await CoinglassPoller(cg, Universe(["BTCUSDT"]), "1h", max_coins=1).poll()
    await cg.aclose()
    ratios = [e for e in events if e.type == "market.long_short_ratio"]
    by_kind = Counter(e.kind for e in ratios)  # type: ignore[attr-defined]
    assert by_kind["global_account"] == 1


@pytest.mark.parametrize("how", ["wire", "contract"])
async def test_one_hostile_coinapi_trade_costs_only_itself(fake: FakeVendors, how: str) -> None:
    trades = fake.load("coinapi", "v1_trades_symbol_id_latest.json")
    trades = [{**t, "symbol_id": "BINANCEFTS_PERP_BTC_USDT"} for t in trades]  # as asked
    odd = {"price": "n/a"} if how == "wire" else {"time_exchange": "2100-01-01T00:00:00.0Z"}
    trades[3] = {**trades[3], **odd}
    fake.set_body("coinapi", "/v1/trades/BINANCEFTS_PERP_BTC_USDT/latest", trades)
    ca = CoinApiHttp("ca-key", fake.url("coinapi"))
    events = await CoinApiPoller(ca, Universe(["BTCUSDT"]), 0.0, max_symbols=1).poll()
    await ca.aclose()
    good = [t for i, t in enumerate(trades) if i != 3 and t["taker_side"] in ("BUY", "SELL")]
    assert sorted(e.trade_id for e in events) == sorted(t["uuid"] for t in good)  # type: ignore[attr-defined]


@pytest.mark.parametrize("how", ["wire", "contract"])
async def test_one_hostile_lunarcrush_bucket_or_coin_costs_only_itself(
    fake: FakeVendors, how: str
) -> None:
    """The recorded series and list hold one row each: a second, hostile one is the first
    one hour (one coin) on."""
    series = fake.load("lunarcrush", "coins_coin_time-series_v2.json")
    [point] = series["data"]
    later = {**point, "time": point["time"] + 3600}
    odd = {"galaxy_score": "n/a"} if how == "wire" else {"time": YEAR_2100_MS // 1000}
    series["data"] = [point, {**later, **odd}]
    coins = fake.load("lunarcrush", "coins_list_v2.json")
    [coin] = coins["data"]
    other = {**coin, "id": coin["id"] + 1, "symbol": "ZZZ"}
    # a Galaxy Score beyond its 0-100 scale is of the wrong shape; a bad symbol the contract's
    other = {**other, "galaxy_score": 101} if how == "wire" else {**other, "symbol": "Z Z"}
    coins["data"] = [coin, other]
    fake.set_body("lunarcrush", "/public/coins/btc/time-series/v2", series)
    fake.set_body("lunarcrush", "/public/coins/list/v2", coins)
    lc = LunarCrushHttp("lc-key", fake.url("lunarcrush"))
    poller = LunarCrushPoller(
        lc, Universe(["BTCUSDT"]), series_coins=1, sorts=[("market_cap_rank", False, 10)]
    )
    events = await poller.poll()
    await lc.aclose()
    assert {e.symbol for e in events if e.type == "market.coin_profile"} == {"BTCUSDT"}
    social = [e for e in events if e.type == "market.social"]
    assert len(social) == 2, social  # the coin's list row and its good bucket
