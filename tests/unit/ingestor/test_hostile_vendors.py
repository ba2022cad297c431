"""Vendor answers that look like data but are not: none of them may reach a published event."""

from __future__ import annotations

import pytest

from perpsignal_common.errors import PermanentError, RateLimited
from perpsignal_common.retry import RetryPolicy
from perpsignal_connectors.alternative_me.http import FearGreedHttp
from perpsignal_connectors.coinapi.http import CoinApiHttp
from perpsignal_connectors.coingecko.http import CoinGeckoHttp
from perpsignal_connectors.coinglass.http import CoinglassHttp
from perpsignal_connectors.errors import MalformedResponse
from perpsignal_connectors.ids import ms_to_dt
from perpsignal_connectors.lunarcrush.http import LunarCrushHttp
from perpsignal_connectors.okx.http import OkxHttp
from perpsignal_ingestor.sources.binance import BinanceRatiosPoller
from perpsignal_ingestor.sources.guard import AllRequestsFailed
from perpsignal_ingestor.sources.vendors import (
    CoinApiPoller,
    CoinGeckoPoller,
    CoinglassPoller,
    FearGreedPoller,
    LunarCrushPoller,
    OkxPoller,
)
from perpsignal_ingestor.universe import Universe
from tests.fakes.vendors import FakeVendors
from tests.unit.connectors.clock import FakeClock
from tests.unit.ingestor.test_binance_pollers import T0
from tests.unit.ingestor.test_binance_pollers import client as binance


def lunarcrush(fake: FakeVendors) -> LunarCrushHttp:
    clock = FakeClock()
    return LunarCrushHttp(
        "key",
        fake.url("lunarcrush"),
        clock=clock.time,
        sleep=clock.sleep,
        retry=RetryPolicy(max_attempts=1),
    )


async def test_a_fear_greed_value_sent_as_a_boolean_is_not_published_as_one(
    fake: FakeVendors,
) -> None:
    """Pydantic reads `true` as 1: a broken answer's `"value": true` was published as an index
    of 1 ("Extreme Fear"), the most extreme sentiment factor there is. A boolean is no
    value: that day is dropped alone; today's value is still published."""
    body = fake.load("alternative_me", "fng_limit2.json")
    body["data"][1]["value"] = True
    fake.set_body("alternative_me", "/fng/", body)
    clock = FakeClock()
    client = FearGreedHttp(fake.env()["FEAR_GREED_URL"], clock=clock.time, sleep=clock.sleep)
    try:
        events = await FearGreedPoller(client).poll()
    finally:
        await client.aclose()
    assert [e.value for e in events] == [int(body["data"][0]["value"])]


@pytest.mark.parametrize("field", ["alt_rank", "market_cap_rank", "id"])
async def test_a_lunarcrush_rank_sent_as_a_boolean_is_not_the_best_rank(
    fake: FakeVendors, field: str
) -> None:
    """`"alt_rank": true` was published as AltRank 1 (the best coin of all), `"id": true` as
    LunarCrush's id 1 (Bitcoin's). That coin is dropped; the others are published."""
    body = fake.load("lunarcrush", "coins_list_v2.json")
    good = body["data"][0]
    body["data"] = [{**good, field: True}, {**good, "id": 99, "symbol": "ETH"}]
    fake.set_body("lunarcrush", "/public/coins/list/v2", body)
    client = lunarcrush(fake)
    try:
        events = await LunarCrushPoller(client, sorts=[("alt_rank", False, 10)]).poll()
    finally:
        await client.aclose()
    assert {e.symbol for e in events} == {"ETHUSDT"}


