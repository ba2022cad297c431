"""Binance pollers against the fake vendor: what one cycle publishes, and what a bad answer
for one request does to the rest of the cycle."""

from __future__ import annotations

import random
from collections import Counter

import httpx
import pytest

from perpsignal_common.errors import DependencyUnavailable
from perpsignal_common.retry import RetryPolicy
from perpsignal_connectors.binance_usdm import constants as bc
from perpsignal_connectors.binance_usdm.http import BinanceUsdmHttp
from perpsignal_connectors.ratelimit import RateLimiter
from perpsignal_ingestor.publisher import Publisher
from perpsignal_ingestor.scheduler import SourceLoop
from perpsignal_ingestor.sources.binance import (
    BinanceFundingPoller,
    BinanceMarketPoller,
    BinanceRatiosPoller,
)
from perpsignal_ingestor.universe import Universe
from tests.fakes.vendors import FakeVendors, Fault
from tests.unit.connectors.clock import FakeClock

T0 = 1_700_000_000.0 - 1_700_000_000.0 % 14_400 + 30  # 30 s after a 4h boundary


def client(fake: FakeVendors, clock: FakeClock) -> BinanceUsdmHttp:
    fake.clock = clock.time
    return BinanceUsdmHttp(
        fake.url("binance"),
        limiter=RateLimiter(bc.quotas(1200), clock=clock.time, sleep=clock.sleep),
        retry=RetryPolicy(max_attempts=2, sleep=clock.sleep, rng=random.Random(0)),
        timeout=httpx.Timeout(5),
        clock=clock.time,
    )


async def test_market_cycle_publishes_each_kind_for_tracked_symbols(fake: FakeVendors) -> None:
    clock = FakeClock(T0)
    universe = Universe(["BTCUSDT", "ETHUSDT"], clock=clock.time)
    poller = BinanceMarketPoller(client(fake, clock), universe, ["5m", "1h"], clock=clock.time)
    events = await poller.poll()
    kinds = Counter((e.type, e.symbol) for e in events)
    for sym in ("BTCUSDT", "ETHUSDT"):
        assert kinds[("market.funding", sym)] == 1
        assert kinds[("market.ticker", sym)] == 1
        assert kinds[("market.open_interest", sym)] == 1
        # the recorded klines body has 2 closed 5m candles; asked for each timeframe
        assert kinds[("market.candle", sym)] == 4
    assert fake.requests[("binance", "/fapi/v1/premiumIndex")] == 1  # one bulk call
    assert fake.requests[("binance", "/fapi/v1/klines")] == 4


async def test_klines_are_fetched_only_after_a_new_close(fake: FakeVendors) -> None:
    clock = FakeClock(T0)
    universe = Universe(["BTCUSDT"], clock=clock.time)
    poller = BinanceMarketPoller(client(fake, clock), universe, ["5m", "4h"], clock=clock.time)
    await poller.poll()
    poller.acknowledge()  # the loop reports the events published
    assert fake.requests[("binance", "/fapi/v1/klines")] == 2
    clock.t += 60  # same 5m and 4h candles still forming
    await poller.poll()
    poller.acknowledge()
    assert fake.requests[("binance", "/fapi/v1/klines")] == 2
    clock.t += 300  # a 5m candle closed, the 4h did not
    await poller.poll()
    assert fake.requests[("binance", "/fapi/v1/klines")] == 3
    # not acknowledged (the publish failed): the same candle is fetched again next poll
    clock.t += 60
    await poller.poll()
    assert fake.requests[("binance", "/fapi/v1/klines")] == 4


async def test_one_malformed_answer_spoils_only_its_own_events(fake: FakeVendors) -> None:
    clock = FakeClock(T0)
    universe = Universe(["BTCUSDT"], clock=clock.time)
    poller = BinanceMarketPoller(client(fake, clock), universe, ["5m"], clock=clock.time)
    fake.inject("binance", "/fapi/v1/premiumIndex", Fault("wrong_types"))
    fake.inject("binance", "/fapi/v1/klines", Fault("truncated"))
    events = await poller.poll()
    types = {e.type for e in events}
    assert "market.funding" not in types and "market.candle" not in types
    assert {"market.ticker", "market.open_interest"} <= types
    # the failed klines fetch is retried on the next cycle, even within the same candle
    clock.t += 60
    assert any(e.type == "market.candle" for e in await poller.poll())


