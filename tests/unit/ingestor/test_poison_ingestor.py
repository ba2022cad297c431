"""The ingestor refuses what breaks the event contract: a hostile vendor value is logged on one
line, counted per source, and absent downstream, while the rest of its response is published."""

from __future__ import annotations

import logging
import time
from copy import deepcopy
from typing import Any

import pytest
from prometheus_client import REGISTRY

from perpsignal_common.events.market import CandleClosedV1
from perpsignal_connectors.coingecko.http import CoinGeckoHttp
from perpsignal_ingestor.publisher import Publisher
from perpsignal_ingestor.sources.binance import BinanceMarketPoller
from perpsignal_ingestor.sources.vendors import CoinGeckoPoller
from perpsignal_ingestor.universe import Universe
from tests.fakes.vendors import FakeVendors
from tests.unit.connectors.clock import FakeClock
from tests.unit.ingestor.conftest import RecordingProducer
from tests.unit.ingestor.test_binance_pollers import T0, client

FIVE_MIN_MS = 300_000


def rejected(source: str, reason: str) -> float:
    value = REGISTRY.get_sample_value(
        "perpsignal_ingestor_rejected_events_total", {"source": source, "reason": reason}
    )
    return value or 0.0


def klines(fake: FakeVendors, n: int) -> list[list[Any]]:
    """`n` consecutive closed 5m rows cut from the recorded klines body."""
    first = fake.load("binance", "fapi_v1_klines.thirdparty_doc.json")[0]
    rows = []
    for i in range(n):
        row = deepcopy(first)
        row[0] = first[0] + i * FIVE_MIN_MS
        row[6] = row[0] + FIVE_MIN_MS - 1
        rows.append(row)
    return rows


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [(4, "NaN", "close:finite_number"), (3, "0", "low:greater_than_equal")],
    ids=["NaN close", "zero low"],
)
async def test_a_hostile_candle_is_refused_alone(
    fake: FakeVendors, caplog: pytest.LogCaptureFixture, field: int, value: str, reason: str
) -> None:
    rows = klines(fake, 3)
    rows[1][field] = value
    fake.set_body("binance", "/fapi/v1/klines", rows)
    clock = FakeClock(T0)
    poller = BinanceMarketPoller(
        client(fake, clock), Universe(["BTCUSDT"], clock=clock.time), ["5m"], clock=clock.time
    )
    before = rejected("binance", reason)
    with caplog.at_level(logging.WARNING, logger="perpsignal_ingestor"):
        events = await poller.poll()

    candles = [e for e in events if isinstance(e, CandleClosedV1)]
    # the good rows around the bad one are still there; the bad one is simply absent
    assert [c.open_time.timestamp() * 1000 for c in candles] == [rows[0][0], rows[2][0]]
    assert rejected("binance", reason) == before + 1
    (line,) = [r for r in caplog.records if "refused" in r.getMessage()]
    assert line.exc_info is None and line.reason == reason  # type: ignore[attr-defined]


async def test_an_answer_of_many_bad_rows_is_one_log_line_not_one_per_row(
    fake: FakeVendors, caplog: pytest.LogCaptureFixture
) -> None:
    """Every row of a 2,000-row klines answer with a NaN close: each was a warning line, so
    one hostile answer per symbol and minute wrote thousands of lines (a 32 MiB answer
    holds ~250,000 rows). Each is still counted; the log says it once."""
    rows = klines(fake, 2000)
    for row in rows:
        row[4] = "NaN"
    fake.set_body("binance", "/fapi/v1/klines", rows)
    clock = FakeClock(T0)
    poller = BinanceMarketPoller(
        client(fake, clock), Universe(["BTCUSDT"], clock=clock.time), ["5m"], clock=clock.time
    )
    before = rejected("binance", "close:finite_number")
    with caplog.at_level(logging.WARNING, logger="perpsignal_ingestor"):
        events = await poller.poll()
    assert not [e for e in events if isinstance(e, CandleClosedV1)]
    assert rejected("binance", "close:finite_number") == before + 2000
    lines = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(lines) == 1


async def test_one_cause_refusing_every_symbol_is_one_warning_a_minute(
    fake: FakeVendors, caplog: pytest.LogCaptureFixture
) -> None:
    """Our clock minutes behind Binance's: every symbol's open interest is "in the future"
    and refused. One warning line per source and reason a minute (with how many were
    refused quietly since), not one per symbol and poll; the metric counts every one."""
    ahead_ms = int((time.time() + 3600) * 1000)  # the contract holds times to the real clock
    item = fake.load("binance", "fapi_v1_openInterest.doc_current.json")
    fake.set_body(
        "binance", "/fapi/v1/openInterest", lambda q: dict(item, time=ahead_ms, symbol=q["symbol"])
    )
    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT"]
    clock = FakeClock(T0)
    poller = BinanceMarketPoller(
        client(fake, clock), Universe(symbols, clock=clock.time), [], clock=clock.time
    )
    before = rejected("binance", "observed_at:value_error")
    with caplog.at_level(logging.WARNING, logger="perpsignal_ingestor"):
        for _ in range(3):
            events = await poller.poll()
            assert not [e for e in events if e.type == "market.open_interest"]
    assert rejected("binance", "observed_at:value_error") == before + 12
    lines = [r for r in caplog.records if "refused" in r.getMessage()]
    assert len(lines) == 1, [r.getMessage() for r in lines]


