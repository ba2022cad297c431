"""The MSS universe reaches small caps and new coins, within the vendors' call budgets.

Before: CoinGecko's top 250 by market cap and LunarCrush's top 100 by market cap, one call
each, so a coin outside the top (where MSS looks for emerging coins) was never profiled. The
bodies are the recorded/documented ones served by the fake vendor server; `/coins/markets`
answers per query with the recorded row re-keyed, so each page and sort is a different coin.
"""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

import pytest

from perpsignal_common.events.market import CoinProfileV1
from perpsignal_common.retry import RetryPolicy
from perpsignal_connectors.coingecko import constants as cg
from perpsignal_connectors.coingecko.http import CoinGeckoHttp
from perpsignal_connectors.lunarcrush import constants as lc
from perpsignal_connectors.lunarcrush.http import LunarCrushHttp
from perpsignal_ingestor.settings import IngestorSettings
from perpsignal_ingestor.sources.vendors import CoinGeckoPoller, LunarCrushPoller
from perpsignal_ingestor.universe import ScanCycle, ScanStep, SymbolOwners
from tests.fakes.vendors import FakeVendors
from tests.unit.connectors.clock import FakeClock


def _markets(fake: FakeVendors) -> Any:
    """`/coins/markets` per query: a coin per (order, page), or the coins asked by id."""
    template = fake.load("coingecko", "coins_markets.json")[0]

    def row(coin_id: str, symbol: str, cap: float) -> dict[str, Any]:
        r = copy.deepcopy(template)
        r.update(id=coin_id, symbol=symbol, name=coin_id, market_cap=cap, market_cap_rank=None)
        return r

    def answer(q: dict[str, str]) -> list[dict[str, Any]]:
        if q.get("ids"):
            return [row(i, i[:4], 5e7) for i in q["ids"].split(",")]
        order, page = q["order"].split("_")[0], q["page"]
        return [row(f"{order}-p{page}", f"{order[:3]}{page}", 2e7 if order == "volume" else 9e8)]

    return answer


def _gecko(fake: FakeVendors, *, pro: bool = False) -> CoinGeckoHttp:
    clock = FakeClock()
    return CoinGeckoHttp(
        fake.url("coingecko"),
        "demo-key",
        pro=pro,
        clock=clock.time,
        sleep=clock.sleep,
        retry=RetryPolicy(max_attempts=1),
    )


def _gecko_calls(fake: FakeVendors, since: int) -> list[tuple[str, dict[str, str]]]:
    return [(p, q) for v, p, q in fake.calls[since:] if v == "coingecko"]


async def test_coingecko_scans_pages_by_volume_and_trending_coins_within_budget(
    fake: FakeVendors,
) -> None:
    fake.set_body("coingecko", "/coins/markets", _markets(fake))
    client = _gecko(fake)
    poller = CoinGeckoPoller(client, market_cap_pages=2, volume_pages=2, calls_per_poll=3)
    profiles: list[CoinProfileV1] = []
    per_poll = []
    for _ in range(2):  # 6 calls: the whole scan
        start = len(fake.calls)
        profiles += [e for e in await poller.poll() if isinstance(e, CoinProfileV1)]
        per_poll.append(_gecko_calls(fake, start))
    assert [len(c) for c in per_poll] == [3, 3]  # never more than the budget per poll
    calls = [c for poll in per_poll for c in poll]
    scanned = {(q.get("order"), q.get("page")) for p, q in calls if "ids" not in q}
    assert {("market_cap_desc", "2"), ("volume_desc", "1"), ("volume_desc", "2")} <= scanned
    trending = [c["item"]["id"] for c in fake.load("coingecko", "search_trending.json")["coins"]]
    assert ("/search/trending", {}) in calls
    assert any(q.get("ids") == ",".join(trending) for _, q in calls)
    coins = {p.coin_id for p in profiles}
    assert {"volume-p1", "volume-p2", "market-p2", *trending} <= coins
    await client.aclose()


async def test_a_paid_plan_takes_the_newest_listings(fake: FakeVendors) -> None:
    # the documented shape of /coins/list/new (pro-api.json): id, symbol, name, activated_at
    newest = [
        {"id": "long-johnson", "symbol": "olong", "name": "Long Johnson", "activated_at": 1712562430},  # noqa: E501
        {"id": "dogita", "symbol": "doga", "name": "DOGITA", "activated_at": 1712562282},
    ]  # fmt: skip
    fake.set_body("coingecko", "/coins/list/new", newest)
    fake.set_body("coingecko", "/coins/markets", _markets(fake))
    client = _gecko(fake, pro=True)
    poller = CoinGeckoPoller(client, market_cap_pages=0, volume_pages=0, calls_per_poll=2)
    events = await poller.poll()
    assert {e.coin_id for e in events if isinstance(e, CoinProfileV1)} == {"long-johnson", "dogita"}
    assert fake.requests[("coingecko", "/search/trending")] == 0
    await client.aclose()


