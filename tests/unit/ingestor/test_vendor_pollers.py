"""Secondary-source pollers against the fake vendors."""

from __future__ import annotations

import contextlib
import time
from collections import Counter
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from perpsignal_common.errors import DependencyUnavailable
from perpsignal_common.events.market import CandleClosedV1
from perpsignal_common.retry import RetryPolicy
from perpsignal_connectors.alternative_me.http import FearGreedHttp
from perpsignal_connectors.coinapi.http import CoinApiHttp
from perpsignal_connectors.coingecko.http import CoinGeckoHttp
from perpsignal_connectors.lunarcrush.http import LunarCrushHttp
from perpsignal_connectors.okx.http import OkxHttp
from perpsignal_ingestor.publisher import Publisher
from perpsignal_ingestor.scheduler import SourceLoop
from perpsignal_ingestor.sources.vendors import (
    CoinApiPoller,
    CoinGeckoPoller,
    FearGreedPoller,
    LunarCrushPoller,
    OkxPoller,
)
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


@pytest.fixture
def new_york(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """The process's local time is New York's (UTC-5/-4), as on a host not set to UTC."""
    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        yield
    finally:
        monkeypatch.undo()
        time.tzset()


def _zoneless(iso: str) -> str:
    """A recorded UTC time as a vendor may also write it: without its `Z`."""
    assert iso.endswith("Z")
    return iso[:-1]


def _utc(iso: str) -> datetime:
    return datetime.fromisoformat(iso[:26].rstrip("Z") + "+00:00")


async def test_coinapi_trade_times_without_a_zone_are_utc_on_any_host(
    fake: FakeVendors, new_york: None
) -> None:
    """CoinAPI's times are UTC (its docs); one written without `Z` was read as the host's
    local time: on a New York host each whale trade was published 4 to 5 hours late."""
    raw = fake.load("coinapi", "v1_trades_symbol_id_latest.json")
    fake.set_body(
        "coinapi",
        "/v1/trades/BINANCEFTS_PERP_BTC_USDT/latest",
        [
            {
                **r,
                "symbol_id": "BINANCEFTS_PERP_BTC_USDT",
                "time_exchange": _zoneless(r["time_exchange"]),
            }
            for r in raw
        ],
    )
    client = CoinApiHttp("key", fake.url("coinapi"))
    events = await CoinApiPoller(client, Universe(["BTCUSDT"]), 0.0, max_symbols=1).poll()
    await client.aclose()
    by_id = {e.trade_id: e.observed_at for e in events}  # type: ignore[attr-defined]
    wanted = {
        r["uuid"]: _utc(r["time_exchange"]) for r in raw if r["taker_side"] in ("BUY", "SELL")
    }
    assert by_id == wanted


async def test_coingecko_update_times_without_a_zone_are_utc_on_any_host(
    fake: FakeVendors, new_york: None
) -> None:
    """CoinGecko's `last_updated` is UTC; without its `Z` it was read as New York time."""
    raw = fake.load("coingecko", "coins_markets.json")
    fake.set_body(
        "coingecko",
        "/coins/markets",
        [{**r, "last_updated": _zoneless(r["last_updated"])} for r in raw],
    )
    client = CoinGeckoHttp(fake.url("coingecko"))
    poller = CoinGeckoPoller(client, market_cap_pages=1, volume_pages=0, new_coins=False)
    events = await poller.poll()
    await client.aclose()
    assert [(e.coin_id, e.observed_at) for e in events] == [  # type: ignore[attr-defined]
        (r["id"], _utc(r["last_updated"])) for r in raw
    ]


async def test_coinapi_history_from_an_aware_time_asks_from_its_utc_time(
    fake: FakeVendors,
) -> None:
    """`time_start` is sent without a zone, which CoinAPI reads as UTC: an aware start in
    another zone (09:00 at UTC+2) was sent as its wall time, asking from two hours later."""
    client = CoinApiHttp("key", fake.url("coinapi"))
    start = datetime(2024, 3, 6, 9, 0, tzinfo=timezone(timedelta(hours=2)))
    rows = await client.fetch_ohlcv("BINANCEFTS_PERP_BTC_USDT", "1h", start)
    await client.aclose()
    assert rows
    [(_, _, query)] = [c for c in fake.calls if c[0] == "coinapi"]
    assert query["time_start"] == "2024-03-06T07:00:00"


async def test_coinapi_polls_stay_within_the_plans_daily_credits_and_say_when_spent(
    shared_data: Path,
) -> None:
    """CoinAPI counts credits over 24 hours (100 on the free plan); the budget was 100 per
    minute, so six symbols every 5 minutes spent a free key in under 90 minutes and then
    earned a 429 on every poll for the rest of the day. Now the ingestor spends at most 80 %
    of the plan (a setting), and a poll past it calls nothing and fails saying so."""
    clock = FakeClock(t=86_400 * 20_000 + 60)  # just after a UTC midnight
    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "BNBUSDT", "DOGEUSDT"]
    async with FakeVendors(shared_data, clock=clock.time) as server:
        server.coinapi_plan = 100
        client = CoinApiHttp(
            "key", server.url("coinapi"), clock=clock.time, sleep=clock.sleep, daily_credits=100
        )
        poller = CoinApiPoller(client, Universe(symbols), 0.0)
        failures: list[str] = []
        for _ in range(12 * 20):  # 20 hours at the default cadence (300 s)
            try:
                await poller.poll()
            except Exception as exc:  # every request of the poll failed
                failures.append(str(exc))
            clock.t += 300
        await client.aclose()
    statuses = Counter(c[0] for c in server.calls)
    assert statuses["coinapi"] == 80  # 80 % of the plan: other users of the key have room
    assert len(server.coinapi_charged) == 80  # and never a call the vendor refused
    assert failures and "credits_24h" in failures[-1], failures[-1:]


