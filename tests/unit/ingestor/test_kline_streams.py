"""The Binance socket's kline subscriptions follow the universe the replica polls."""

from __future__ import annotations

import asyncio
import json

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
