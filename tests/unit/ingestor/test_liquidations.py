"""Liquidation buckets: per symbol per window, longs vs shorts, emitted once the window ends."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from perpsignal_common.errors import DependencyUnavailable
from perpsignal_common.events.market import LiquidationBucketV1, LiquidationOrderV1
from perpsignal_connectors.binance_usdm.parsing import parse_force_order
from perpsignal_connectors.binance_usdm.schemas import FORCE_ORDER
from perpsignal_ingestor.publisher import Publisher
from perpsignal_ingestor.sources.liquidations import (
    LiquidationAggregator,
    LiquidationRelay,
    Outbox,
    flush_loop,
)

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


def recorded_orders(shared_data: Path, n: int) -> list[LiquidationOrderV1]:
    """`n` orders as the Binance stream parser builds them from the documented message."""
    msg = json.loads((shared_data / "api/binance_usdm/ws_forceOrder.doc_example.json").read_text())
    out = []
    for i in range(n):
        msg["o"]["T"] = int((W0 + timedelta(seconds=10 + i)).timestamp() * 1000)
        out.append(parse_force_order(FORCE_ORDER.validate_python(msg)))
    return out


async def test_kafka_down_within_the_grace_loses_no_order_and_keeps_the_stream(
    shared_data: Path, producer
) -> None:
    """A live stream cannot be re-read: orders Kafka did not acknowledge are sent again with
    the next ones, and only an outage longer than the grace ends the stream (and process)."""
    mono = [0.0]
    agg = LiquidationAggregator(300, clock=lambda: W0.timestamp() + 60)
    publisher = Publisher(producer)  # type: ignore[arg-type]
    outbox = Outbox(publisher, "binance_stream", grace_s=120, monotonic=lambda: mono[0])
    relay = LiquidationRelay(publisher, agg, "binance_stream", outbox=outbox)
    o1, o2, o3, o4, o5 = recorded_orders(shared_data, 5)
    producer.fail = DependencyUnavailable("4 event(s) not acknowledged")
    await relay.on_liquidation(o1)
    mono[0] = 60
    await relay.on_liquidation(o2)
    producer.fail = None
    await relay.on_liquidation(o3)
    assert [e.event_id for e in producer.events] == [o.event_id for o in (o1, o2, o3)]
    producer.fail = DependencyUnavailable("down for good")
    mono[0] = 100
    await relay.on_liquidation(o4)
    mono[0] = 221
    with pytest.raises(DependencyUnavailable):
        await relay.on_liquidation(o5)


async def test_a_bucket_kafka_did_not_acknowledge_is_published_on_a_later_flush(
    shared_data: Path, producer
) -> None:
    now = [W0.timestamp() + 60]
    agg = LiquidationAggregator(300, clock=lambda: now[0])
    publisher = Publisher(producer)  # type: ignore[arg-type]
    relay = LiquidationRelay(publisher, agg, "binance_stream")
    for order in recorded_orders(shared_data, 2):
        await relay.on_liquidation(order)
    now[0] = W0.timestamp() + 301  # the window ended
    producer.fail = DependencyUnavailable("not acknowledged")
    stop = asyncio.Event()
    flusher = asyncio.create_task(flush_loop(agg, publisher, stop, every_s=0.01))
    await asyncio.sleep(0.05)
    assert not flusher.done()  # a refused flush does not end the liquidation streams
    producer.fail = None
    await asyncio.sleep(0.05)
    stop.set()
    await flusher
    buckets = [e for e in producer.events if isinstance(e, LiquidationBucketV1)]
    assert [(b.symbol, b.count) for b in buckets] == [("BTCUSDT", 2)]


async def test_an_order_delivered_twice_while_kafka_is_down_is_counted_once(
    shared_data: Path, producer
) -> None:
    now = [W0.timestamp() + 60]
    agg = LiquidationAggregator(300, clock=lambda: now[0])
    publisher = Publisher(producer)  # type: ignore[arg-type]
    relay = LiquidationRelay(publisher, agg, "binance_stream")
    (order,) = recorded_orders(shared_data, 1)
    producer.fail = DependencyUnavailable("not acknowledged")
    await relay.on_liquidation(order)
    await relay.on_liquidation(order)  # the same order again, still unacknowledged
    producer.fail = None
    now[0] = W0.timestamp() + 301
    (bucket,) = agg.flush()
    assert bucket.count == 1
    await relay.on_liquidation(recorded_orders(shared_data, 2)[1])
    assert [e.event_id for e in producer.events].count(order.event_id) == 1


async def test_a_window_whose_sum_breaks_the_contract_costs_only_its_bucket(
    shared_data: Path, producer
) -> None:
    """Two orders each within the contract (9e29 USD) whose sum is not (above 1e30): the
    bucket raised in `flush`, which ended the flush task and so the whole ingestor, and the
    other symbols' buckets of the window, popped already, were lost. Now that bucket alone
    is refused (one log line) and the others are published."""
    msg = json.loads((shared_data / "api/binance_usdm/ws_forceOrder.doc_example.json").read_text())
    huge = {"p": "1000000000000", "ap": "1000000000000", "q": "900000000000000000"}
    orders = []
    for i, (symbol, fields) in enumerate([("BTCUSDT", huge), ("BTCUSDT", huge), ("ETHUSDT", {})]):
        o = {**msg["o"], **fields, "s": symbol, "z": fields.get("q", msg["o"]["z"])}
        o["T"] = int((W0 + timedelta(seconds=10 + i)).timestamp() * 1000)
        orders.append(parse_force_order(FORCE_ORDER.validate_python({**msg, "o": o})))
    now = [W0.timestamp() + 60]
    agg = LiquidationAggregator(300, clock=lambda: now[0])
    publisher = Publisher(producer)  # type: ignore[arg-type]
    relay = LiquidationRelay(publisher, agg, "binance_stream")
    for order in orders:
        await relay.on_liquidation(order)
    now[0] = W0.timestamp() + 301
    stop = asyncio.Event()
    flushing = asyncio.create_task(flush_loop(agg, publisher, stop, every_s=0.01))
    await asyncio.sleep(0.1)
    stop.set()
    await flushing  # raised ValidationError: the TaskGroup ended the service
    buckets = [e for e in producer.events if isinstance(e, LiquidationBucketV1)]
    assert [b.symbol for b in buckets] == ["ETHUSDT"]