async def test_coinapi_credits_freed_by_the_rolling_day_are_spent_every_day(
    shared_data: Path,
) -> None:
    """CoinAPI counts the last 24 hours, not a calendar day: a key spent by 01:10 still has
    those 80 credits counted at the next midnight. The budget adopted that count on its
    first call of the new day and sat spent until the following midnight, so every other day
    had CoinAPI data for one poll. Now the budget is a rolling 24 h too: a call's credit is
    spent again once the call has left the vendor's window."""
    day0 = 86_400 * 20_000
    clock = FakeClock(t=day0 + 60)
    symbols = ["BTCUSDT", "ETHUSDT", "SOLUSDT", "XRPUSDT", "BNBUSDT", "DOGEUSDT"]
    per_day: list[int] = []
    async with FakeVendors(shared_data, clock=clock.time) as server:
        server.coinapi_plan = 100
        client = CoinApiHttp(
            "key", server.url("coinapi"), clock=clock.time, sleep=clock.sleep, daily_credits=100
        )
        poller = CoinApiPoller(client, Universe(symbols), 0.0)
        for day in range(3):
            while clock.t < day0 + (day + 1) * 86_400:
                with contextlib.suppress(Exception):  # a poll over the budget fails, saying so
                    await poller.poll()
                clock.t += 300
            start = day0 + day * 86_400
            per_day.append(sum(start <= t < start + 86_400 for t in server.coinapi_charged))
        await client.aclose()
    # 80 % of the plan each day, not 80, then one poll's worth, then 80
    assert all(70 <= n <= 80 for n in per_day), per_day
    # and never a call the vendor refused (a 429)
    assert len([c for c in server.calls if c[0] == "coinapi"]) == sum(per_day)


async def test_coinapi_credits_spent_by_other_users_of_the_key_count(shared_data: Path) -> None:
    """`x-ratelimit-used` is the key's whole use: what other programs spent beyond the
    gateway's share (10 % by default) is adopted, and the ingestor stops leaving the
    gateway its share, before the vendor refuses anyone."""
    clock = FakeClock(t=86_400 * 20_000 + 60)
    async with FakeVendors(shared_data, clock=clock.time) as server:
        server.coinapi_plan = 100
        server.coinapi_spent_elsewhere = 79
        client = CoinApiHttp(
            "key", server.url("coinapi"), clock=clock.time, sleep=clock.sleep, daily_credits=100
        )
        poller = CoinApiPoller(client, Universe(["BTCUSDT"]), 0.0, max_symbols=1)
        for _ in range(11):  # 79 + 11 = 90: what is left is the gateway's 10
            await poller.poll()
            clock.t += 300
        for _ in range(3):
            with pytest.raises(Exception, match="credits_24h"):
                await poller.poll()
            clock.t += 300
        await client.aclose()
    assert len(server.coinapi_charged) == 11


async def test_the_gateway_spending_its_daily_share_leaves_the_ingestor_its_credits(
    shared_data: Path,
) -> None:
    """The gateway's `/invoke coinapi.*` spends the same key: its share spent first (10 of a
    free plan's 100), the ingestor adopted the key's use as its own and polled 70 times,
    not its 80. The gateway's share is now not counted against the ingestor."""
    clock = FakeClock(t=86_400 * 20_000 + 60)
    async with FakeVendors(shared_data, clock=clock.time) as server:
        server.coinapi_plan = 100
        server.coinapi_spent_elsewhere = 10  # the gateway's share (GATEWAY_COINAPI_DAILY_SHARE)
        client = CoinApiHttp(
            "key", server.url("coinapi"), clock=clock.time, sleep=clock.sleep, daily_credits=100
        )
        poller = CoinApiPoller(client, Universe(["BTCUSDT"]), 0.0, max_symbols=1)
        for _ in range(100):
            with contextlib.suppress(Exception):
                await poller.poll()
            clock.t += 300
        await client.aclose()
    assert len(server.coinapi_charged) == 80