async def test_a_hostile_bulk_item_costs_only_its_symbol(fake: FakeVendors) -> None:
    item = fake.load("binance", "fapi_v1_premiumIndex.doc_current.json")
    good, bad = dict(item, symbol="BTCUSDT"), dict(item, symbol="ETHUSDT", markPrice="-1")
    fake.set_body("binance", "/fapi/v1/premiumIndex", [good, bad])
    clock = FakeClock(T0)
    universe = Universe(["BTCUSDT", "ETHUSDT"], clock=clock.time)
    poller = BinanceMarketPoller(client(fake, clock), universe, [], clock=clock.time)
    before = rejected("binance", "mark_price:greater_than_equal")
    events = await poller.poll()
    assert {e.symbol for e in events if e.type == "market.funding"} == {"BTCUSDT"}
    assert rejected("binance", "mark_price:greater_than_equal") == before + 1


@pytest.mark.parametrize("field", ["lastFundingRate", "markPrice", "indexPrice"])
async def test_a_boolean_where_a_number_goes_is_refused_not_read_as_one(
    fake: FakeVendors, field: str
) -> None:
    """Pydantic reads `true` as 1.0: ETH's funding rate became 100 % per interval (the most
    extreme funding factor of every symbol) or its mark price 1 USDT, both within the
    contract's bounds, so published. A boolean is no number: that symbol's event is refused."""
    item = fake.load("binance", "fapi_v1_premiumIndex.doc_current.json")
    good, bad = dict(item, symbol="BTCUSDT"), dict(item, symbol="ETHUSDT", **{field: True})
    fake.set_body("binance", "/fapi/v1/premiumIndex", [good, bad])
    clock = FakeClock(T0)
    universe = Universe(["BTCUSDT", "ETHUSDT"], clock=clock.time)
    poller = BinanceMarketPoller(client(fake, clock), universe, [], clock=clock.time)
    events = await poller.poll()
    assert {e.symbol for e in events if e.type == "market.funding"} == {"BTCUSDT"}


async def test_a_candle_sent_twice_with_other_values_is_published_once(
    fake: FakeVendors, producer: RecordingProducer
) -> None:
    """Two rows for one open time (a vendor or proxy repeating a row with other values) give
    two candles with one deterministic id: both went out in one batch, so consumers holding
    "one id, one fact" (the first seen wins, or the last written) disagreed on the candle."""
    rows = klines(fake, 2)
    repeated = deepcopy(rows[0])
    repeated[4] = repeated[2]  # the same candle closing at its high
    fake.set_body("binance", "/fapi/v1/klines", [rows[0], repeated, rows[1]])
    clock = FakeClock(T0)
    poller = BinanceMarketPoller(
        client(fake, clock), Universe(["BTCUSDT"], clock=clock.time), ["5m"], clock=clock.time
    )
    await Publisher(producer).publish("binance", await poller.poll())
    candles = [e for e in producer.events if isinstance(e, CandleClosedV1)]
    assert len(candles) == 2 and len({c.event_id for c in candles}) == 2
    assert candles[0].close == float(rows[0][4])  # the first copy, as a consumer keeps it


async def test_klines_of_another_interval_are_not_published_as_this_one(
    fake: FakeVendors, caplog: pytest.LogCaptureFixture
) -> None:
    """A cache that ignores the query (or a vendor bug) answers a 15m request with the 5m
    rows: each 5m candle was published as the 15m candle closing at its close (a third of
    the volume, another range) under the id of the real one, which was then skipped as
    already published. A row whose span is not the timeframe's is refused."""
    rows = klines(fake, 6)
    fake.set_body("binance", "/fapi/v1/klines", rows)
    clock = FakeClock(T0)
    poller = BinanceMarketPoller(
        client(fake, clock), Universe(["BTCUSDT"], clock=clock.time), ["15m"], clock=clock.time
    )
    with caplog.at_level(logging.WARNING, logger="perpsignal_ingestor"):
        events = await poller.poll()
    assert not [e for e in events if isinstance(e, CandleClosedV1)]
    assert any("refused" in r.getMessage() for r in caplog.records)


