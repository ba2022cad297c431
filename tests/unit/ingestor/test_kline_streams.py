"""The Binance socket's kline subscriptions follow the universe the replica polls."""

from __future__ import annotations

import asyncio
import json
import time

import pytest

from perpsignal_ingestor.service import IngestorService
from perpsignal_ingestor.settings import IngestorSettings
from tests.fakes.vendors import FakeVendors
from tests.helpers import eventually


def subscribed(fake: FakeVendors) -> list[list[str]]:
    return [json.loads(m)["params"] for m in fake.ws_received["binance"]]


async def test_kline_streams_follow_the_first_exchange_info_with_every_symbol_watched(
    fake: FakeVendors, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With `INGESTOR_SYMBOLS=*` the tracked symbols are known only once exchangeInfo was
    read; a socket that connected before (the listings poll and the socket start together
    when the replica gets its partitions) must subscribe the klines then, not after
    Binance's 24 h disconnect or the next rebalance."""
    for key, value in fake.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("INGESTOR_SYMBOLS", "*")
    monkeypatch.setenv("INGESTOR_ENABLED_SOURCES", "binance_stream,listings")
    monkeypatch.setenv("INGESTOR_TIMEFRAMES", "5m")
    service = IngestorService(IngestorSettings())
    service.shard.assign(range(12), 12, "member")
    stop = asyncio.Event()
    task = asyncio.create_task(service._run_binance_stream(stop))
    try:
        await eventually(lambda: subscribed(fake), timeout=10, what="first subscription")
        assert subscribed(fake)[0] == ["!forceOrder@arr"]  # the universe is not known yet
        await service.listings.poll()  # exchangeInfo: every tradable perpetual is tracked
        wanted = {f"{s.lower()}@kline_5m" for s in service.universe.binance_symbols()}
        assert wanted
        await eventually(
            lambda: wanted <= set(subscribed(fake)[-1]), timeout=10, what="kline subscription"
        )
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await service.on_close()


async def test_a_kafka_hiccup_when_klines_close_does_not_end_the_process(
    fake: FakeVendors, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Kafka not acknowledging for a moment (a leader election) just as the stream's klines
    close: the candle's publish raised DependencyUnavailable out of the socket's handler,
    which ends the stream task and with it the whole ingestor at once, where the pollers
    and the liquidation relay ride out 120 s. The candle is sent again with the next."""
    from perpsignal_common.errors import DependencyUnavailable
    from perpsignal_common.events.market import CandleClosedV1
    from tests.unit.ingestor.conftest import RecordingProducer

    for key, value in fake.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("INGESTOR_SYMBOLS", "BTCUSDT")
    monkeypatch.setenv("INGESTOR_ENABLED_SOURCES", "binance_stream")
    monkeypatch.setenv("INGESTOR_TIMEFRAMES", "1m")
    service = IngestorService(IngestorSettings())
    producer = RecordingProducer()
    service.publisher._producer = producer  # type: ignore[assignment]
    service.shard.assign(range(12), 12, "member")
    stop = asyncio.Event()
    task = asyncio.create_task(service._run_binance_stream(stop))
    first = fake.load("binance", "ws_kline.doc_example.json")
    k = first["k"]
    second = {**first, "k": {**k, "t": k["t"] + 60_000, "T": k["T"] + 60_000}}
    try:
        await eventually(lambda: subscribed(fake), timeout=10, what="subscription")
        producer.fail = DependencyUnavailable("1 event(s) not acknowledged")
        await fake.push("binance", first)
        await asyncio.sleep(1.0)  # the socket task is checked every 0.5 s
        assert not task.done()  # the stream (and the process) carries on
        producer.fail = None
        await fake.push("binance", second)
        await eventually(
            lambda: len([e for e in producer.events if isinstance(e, CandleClosedV1)]) == 2,
            timeout=10,
            what="both candles published",
        )
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await service.on_close()


async def test_kline_streams_follow_symbols_tracked_and_dropped_on_the_open_socket(
    fake: FakeVendors, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A symbol tracked on demand (a `track` command) got its candles by REST only until the
    socket reconnected (Binance's 24 h disconnect, or the next rebalance), and a dropped one
    kept its streams as long. They follow now on the open socket: SUBSCRIBE for the new
    symbol, UNSUBSCRIBE for the dropped one, no reconnect."""
    for key, value in fake.env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("INGESTOR_SYMBOLS", "BTCUSDT")
    monkeypatch.setenv("INGESTOR_ENABLED_SOURCES", "binance_stream")
    monkeypatch.setenv("INGESTOR_TIMEFRAMES", "5m,1h")
    service = IngestorService(IngestorSettings())
    service.shard.assign(range(12), 12, "member")
    stop = asyncio.Event()
    task = asyncio.create_task(service._run_binance_stream(stop))

    def streams() -> set[str]:
        return fake.ws_subscribed.get("binance", set())

    eth = {"ethusdt@kline_5m", "ethusdt@kline_1h"}
    try:
        await eventually(lambda: "btcusdt@kline_5m" in streams(), timeout=10, what="klines")
        service.universe.track("ETHUSDT", time.time() + 3600)
        await eventually(lambda: eth <= streams(), timeout=10, what="ETH subscribed")
        service.universe.untrack("ETHUSDT")
        await eventually(lambda: not eth & streams(), timeout=10, what="ETH unsubscribed")
        assert streams() == {"!forceOrder@arr", "btcusdt@kline_5m", "btcusdt@kline_1h"}
        assert fake.ws_connects["binance"] == 1  # on the same connection
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        await service.on_close()