async def test_ratios_and_settled_funding(fake: FakeVendors) -> None:
    clock = FakeClock(T0)
    universe = Universe(["BTCUSDT"], clock=clock.time)
    http = client(fake, clock)
    ratios = await BinanceRatiosPoller(http, universe).poll()
    assert Counter(e.type for e in ratios) == {
        "market.open_interest": 2,
        "market.long_short_ratio": 6,
        "market.taker_flow": 2,
    }
    market = BinanceMarketPoller(http, universe, [], clock=clock.time)
    funding = BinanceFundingPoller(http, universe, market, clock=clock.time)
    await market.poll()  # learns the next funding time (in the past in the recorded body)
    settled = await funding.poll()
    assert settled and all(e.settled for e in settled)
    funding.acknowledge()  # the loop reports the events published
    assert await funding.poll() == []  # once per settlement


async def test_a_settled_rate_without_a_mark_price_is_published_without_one(
    fake: FakeVendors,
) -> None:
    """Binance's funding history carries `"markPrice": ""` where it has none (every early
    record, as recorded by others): the blank failed the answer's wire model, so the settled
    rate was never published. The rate is the fact; the mark price is unknown, not zero."""
    rows = fake.load("binance", "fapi_v1_fundingRate.doc_current.json")
    for row in rows:
        row["markPrice"] = ""
    fake.set_body("binance", "/fapi/v1/fundingRate", rows)
    clock = FakeClock(T0)
    universe = Universe(["BTCUSDT"], clock=clock.time)
    http = client(fake, clock)
    market = BinanceMarketPoller(http, universe, [], clock=clock.time)
    funding = BinanceFundingPoller(http, universe, market, clock=clock.time)
    await market.poll()
    settled = await funding.poll()
    assert [e.rate for e in settled] == [float(r["fundingRate"]) for r in rows]  # type: ignore[attr-defined]
    assert all(e.mark_price is None for e in settled)  # type: ignore[attr-defined]


async def test_a_body_that_is_not_the_gzip_it_claims_costs_only_its_request(
    fake: FakeVendors,
) -> None:
    """`Content-Encoding: gzip` on a body that is not gzip: the decoder fails (a zlib error), which
    is no transport error; it escaped the client and the poll, so no symbol's events were
    published that minute (nor counted as a vendor error)."""
    clock = FakeClock(T0)
    universe = Universe(["BTCUSDT", "ETHUSDT"], clock=clock.time)
    poller = BinanceMarketPoller(client(fake, clock), universe, ["5m"], clock=clock.time)
    fake.inject("binance", "/fapi/v1/openInterest", Fault("bad_gzip"))
    events = await poller.poll()
    kinds = Counter(e.type for e in events)
    assert kinds["market.open_interest"] == 1 and kinds["market.candle"] == 4


async def test_ratios_of_another_symbol_are_not_published_as_this_one(
    fake: FakeVendors,
) -> None:
    """A cache that ignores the query (or a vendor bug) answers ETHUSDT's long/short request
    with BTCUSDT's rows, which name their symbol: they were published as ETHUSDT's
    positioning (the parser keyed them by the requested symbol)."""
    btc = fake.load("binance", "futures_data_globalLongShortAccountRatio.doc_current.json")
    for name in (
        "globalLongShortAccountRatio",
        "topLongShortAccountRatio",
        "topLongShortPositionRatio",
    ):
        fake.set_body("binance", f"/futures/data/{name}", btc)
    clock = FakeClock(T0)
    universe = Universe(["BTCUSDT", "ETHUSDT"], clock=clock.time)
    events = await BinanceRatiosPoller(client(fake, clock), universe).poll()
    ratios = [e for e in events if e.type == "market.long_short_ratio"]
    assert ratios and {e.symbol for e in ratios} == {"BTCUSDT"}