@pytest.mark.parametrize(
    "odd", [{"sentiment": 250}, {"galaxy_score": 1e20}, {"social_dominance": 400}]
)
async def test_a_lunarcrush_series_score_beyond_its_scale_is_not_published(
    fake: FakeVendors, odd: dict[str, float]
) -> None:
    """Sentiment, Galaxy Score and social dominance are 0-100 scales, bounded for a coin of
    the list but not for a bucket of a coin's time series: a sentiment of 250 % was
    published (the contract bounds it only as an amount). That bucket is dropped alone."""
    body = fake.load("lunarcrush", "coins_coin_time-series_v2.json")
    good = body["data"][0]
    body["data"] = [{**good, **odd}, {**good, "time": good["time"] + 3600}]
    fake.set_body("lunarcrush", "/public/coins/btc/time-series/v2", body)
    client = lunarcrush(fake)
    try:
        poller = LunarCrushPoller(client, Universe(["BTCUSDT"]), series_coins=1, sorts=())
        events = await poller.poll()
    finally:
        await client.aclose()
    assert [e.observed_at.timestamp() for e in events] == [good["time"] + 3600]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            {"status": {"error_code": 429, "error_message": "You've exceeded the Rate Limit"}},
            RateLimited,
        ),
        (
            {"error": {"status": {"error_code": 10005, "error_message": "Plan restricted"}}},
            PermanentError,
        ),
        ({"error": "invalid request"}, PermanentError),
    ],
)
async def test_a_coingecko_error_body_under_a_200_is_an_error_not_an_empty_list(
    fake: FakeVendors, body: dict[str, object], error: type[Exception]
) -> None:
    """CoinGecko's error bodies passed on under a 200 (a CDN, a proxy): the trending list read
    `{"status": {"error_code": 429, ...}}` as "no coin is trending", a poll that published
    nothing and reported the source up, never backing off. It is the error it says."""
    fake.set_body("coingecko", "/search/trending", body)
    clock = FakeClock()
    client = CoinGeckoHttp(
        fake.url("coingecko"),
        clock=clock.time,
        sleep=clock.sleep,
        retry=RetryPolicy(max_attempts=1),
    )
    try:
        with pytest.raises(error) as raised:
            await client.fetch_trending()
    finally:
        await client.aclose()
    assert not isinstance(raised.value, MalformedResponse)
    # and the poll of the newest coins fails rather than finding none
    client = CoinGeckoHttp(
        fake.url("coingecko"),
        clock=clock.time,
        sleep=clock.sleep,
        retry=RetryPolicy(max_attempts=1),
    )
    try:
        poller = CoinGeckoPoller(client, market_cap_pages=0, volume_pages=0)
        with pytest.raises(AllRequestsFailed):
            await poller.poll()
    finally:
        await client.aclose()


async def test_trades_of_another_symbol_are_not_published_as_whale_trades_of_this_one(
    fake: FakeVendors,
) -> None:
    """A cache or proxy ignoring the path answered the Binance perpetual's trades with
    Kraken's spot BTC/USD ones (their `symbol_id` says so): each was published as a whale
    trade of BTCUSDT. None of that answer is BTCUSDT's: the request fails as malformed."""
    kraken = fake.load("coinapi", "v1_trades_symbol_id_latest.json")
    fake.set_body("coinapi", "/v1/trades/BINANCEFTS_PERP_BTC_USDT/latest", kraken)
    clock = FakeClock()
    client = CoinApiHttp(
        "key",
        fake.url("coinapi"),
        clock=clock.time,
        sleep=clock.sleep,
        retry=RetryPolicy(max_attempts=1),
    )
    poller = CoinApiPoller(client, Universe(["BTCUSDT", "ETHUSDT"]), 0.0, max_symbols=2)
    try:
        events = await poller.poll()
    finally:
        await client.aclose()
    # ETH's answer (under the id asked for) is still published; BTC's is not
    assert events and {e.symbol for e in events} == {"ETHUSDT"}


async def test_okx_candles_of_another_bar_are_not_published_as_this_one(
    fake: FakeVendors,
) -> None:
    """A cache ignoring the query answered a 5m request with OKX's 1m candles (the recorded
    ones): each was published as the 5m candle closing five minutes after its open, a fifth
    of the volume under the id of the real one. A candle off the bar's grid fails the
    request; the other timeframes are published."""
    clock = FakeClock(1_747_094_400.0 + 30)  # just after the recorded candles, on a 5m close
    fake.clock = clock.time
    recorded = fake.load("okx", "api_v5_market_candles.recorded.json")
    fake.set_body(
        "okx",
        "/api/v5/market/candles",
        lambda q: recorded if q["bar"] == "5m" else fake._okx_candles(q["bar"]),
    )
    client = OkxHttp(
        fake.url("okx"), clock=clock.time, sleep=clock.sleep, retry=RetryPolicy(max_attempts=1)
    )
    poller = OkxPoller(client, Universe(["BTCUSDT"]), ["BTCUSDT"], ["5m", "15m"], clock=clock.time)
    try:
        events = await poller.poll()
    finally:
        await client.aclose()
    assert events and {e.timeframe for e in events} == {"15m"}  # type: ignore[attr-defined]


