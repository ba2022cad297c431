"""Secondary-source pollers against the fake vendors."""

from __future__ import annotations

from collections import Counter

import pytest

from perpsignal_common.errors import DependencyUnavailable
from perpsignal_common.events.market import CandleClosedV1
from perpsignal_common.retry import RetryPolicy
from perpsignal_connectors.alternative_me.http import FearGreedHttp
from perpsignal_connectors.lunarcrush.http import LunarCrushHttp
from perpsignal_connectors.okx.http import OkxHttp
from perpsignal_ingestor.publisher import Publisher
from perpsignal_ingestor.scheduler import SourceLoop
from perpsignal_ingestor.sources.vendors import FearGreedPoller, LunarCrushPoller, OkxPoller
from perpsignal_ingestor.universe import Universe
from tests.fakes.vendors import FakeVendors, Fault
from tests.unit.connectors.clock import FakeClock


async def test_lunarcrush_list_and_series_of_watched_coins(fake: FakeVendors) -> None:
    clock = FakeClock()
    client = LunarCrushHttp(
        "key",
        fake.url("lunarcrush"),
        clock=clock.time,
        sleep=clock.sleep,
        retry=RetryPolicy(max_attempts=1),
    )
    poller = LunarCrushPoller(client, Universe(["BTCUSDT", "ETHUSDT"]), series_coins=2)
    events = await poller.poll()
    body_list = fake.load("lunarcrush", "coins_list_v2.json")["data"]
    body_series = fake.load("lunarcrush", "coins_coin_time-series_v2.json")["data"]
    counts = Counter(e.type for e in events)
    assert counts["market.coin_profile"] == len(body_list)
    assert counts["market.social"] == len(body_list) + 2 * len(body_series)
    assert fake.requests[("lunarcrush", "/public/coins/btc/time-series/v2")] == 1
    # a broken series answer costs only that coin's series
    fake.inject("lunarcrush", "/public/coins/eth", Fault("wrong_types"))
    again = await poller.poll()
    assert Counter(e.type for e in again)["market.social"] == len(body_list) + len(body_series)
    await client.aclose()


async def test_fear_greed_poller(fake: FakeVendors) -> None:
    clock = FakeClock()
    client = FearGreedHttp(fake.env()["FEAR_GREED_URL"], clock=clock.time, sleep=clock.sleep)
    events = await FearGreedPoller(client).poll()
    raw = fake.load("alternative_me", "fng_limit2.json")["data"]
    assert sorted(e.value for e in events) == sorted(int(r["value"]) for r in raw)
    await client.aclose()


@pytest.mark.parametrize(
    "odd",
    [
        {"timestamp": "1777161600000"},  # milliseconds: year 58,000, beyond datetime
        {"timestamp": str(2**40)},  # ahead of the clock
        {"timestamp": "1200000000"},  # 2008: before any crypto market
    ],
)
async def test_one_odd_fear_greed_day_costs_only_itself(fake: FakeVendors, odd) -> None:
    """The index of the older day with an odd time: the whole poll raised, so today's value
    was not published either and the source went down."""
    body = fake.load("alternative_me", "fng_limit2.json")
    body["data"][1].update(odd)
    fake.set_body("alternative_me", "/fng/", body)
    clock = FakeClock()
    client = FearGreedHttp(fake.env()["FEAR_GREED_URL"], clock=clock.time, sleep=clock.sleep)
    try:
        events = await FearGreedPoller(client).poll()
    finally:
        await client.aclose()
    assert [e.value for e in events] == [int(body["data"][0]["value"])]


async def test_a_timeframe_okx_lacks_costs_only_itself(fake: FakeVendors) -> None:
    """INGESTOR_TIMEFRAMES with 8h (a Binance and contract timeframe; OKX has 6H and 12H
    only): its bar lookup raised a KeyError out of the poll, so no OKX candle of any symbol
    or timeframe was published, every minute."""
    clock = FakeClock(1_700_000_000.0 - 1_700_000_000.0 % 28_800 + 30)
    fake.clock = clock.time
    client = OkxHttp(fake.url("okx"), clock=clock.time, sleep=clock.sleep)
    poller = OkxPoller(client, Universe(["BTCUSDT"]), ["BTCUSDT"], ["5m", "8h"], clock=clock.time)
    try:
        events = await poller.poll()
    finally:
        await client.aclose()
    assert [e for e in events if isinstance(e, CandleClosedV1)]
    assert {q["bar"] for v, _, q in fake.calls if v == "okx"} == {"5m"}


@pytest.mark.parametrize(
    "env", [{"INGESTOR_TIMEFRAMES": "5m,3m"}, {"INGESTOR_COINGLASS_INTERVAL": "12h"}]
)
def test_an_unknown_timeframe_is_refused_at_start(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A Binance interval the contract has no candle for ("3m") passed the settings, then
    every Binance poll raised a KeyError (no candle, ticker, funding or open interest of any
    symbol); Coinglass's "12h" did the same to every Coinglass poll. Refused at start."""
    from perpsignal_ingestor.settings import IngestorSettings

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValueError, match="unknown timeframes"):
        IngestorSettings()


@pytest.mark.parametrize(
    "env",
    [
        {"INGESTOR_LIQUIDATION_WINDOW_S": "0"},
        {"INGESTOR_FEAR_GREED_CADENCE_S": "0"},
        {"INGESTOR_BINANCE_CADENCE_S": "-60"},
        {"INGESTOR_HTTP_TIMEOUT_S": "0"},
    ],
)
def test_a_period_that_is_no_positive_duration_is_refused_at_start(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A zero liquidation window divided by zero in the bucket flush (the process ended
    within 5 s of every start); a zero or negative cadence polled its vendor back to back."""
    from perpsignal_ingestor.settings import IngestorSettings

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValueError, match="above 0"):
        IngestorSettings()


async def test_okx_candles_kafka_did_not_acknowledge_are_fetched_again(
    fake: FakeVendors, producer
) -> None:
    """The next poll publishes what Kafka refused (README): an OKX candle must not wait for
    the next close of its timeframe (4 h for a 4h candle) to be fetched again."""
    clock = FakeClock(1_700_000_000.0 - 1_700_000_000.0 % 14_400 + 30)
    fake.clock = clock.time
    client = OkxHttp(fake.url("okx"), clock=clock.time, sleep=clock.sleep)
    poller = OkxPoller(client, Universe(["BTCUSDT"]), ["BTCUSDT"], ["5m", "4h"], clock=clock.time)
    loop = SourceLoop("okx", 60, poller.poll, Publisher(producer), on_published=poller.acknowledge)
    try:
        producer.fail = DependencyUnavailable("broker down")
        with pytest.raises(DependencyUnavailable):
            await loop.run_once()
        producer.fail = None
        clock.t += 60  # same candles: no new close since
        await loop.run_once()
        assert {e.timeframe for e in producer.events if isinstance(e, CandleClosedV1)} == {
            "5m",
            "4h",
        }
        requests = fake.requests[("okx", "/api/v5/market/candles")]
        clock.t += 60
        await loop.run_once()  # published: not fetched again before the next close
        assert fake.requests[("okx", "/api/v5/market/candles")] == requests
    finally:
        await client.aclose()