async def test_a_delivery_contract_in_the_bulk_premium_index_costs_no_funding(
    fake: FakeVendors,
) -> None:
    """The all-symbols premium index lists delivery contracts too, and Binance documents
    theirs with `"lastFundingRate": ""`, `"interestRate": ""` and `"nextFundingTime": 0`.
    The blank failed the whole answer's wire model: no funding rate nor mark price of any
    symbol was published, every minute, and settled funding was never fetched."""
    item = fake.load("binance", "fapi_v1_premiumIndex.doc_current.json")
    delivery = dict(
        item, symbol="BTCUSDT_250328", lastFundingRate="", interestRate="", nextFundingTime=0
    )
    rows = [dict(item, symbol="BTCUSDT"), delivery, dict(item, symbol="ETHUSDT")]
    fake.set_body("binance", "/fapi/v1/premiumIndex", rows)
    clock = FakeClock(T0)
    universe = Universe(["BTCUSDT", "ETHUSDT"], clock=clock.time)
    poller = BinanceMarketPoller(client(fake, clock), universe, [], clock=clock.time)
    events = await poller.poll()
    funding = {e.symbol: e for e in events if e.type == "market.funding"}
    assert sorted(funding) == ["BTCUSDT", "ETHUSDT"]
    assert funding["BTCUSDT"].rate == float(item["lastFundingRate"])  # type: ignore[attr-defined]
    assert poller.next_funding_ms["BTCUSDT"] == item["nextFundingTime"]


@pytest.mark.parametrize("odd", [{"markPrice": {}}, {"markPrice": "1,234.5"}, {"time": None}])
async def test_a_bulk_row_of_the_wrong_shape_costs_only_its_symbol(
    fake: FakeVendors, odd: dict[str, Any]
) -> None:
    """One contract's row of the all-symbols premium index with a value of the wrong shape
    (an object, a thousands separator, a null time) failed the whole answer: no symbol's
    funding rate nor mark price was published."""
    item = fake.load("binance", "fapi_v1_premiumIndex.doc_current.json")
    rows = [dict(item, symbol="BTCUSDT"), dict(item, symbol="ETHUSDT", **odd)]
    fake.set_body("binance", "/fapi/v1/premiumIndex", rows)
    clock = FakeClock(T0)
    universe = Universe(["BTCUSDT", "ETHUSDT"], clock=clock.time)
    poller = BinanceMarketPoller(client(fake, clock), universe, [], clock=clock.time)
    events = await poller.poll()
    assert {e.symbol for e in events if e.type == "market.funding"} == {"BTCUSDT"}


async def test_the_publisher_never_sends_what_a_consumer_would_dead_letter(
    fake: FakeVendors, producer: RecordingProducer
) -> None:
    clock = FakeClock(T0)
    fake.set_body("binance", "/fapi/v1/klines", klines(fake, 2))
    poller = BinanceMarketPoller(
        client(fake, clock), Universe(["BTCUSDT"], clock=clock.time), ["5m"], clock=clock.time
    )
    good = [e for e in await poller.poll() if isinstance(e, CandleClosedV1)]
    # a copy skips validation: what the publisher sees is not necessarily valid (on the
    # wire the infinity would be `null`: what a consumer refuses)
    stale = good[0].model_copy(update={"event_id": "copied", "high": float("inf")})
    publisher = Publisher(producer)
    before = rejected("binance", "high:float_type")
    assert await publisher.publish("binance", [stale, *good]) == len(good)
    assert producer.events == good
    assert publisher.refused == 1
    assert rejected("binance", "high:float_type") == before + 1


async def test_one_odd_coin_costs_only_itself(fake: FakeVendors) -> None:
    (btc,) = fake.load("coingecko", "coins_markets.json")
    odd_symbol = dict(btc, id="fire", symbol="🔥")
    negative = dict(btc, id="neg", symbol="neg", market_cap=-5)
    fake.set_body("coingecko", "/coins/markets", [odd_symbol, btc, negative])
    clock = FakeClock(T0)
    http = CoinGeckoHttp(fake.url("coingecko"), clock=clock.time, sleep=clock.sleep)
    before = rejected("coingecko", "symbol:string_pattern_mismatch")
    before_cap = rejected("coingecko", "market_cap:greater_than_equal")
    try:
        # one page, one call: each refused coin is counted once
        poller = CoinGeckoPoller(http, market_cap_pages=1, volume_pages=0, new_coins=False)
        events = await poller.poll()
    finally:
        await http.aclose()
    assert [e.symbol for e in events] == ["BTCUSDT"]
    assert rejected("coingecko", "symbol:string_pattern_mismatch") == before + 1
    assert rejected("coingecko", "market_cap:greater_than_equal") == before_cap + 1
