"""Symbol universe: TRADING USDT perpetuals ∩ filters, plus on-demand symbols with a TTL."""

from __future__ import annotations

from perpsignal_connectors.binance_usdm.schemas import SymbolInfo, Ticker24h
from perpsignal_ingestor.universe import Universe


def info(
    symbol: str, status: str = "TRADING", contract: str = "PERPETUAL", quote: str = "USDT"
) -> SymbolInfo:
    return SymbolInfo.model_validate(
        {
            "symbol": symbol,
            "contractType": contract,
            "status": status,
            "baseAsset": symbol.removesuffix(quote),
            "quoteAsset": quote,
            "onboardDate": 0,
        }
    )


def ticker(symbol: str, qv: float) -> Ticker24h:
    return Ticker24h.model_validate(
        {"symbol": symbol, "lastPrice": "1", "quoteVolume": qv, "closeTime": 0}
    )


EXCHANGE = [
    info("BTCUSDT"),
    info("ETHUSDT"),
    info("SOLUSDT"),
    info("OLDUSDT", "SETTLING"),
    info("BTCUSDT_250328", contract="CURRENT_QUARTER"),
    info("BTCUSDC", quote="USDC"),
]


def test_watch_list_is_intersected_with_tradable_perpetuals() -> None:
    u = Universe(["BTCUSDT", "OLDUSDT", "NOPEUSDT"])
    assert u.binance_symbols() == ["BTCUSDT", "NOPEUSDT", "OLDUSDT"]  # before exchangeInfo
    u.update_exchange(EXCHANGE)
    assert u.binance_symbols() == ["BTCUSDT"]
    assert u.off_binance() == ["NOPEUSDT", "OLDUSDT"]


def test_star_means_every_usdt_perpetual_trading() -> None:
    u = Universe(["*"])
    u.update_exchange(EXCHANGE)
    assert u.binance_symbols() == ["BTCUSDT", "ETHUSDT", "SOLUSDT"]


def test_min_quote_volume_adds_liquid_symbols() -> None:
    u = Universe(["BTCUSDT"], min_quote_volume=1e9)
    u.update_exchange(EXCHANGE)
    u.update_tickers([ticker("ETHUSDT", 2e9), ticker("SOLUSDT", 5e8)])
    assert u.binance_symbols() == ["BTCUSDT", "ETHUSDT"]


def test_on_demand_symbols_expire() -> None:
    now = [1000.0]
    u = Universe(["BTCUSDT"], clock=lambda: now[0])
    u.update_exchange(EXCHANGE)
    u.track("solusdt", until_s=1060)
    u.track("ZZZUSDT", until_s=1060)  # not on Binance: another venue covers it
    assert u.binance_symbols() == ["BTCUSDT", "SOLUSDT"]
    assert u.off_binance() == ["ZZZUSDT"]
    now[0] = 1061
    assert u.binance_symbols() == ["BTCUSDT"] and u.off_binance() == []
    u.track("ETHUSDT", until_s=2000)
    u.untrack("ETHUSDT")
    assert u.binance_symbols() == ["BTCUSDT"]


async def test_an_exchange_info_without_symbols_keeps_the_universe(fake) -> None:
    """`{"serverTime": ..., "symbols": []}` (a broken answer: Binance always lists its
    perpetuals) emptied the universe: with `*` nothing was polled on Binance for a minute,
    every watched symbol went to OKX as if Binance did not trade it, and the kline socket
    resubscribed twice. It is a malformed answer; the universe stays as it was."""
    import pytest

    from perpsignal_connectors.binance_usdm.http import BinanceUsdmHttp
    from perpsignal_connectors.errors import MalformedResponse
    from perpsignal_ingestor.listings import ListingMonitor
    from perpsignal_ingestor.publisher import Publisher
    from tests.unit.ingestor.conftest import RecordingProducer

    http = BinanceUsdmHttp(fake.url("binance"))
    universe = Universe(["*", "BTCUSDT"])
    monitor = ListingMonitor(http, universe, None, Publisher(RecordingProducer()))  # type: ignore[arg-type]
    try:
        await monitor.poll()
        before = universe.tracked()
        assert "BTCUSDT" in before
        broken = fake.load("binance", "fapi_v1_exchangeInfo.recorded_trimmed.json")
        broken["symbols"] = []
        fake.set_body("binance", "/fapi/v1/exchangeInfo", broken)
        with pytest.raises(MalformedResponse):
            await monitor.poll()
        assert universe.tracked() == before and universe.off_binance() == []
    finally:
        await http.aclose()


async def test_a_symbol_the_contract_refuses_is_never_tracked(fake) -> None:
    """A TRADING perpetual named so that no event of it can be published (a space, a bidi
    control): with `*` it was polled every minute (klines per timeframe, open interest:
    weight spent, every event refused with a warning) and its kline stream name, which
    Binance does not know, made Binance refuse the kline subscription of every symbol."""
    from perpsignal_connectors.binance_usdm.http import BinanceUsdmHttp
    from perpsignal_ingestor.listings import ListingMonitor
    from perpsignal_ingestor.publisher import Publisher
    from tests.unit.ingestor.conftest import RecordingProducer

    http = BinanceUsdmHttp(fake.url("binance"))
    universe = Universe(["*"])
    monitor = ListingMonitor(http, universe, None, Publisher(RecordingProducer()))  # type: ignore[arg-type]
    for hostile in ("BAD USDT", "\u202eTSDUUSDT", "X" * 80 + "USDT"):
        fake.add_listing(hostile, 1_569_398_400_000)
    try:
        await monitor.poll()
    finally:
        await http.aclose()
    tracked = universe.tracked()
    assert "BTCUSDT" in tracked
    assert not [s for s in tracked if not s.isalnum() or len(s) > 64], tracked
