"""Liquidation buckets: per symbol per window, longs vs shorts, emitted once the window ends."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from perpsignal_common.events.market import LiquidationOrderV1
from perpsignal_ingestor.publisher import Publisher
from perpsignal_ingestor.sources.liquidations import LiquidationAggregator, LiquidationRelay

W0 = datetime(2024, 1, 1, 12, 0, tzinfo=UTC)


def liq(i: int, symbol: str, side: str, usd: float, at: datetime) -> LiquidationOrderV1:
    return LiquidationOrderV1(
        event_id=f"l{i}",
        source="binance",
        symbol=symbol,
        observed_at=at,
        liquidated_side=side,
        price=100.0,
        quantity=usd / 100,
        notional_usd=usd,
    )


async def test_buckets_sum_sides_per_symbol_and_window(producer) -> None:
    now = [W0.timestamp() + 10]
    agg = LiquidationAggregator(300, clock=lambda: now[0])
    relay = LiquidationRelay(Publisher(producer), agg, "binance_stream")  # type: ignore[arg-type]
    orders = [
        liq(1, "BTCUSDT", "LONG", 1000, W0 + timedelta(seconds=5)),
        liq(2, "BTCUSDT", "SHORT", 250, W0 + timedelta(seconds=100)),
        liq(3, "BTCUSDT", "LONG", 500, W0 + timedelta(seconds=299)),
        liq(4, "ETHUSDT", "SHORT", 70, W0 + timedelta(seconds=200)),
        liq(5, "BTCUSDT", "LONG", 9, W0 + timedelta(seconds=300)),  # next window
    ]
    for o in orders:
        await relay.on_liquidation(o)
    await relay.on_liquidation(orders[0])  # a duplicate delivery is not counted twice
    assert [e.event_id for e in producer.events] == ["l1", "l2", "l3", "l4", "l5"]
    assert agg.flush() == []  # the window is still open
    now[0] = W0.timestamp() + 301
    buckets = {b.symbol: b for b in agg.flush()}
    assert set(buckets) == {"BTCUSDT", "ETHUSDT"}
    btc = buckets["BTCUSDT"]
    assert (btc.long_liquidations_usd, btc.short_liquidations_usd, btc.count) == (1500, 250, 3)
    assert btc.observed_at == W0 + timedelta(seconds=300) and btc.window_s == 300
    assert buckets["ETHUSDT"].short_liquidations_usd == 70
    assert agg.flush() == []  # emitted once
    now[0] = W0.timestamp() + 601
    assert [b.count for b in agg.flush()] == [1]