async def test_a_new_coin_reusing_a_ticker_does_not_replace_the_big_coin(
    fake: FakeVendors,
) -> None:
    template = fake.load("coingecko", "coins_markets.json")[0]  # bitcoin, BTC
    impostor = {**template, "id": "btc-on-base", "name": "BTC on Base", "market_cap": 2e6}
    pages = {"1": [template], "2": [impostor]}
    fake.set_body("coingecko", "/coins/markets", lambda q: pages[q["page"]])
    client = _gecko(fake)
    poller = CoinGeckoPoller(client, market_cap_pages=2, volume_pages=0, new_coins=False)
    first = await poller.poll()  # both pages in one poll (budget 3)
    assert [e.coin_id for e in first if isinstance(e, CoinProfileV1)] == ["bitcoin"]
    await client.aclose()


@pytest.mark.parametrize("cap", [2e30, 1e300])
async def test_an_impostor_with_an_absurd_market_cap_does_not_silence_the_coin(
    fake: FakeVendors, cap: float
) -> None:
    """A junk token reusing BTC's ticker with a market cap beyond the contract (bogus supply
    times price): it took the BTCUSDT symbol for good (the larger cap wins), its own profile
    was refused, and bitcoin's was never published again until a restart."""
    template = fake.load("coingecko", "coins_markets.json")[0]  # bitcoin, BTC
    impostor = {**template, "id": "btc-junk", "name": "BTC junk", "market_cap": cap}
    pages = {"1": [impostor], "2": [template]}
    fake.set_body("coingecko", "/coins/markets", lambda q: pages[q["page"]])
    client = _gecko(fake)
    poller = CoinGeckoPoller(client, market_cap_pages=2, volume_pages=0, new_coins=False)
    events = await poller.poll()  # both pages in one poll (budget 3)
    await client.aclose()
    assert [e.coin_id for e in events if isinstance(e, CoinProfileV1)] == ["bitcoin"]


async def test_lunarcrush_sorts_by_galaxy_score_and_alt_rank(fake: FakeVendors) -> None:
    clock = FakeClock()
    client = LunarCrushHttp(
        "key", fake.url("lunarcrush"), clock=clock.time, sleep=clock.sleep,
        retry=RetryPolicy(max_attempts=1),
    )  # fmt: skip
    events = await LunarCrushPoller(client).poll()
    lists = [q for v, p, q in fake.calls if p == "/public/coins/list/v2"]
    assert lists == [
        {"sort": "market_cap_rank", "limit": "1000", "page": "0"},
        {"sort": "galaxy_score", "limit": "200", "page": "0", "desc": "1"},
        {"sort": "alt_rank", "limit": "200", "page": "0"},
    ]
    # the same coin in the three sorts is published once
    body = fake.load("lunarcrush", "coins_list_v2.json")["data"]
    assert Counter(e.type for e in events)["market.coin_profile"] == len(body)
    await client.aclose()


def test_scan_cycle_spends_the_budget_and_covers_every_step() -> None:
    steps = [ScanStep("new", 2), *(ScanStep(f"p{i}") for i in range(5))]
    cycle = ScanCycle(steps, calls_per_poll=3)
    batches = [cycle.next_batch() for _ in range(4)]
    assert all(sum(s.calls for s in b) <= 3 for b in batches)
    assert {s.name for b in batches[:3] for s in b} == {s.name for s in steps}


def test_symbol_owner_keeps_the_larger_coin() -> None:
    owners = SymbolOwners()
    assert owners.accept("BTCUSDT", "bitcoin", 1e12)
    assert not owners.accept("BTCUSDT", "btc-on-base", 1e6)
    assert not owners.accept("BTCUSDT", "no-cap", None)
    assert owners.accept("BTCUSDT", "bitcoin", 9e11)  # the owner's own updates pass


def test_default_settings_fit_the_documented_budgets() -> None:
    """CoinGecko Demo: 10,000 calls/month; LunarCrush: our 10/min quota per poll minute."""
    cfg = IngestorSettings()
    polls_per_month = 30 * 86400 / cfg.ingestor_social_cadence_s
    assert cfg.ingestor_coingecko_calls_per_poll * polls_per_month <= cg.DEMO_MONTHLY_CALLS
    lunar_calls = 3 + 6  # three coin-list sorts + six watched series, spread by the limiter
    assert lunar_calls <= lc.QUOTA.limit * cfg.ingestor_social_cadence_s / 60