@pytest.mark.parametrize(("long", "short"), [("0.6622", "0.0000"), ("0.9000", "0.9000")])
async def test_binance_long_short_shares_that_do_not_add_up_are_not_published(
    fake: FakeVendors, long: str, short: str
) -> None:
    """Shares of accounts long and short add up to 1: a row saying 66 % long and 0 % short
    was published with Binance's own ratio in place of the one the shares give, and 90 %
    and 90 % as an evenly split crowd. Such a row is dropped alone."""
    rows = fake.load("binance", "futures_data_globalLongShortAccountRatio.doc_current.json")
    odd = {**rows[1], "longAccount": long, "shortAccount": short}
    fake.set_body("binance", "/futures/data/globalLongShortAccountRatio", [rows[0], odd])
    clock = FakeClock(T0)
    poller = BinanceRatiosPoller(binance(fake, clock), Universe(["BTCUSDT"], clock=clock.time))
    events = await poller.poll()
    kept = [e for e in events if getattr(e, "kind", None) == "global_account"]
    assert [e.observed_at for e in kept] == [ms_to_dt(int(rows[0]["timestamp"]))]


async def test_coinglass_long_short_percentages_that_do_not_add_up_are_not_published(
    fake: FakeVendors,
) -> None:
    """Coinglass's long and short percentages add up to 100; 80 % and 80 % was published as
    an evenly split crowd. Such a row is dropped alone."""
    path = "/api/futures/global-long-short-account-ratio/history"
    body = fake.load("coinglass", "long-short-ratio__global-longshort-account-ratio.json")
    first, second = body["data"]
    body["data"] = [
        first,
        {**second, "global_account_long_percent": 80, "global_account_short_percent": 80},
    ]
    fake.set_body("coinglass", path, body)
    cg = CoinglassHttp("cg-key", fake.url("coinglass"))
    try:
        events = await CoinglassPoller(cg, Universe(["BTCUSDT"]), "1h", max_coins=1).poll()
    finally:
        await cg.aclose()
    kept = [e for e in events if getattr(e, "kind", None) == "global_account"]
    assert [e.observed_at for e in kept] == [ms_to_dt(first["time"] + 3_600_000)]


async def test_a_coingecko_coin_of_an_odd_shape_costs_only_itself(fake: FakeVendors) -> None:
    """A page of coins/markets was validated as a whole: one coin's `"market_cap_rank": true`
    was published as rank 1, and a coin's unreadable price cost the other 249 of its page.
    A blank ticker was published under the key "USDT". Each such coin is dropped alone."""
    (btc,) = fake.load("coingecko", "coins_markets.json")
    page = [
        dict(btc, id="ranked-by-bool", symbol="aaa", market_cap_rank=True),
        dict(btc, id="blank", symbol=" "),
        dict(btc, id="unreadable", symbol="bbb", current_price="n/a"),
        btc,
    ]
    fake.set_body("coingecko", "/coins/markets", page)
    clock = FakeClock()
    client = CoinGeckoHttp(fake.url("coingecko"), clock=clock.time, sleep=clock.sleep)
    try:
        poller = CoinGeckoPoller(client, market_cap_pages=1, volume_pages=0, new_coins=False)
        events = await poller.poll()
    finally:
        await client.aclose()
    assert [e.symbol for e in events] == ["BTCUSDT"]


async def test_a_lunarcrush_coin_without_a_ticker_is_not_published_as_usdt(
    fake: FakeVendors,
) -> None:
    """A coin of the list with a blank `symbol` was published under the key "USDT"."""
    body = fake.load("lunarcrush", "coins_list_v2.json")
    good = body["data"][0]
    body["data"] = [{**good, "id": 98, "symbol": ""}, good]
    fake.set_body("lunarcrush", "/public/coins/list/v2", body)
    client = lunarcrush(fake)
    try:
        events = await LunarCrushPoller(client, sorts=[("market_cap_rank", False, 10)]).poll()
    finally:
        await client.aclose()
    assert {e.symbol for e in events} == {f"{good['symbol']}USDT"}