async def test_a_time_beyond_year_9999_in_one_row_costs_only_that_row(fake: FakeVendors) -> None:
    """A hostile open time (year 10000: Python cannot even represent it) is refused like any
    other out-of-contract time; it must not fail the whole poll of every symbol."""
    clock = FakeClock(T0)
    universe = Universe(["BTCUSDT", "ETHUSDT"], clock=clock.time)
    poller = BinanceMarketPoller(client(fake, clock), universe, ["5m"], clock=clock.time)
    recorded = fake.load("binance", "fapi_v1_klines.thirdparty_doc.json")

    def klines(q: dict[str, str]) -> list[list[object]]:
        rows = [list(r) for r in recorded]
        if q["symbol"] == "BTCUSDT":
            rows[0][0] = 253_402_300_800_000  # 10000-01-01 in ms
        return rows

    oi = fake.load("binance", "fapi_v1_openInterest.doc_current.json")

    def open_interest(q: dict[str, str]) -> dict[str, object]:
        far = {"time": 10**17} if q["symbol"] == "ETHUSDT" else {}
        return {**oi, "symbol": q["symbol"], **far}

    fake.set_body("binance", "/fapi/v1/klines", klines)
    fake.set_body("binance", "/fapi/v1/openInterest", open_interest)
    events = await poller.poll()
    candles = Counter(e.symbol for e in events if e.type == "market.candle")
    assert candles == {"ETHUSDT": 2, "BTCUSDT": 1}
    kinds = {(e.type, e.symbol) for e in events}
    assert ("market.ticker", "BTCUSDT") in kinds and ("market.funding", "ETHUSDT") in kinds
    assert ("market.open_interest", "BTCUSDT") in kinds
    assert ("market.open_interest", "ETHUSDT") not in kinds


async def test_a_candle_whose_publish_failed_stays_due_when_its_refetch_fails(
    fake: FakeVendors, producer
) -> None:
    """Kafka refused a poll's candles; the next poll's klines request for them fails (a 503)
    while the rest of that poll is published: the candles are still owed, not marked done."""
    clock = FakeClock(T0)
    universe = Universe(["BTCUSDT"], clock=clock.time)
    poller = BinanceMarketPoller(client(fake, clock), universe, ["5m"], clock=clock.time)
    loop = SourceLoop(
        "binance",
        60,
        poller.poll,
        Publisher(producer),
        on_published=poller.acknowledge,
    )

    def candles() -> list[object]:
        return [e for e in producer.events if e.type == "market.candle"]

    producer.fail = DependencyUnavailable("broker down")
    with pytest.raises(DependencyUnavailable):
        await loop.run_once()
    producer.fail = None
    clock.t += 60  # the same 5m candle is the latest closed one
    fake.inject("binance", "/fapi/v1/klines", Fault("status", status=503, times=2))
    await loop.run_once()
    assert not candles() and any(e.type == "market.ticker" for e in producer.events)
    clock.t += 60
    await loop.run_once()
    assert len(candles()) == 2


async def test_a_settled_funding_rate_kafka_refused_is_fetched_again(
    fake: FakeVendors, producer
) -> None:
    """Settled funding is fetched once per settlement: if Kafka refused it, the next poll must
    fetch it again, or that settlement's rate is never published (the next one is 8 h on)."""
    clock = FakeClock(T0)
    universe = Universe(["BTCUSDT"], clock=clock.time)
    http = client(fake, clock)
    market = BinanceMarketPoller(http, universe, [], clock=clock.time)
    funding = BinanceFundingPoller(http, universe, market, clock=clock.time)
    loop = SourceLoop(
        "binance_funding", 60, funding.poll, Publisher(producer), on_published=funding.acknowledge
    )
    await market.poll()  # learns the next funding time (in the past in the recorded body)
    producer.fail = DependencyUnavailable("broker down")
    with pytest.raises(DependencyUnavailable):
        await loop.run_once()
    producer.fail = None
    clock.t += 60
    await loop.run_once()
    settled = [e for e in producer.events if e.type == "market.funding"]
    assert settled and all(e.settled for e in settled)
    clock.t += 60
    await loop.run_once()  # published: once per settlement
    assert [e for e in producer.events if e.type == "market.funding"] == settled
