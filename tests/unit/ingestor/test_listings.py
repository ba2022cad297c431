"""New-listings monitor on a real PostgreSQL: seed silently, announce once, survive restarts."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from perpsignal_common.db.engine import create_engine, create_sessionmaker
from perpsignal_common.errors import DependencyUnavailable
from perpsignal_common.events.market import ListingDetectedV1
from perpsignal_common.settings import DatabaseSettings
from perpsignal_connectors.binance_usdm.http import BinanceUsdmHttp
from perpsignal_ingestor.listings import ListingMonitor
from perpsignal_ingestor.publisher import Publisher
from perpsignal_ingestor.universe import Universe
from tests.fakes.vendors import FakeVendors

pytestmark = pytest.mark.db
NOW = 1_750_000_000.0


async def test_listing_lifecycle(fake: FakeVendors, database_url: str, producer) -> None:
    from pydantic import SecretStr

    engine = create_engine(DatabaseSettings(database_url=SecretStr(database_url)), pool_size=2)
    sessions = create_sessionmaker(engine)
    now = [NOW]
    http = BinanceUsdmHttp(fake.url("binance"), clock=lambda: now[0])

    def monitor() -> ListingMonitor:
        return ListingMonitor(
            http,
            Universe(["BTCUSDT"]),
            sessions,
            Publisher(producer),  # type: ignore[arg-type]
            bootstrap_window_s=86_400,
            clock=lambda: now[0],
        )

    def listings() -> list[ListingDetectedV1]:
        return [e for e in producer.events if isinstance(e, ListingDetectedV1)]

    try:
        # first run: the recorded perpetuals (listed 2019) are seeded silently; one listed
        # an hour ago is still announced, so a fresh deployment does not miss it
        fake.add_listing("HOURUSDT", int((NOW - 3600) * 1000))
        first = monitor()
        await first.poll()
        assert [e.symbol for e in listings()] == ["HOURUSDT"]
        assert listings()[0].detection_latency_s == pytest.approx(3600)
        assert first.universe.tradable is not None and "BTCUSDT" in first.universe.tradable

        now[0] += 60
        await first.poll()
        assert len(listings()) == 1  # nothing new, nothing announced

        fake.add_listing("NEWUSDT", int((now[0] - 12) * 1000))
        now[0] += 3
        await first.poll()
        new = listings()[-1]
        assert [e.symbol for e in listings()] == ["HOURUSDT", "NEWUSDT"]
        assert new.base_asset == "NEW" and new.quote_asset == "USDT"
        assert new.detection_latency_s == pytest.approx(15)
        assert new.last_price is None  # no ticker seen yet: stats absent, not invented

        # restart: a new monitor over the same table announces nothing again
        await monitor().poll()
        assert len(listings()) == 2

        # Kafka down while announcing: the symbol stays pending and is announced later
        # with the same event id
        fake.add_listing("LATEUSDT", int(now[0] * 1000))
        producer.fail = DependencyUnavailable("broker down")
        with pytest.raises(DependencyUnavailable):
            await monitor().poll()
        producer.fail = None
        await monitor().poll()
        await monitor().poll()
        assert [e.symbol for e in listings()] == ["HOURUSDT", "NEWUSDT", "LATEUSDT"]
    finally:
        await http.aclose()
        await engine.dispose()


@dataclass
class Rig:
    """A listings monitor on the fake Binance and a real database, its first poll done (the
    recorded perpetuals seeded, none announced)."""

    monitor: ListingMonitor
    universe: Universe
    sessions: async_sessionmaker[AsyncSession]
    producer: Any
    now: float

    def announced(self) -> list[str]:
        return [e.symbol for e in self.producer.events if isinstance(e, ListingDetectedV1)]


@pytest.fixture
async def rig(fake: FakeVendors, database_url: str, producer: Any) -> AsyncIterator[Rig]:
    from pydantic import SecretStr

    engine = create_engine(DatabaseSettings(database_url=SecretStr(database_url)), pool_size=2)
    sessions = create_sessionmaker(engine)
    http = BinanceUsdmHttp(fake.url("binance"))
    universe = Universe(["BTCUSDT"])
    monitor = ListingMonitor(http, universe, sessions, Publisher(producer))
    try:
        await monitor.poll()  # seeds the recorded perpetuals
        yield Rig(monitor, universe, sessions, producer, time.time())
    finally:
        await http.aclose()
        await engine.dispose()


async def test_a_listing_dated_beyond_the_contract_blocks_no_other(
    fake: FakeVendors, rig: Rig
) -> None:
    """An onboard date the event cannot carry (years ahead, or beyond year 9999) must not
    stop the monitor: the genuine new perpetual beside it is announced, and the odd one is
    announced once exchangeInfo gives it a date the contract accepts."""
    now = rig.now
    fake.add_listing("FARUSDT", 4_133_404_800_000)  # 2100-12-25, Binance's "no date"
    fake.add_listing("HUGEUSDT", 253_402_300_800_000)  # year 10000
    fake.add_listing("NEWUSDT", int((now - 30) * 1000))
    await rig.monitor.poll()
    await rig.monitor.poll()
    assert rig.announced() == ["NEWUSDT"]

    # exchangeInfo corrects the date: announced once, with the real onboard time
    fake.listings = [(s, int((now - 10) * 1000)) for s, _ in fake.listings]
    await rig.monitor.poll()
    await rig.monitor.poll()
    assert sorted(rig.announced()) == ["FARUSDT", "HUGEUSDT", "NEWUSDT"]
    far = next(e for e in rig.producer.events if e.symbol == "FARUSDT")
    assert isinstance(far, ListingDetectedV1)
    assert far.onboard_at.timestamp() == pytest.approx(now - 10, abs=1)


async def test_odd_ticker_stats_do_not_hold_back_a_listing(fake: FakeVendors, rig: Rig) -> None:
    """The 24h stats are optional: a ticker value the contract refuses (NaN, negative price)
    drops the stats, not the announcement, nor the other listings waiting with it."""
    from perpsignal_connectors.binance_usdm.schemas import Ticker24h

    ticker = fake.load("binance", "fapi_v1_ticker_24hr.doc_current.json")
    rig.universe.update_tickers(
        [
            Ticker24h.model_validate({**ticker, "symbol": "ODDUSDT", "lastPrice": "-1"}),
            Ticker24h.model_validate({**ticker, "symbol": "NANUSDT", "quoteVolume": "NaN"}),
            Ticker24h.model_validate({**ticker, "symbol": "GOODUSDT"}),
        ]
    )
    for sym in ("ODDUSDT", "NANUSDT", "GOODUSDT"):
        fake.add_listing(sym, int((rig.now - 30) * 1000))
    await rig.monitor.poll()
    got = {e.symbol: e for e in rig.producer.events if isinstance(e, ListingDetectedV1)}
    assert sorted(got) == ["GOODUSDT", "NANUSDT", "ODDUSDT"]
    assert got["GOODUSDT"].last_price == float(ticker["lastPrice"])
    assert got["ODDUSDT"].last_price is None and got["NANUSDT"].quote_volume_24h is None


@pytest.mark.parametrize(
    "hostile",
    [
        "BAD USDT",  # a space: the event contract refuses the symbol
        "\u202eTSDUUSDT",  # a bidi override: reads as another symbol in any UI
        "NUL\x00USDT",  # PostgreSQL refuses NUL in text
        "X" * 80 + "USDT",  # longer than the table's 64 characters
    ],
)
async def test_a_symbol_the_contract_refuses_blocks_no_other_listing(
    fake: FakeVendors, rig: Rig, hostile: str
) -> None:
    """A perpetual whose name the event (or the table) cannot carry is skipped with a log
    line; it failed every listings poll (the row's event raised, or the insert did), so no
    other listing was ever announced again."""
    fake.add_listing(hostile, int((rig.now - 30) * 1000))
    fake.add_listing("NEWUSDT", int((rig.now - 20) * 1000))
    await rig.monitor.poll()
    fake.add_listing("LATERUSDT", int((rig.now - 10) * 1000))
    await rig.monitor.poll()
    assert rig.announced() == ["NEWUSDT", "LATERUSDT"]


async def test_a_pending_row_whose_event_breaks_the_contract_blocks_no_other(
    fake: FakeVendors, rig: Rig
) -> None:
    """A row recorded before names were checked (a space in the symbol: the table takes it,
    the event refuses it) stays pending without stopping the announcements of the others."""
    from datetime import UTC, datetime

    from perpsignal_common.db.engine import session_scope
    from perpsignal_common.db.models.ingestor import KnownSymbol

    seen = datetime.fromtimestamp(rig.now - 60, UTC)
    async with session_scope(rig.sessions) as s:
        s.add(
            KnownSymbol(
                venue="binance",
                symbol="BAD USDT",
                base_asset="BAD ",
                quote_asset="USDT",
                onboard_at=seen,
                first_seen_at=seen,
                announce=True,
            )
        )
    fake.add_listing("NEWUSDT", int((rig.now - 20) * 1000))
    await rig.monitor.poll()
    await rig.monitor.poll()
    assert rig.announced() == ["NEWUSDT"]


async def test_thousands_of_new_perpetuals_at_once_are_not_announced(
    fake: FakeVendors, rig: Rig
) -> None:
    """A broken or hostile exchangeInfo listing many perpetuals never seen (Binance lists a
    few a day): each was announced as a new listing, an alert to every subscriber. They are
    recorded silently; a genuine listing after them is announced as usual."""
    for i in range(500):
        fake.add_listing(f"FAKE{i}USDT", int((rig.now - 60) * 1000))
    await rig.monitor.poll()
    assert rig.announced() == []
    fake.add_listing("NEWUSDT", int((rig.now - 20) * 1000))
    await rig.monitor.poll()
    assert rig.announced() == ["NEWUSDT"]
