"""WebSocket sessions against the fake vendors: messages, drops mid-stream, resubscribe, pings."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator

import pytest

from perpsignal_common.events.market import LiquidationOrderV1
from perpsignal_common.retry import RetryPolicy
from perpsignal_connectors.binance_usdm.stream import BinanceUsdmStream
from perpsignal_connectors.coinglass.stream import CoinglassStream
from tests.fakes.vendors import FakeVendors
from tests.helpers import eventually


async def test_binance_liquidations_survive_a_drop_and_resubscribe(fake: FakeVendors, load) -> None:
    got: list[LiquidationOrderV1] = []

    async def on_liq(ev: LiquidationOrderV1) -> None:
        got.append(ev)

    stream = BinanceUsdmStream(fake.ws_url("binance"), on_liq)
    stream.ws._retry = RetryPolicy(base_delay_s=0.01, max_delay_s=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(stream.ws.run(stop))
    msg = load("binance_usdm/ws_forceOrder.doc_example.json")
    try:
        await eventually(
            lambda: fake.ws_connects["binance"] == 1 and fake.ws_received["binance"],
            timeout=10,
            what="subscribe",
        )
        assert json.loads(fake.ws_received["binance"][0])["params"] == ["!forceOrder@arr"]
        await fake.push("binance", msg)
        await fake.push("binance", "not json{")  # malformed: skipped, no crash
        await eventually(lambda: len(got) == 1, timeout=10, what="first liquidation")
        await fake.drop("binance")
        await eventually(
            lambda: fake.ws_connects["binance"] == 2 and len(fake.ws_received["binance"]) == 2,
            timeout=10,
            what="reconnect + resubscribe",
        )
        later = {**msg, "o": {**msg["o"], "T": msg["o"]["T"] + 1000, "S": "BUY"}}
        await eventually(lambda: fake.push("binance", later), timeout=10, what="client back")
        await eventually(lambda: len(got) == 2, timeout=10, what="liquidation after reconnect")
        assert [e.liquidated_side for e in got] == ["LONG", "SHORT"]
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
    assert not task.exception()


@contextlib.asynccontextmanager
async def binance_stream(fake: FakeVendors) -> AsyncIterator[list[LiquidationOrderV1]]:
    """Run a Binance liquidation stream on the fake; yield the orders it relays."""
    got: list[LiquidationOrderV1] = []

    async def on_liq(ev: LiquidationOrderV1) -> None:
        got.append(ev)

    stream = BinanceUsdmStream(fake.ws_url("binance"), on_liq)
    stop = asyncio.Event()
    task = asyncio.create_task(stream.ws.run(stop))
    try:
        yield got
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


@contextlib.asynccontextmanager
async def coinglass_stream(fake: FakeVendors) -> AsyncIterator[list[LiquidationOrderV1]]:
    """Run a Coinglass liquidation stream on the fake; yield the orders it relays."""
    got: list[LiquidationOrderV1] = []

    async def on_liq(ev: LiquidationOrderV1) -> None:
        got.append(ev)

    stream = CoinglassStream("key", on_liq, fake.ws_url("coinglass"), ping_interval_s=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(stream.ws.run(stop))
    try:
        yield got
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_coinglass_pings_and_relays_liquidations(fake: FakeVendors, load) -> None:
    async with coinglass_stream(fake) as got:
        await eventually(
            lambda: "ping" in fake.ws_received["coinglass"], timeout=10, what="application ping"
        )
        sub = json.loads(fake.ws_received["coinglass"][0])
        assert sub == {"method": "subscribe", "channels": ["liquidationOrders"]}
        await fake.push("coinglass", load("coinglass/ws__liquidationOrders.json"))
        await eventually(lambda: got, timeout=10, what="liquidation")
        assert got[0].source == "coinglass" and got[0].liquidated_side == "SHORT"


async def test_binance_closed_klines_and_reconnect_hook(fake: FakeVendors, load) -> None:
    candles, connects = [], []

    async def on_candle(c) -> None:
        candles.append(c)

    async def on_connect() -> None:
        connects.append(1)

    async def ignore(_: LiquidationOrderV1) -> None:
        return None

    stream = BinanceUsdmStream(
        fake.ws_url("binance"),
        ignore,
        on_candle=on_candle,
        kline_streams=lambda: ["btcusdt@kline_1m"],
        on_connect=on_connect,
    )
    stream.ws._retry = RetryPolicy(base_delay_s=0.01, max_delay_s=0.05)
    stop = asyncio.Event()
    task = asyncio.create_task(stream.ws.run(stop))
    closed = load("binance_usdm/ws_kline.doc_example.json")
    forming = {**closed, "k": {**closed["k"], "x": False}}
    try:
        await eventually(lambda: connects, timeout=10, what="connected")
        # the kline subscription may still be on its way to the server when the hook runs
        received = fake.ws_received["binance"]
        await eventually(lambda: len(received) >= 2, timeout=10, what="both subscriptions")
        subs = [json.loads(m)["params"] for m in received[:2]]
        assert subs == [["!forceOrder@arr"], ["btcusdt@kline_1m"]]
        await fake.push("binance", forming)
        await fake.push("binance", closed)
        await eventually(lambda: candles, timeout=10, what="closed candle")
        assert len(candles) == 1 and candles[0].close == float(closed["k"]["c"])
        await fake.drop("binance")
        await eventually(lambda: len(connects) == 2, timeout=10, what="reconnect hook")
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_a_hostile_order_costs_only_itself_not_the_connection(
    fake: FakeVendors, load
) -> None:
    """Binance: an order time beyond year 9999 (Python cannot hold it) or ahead of the clock
    is skipped; the socket stays up (a reconnect loses live orders and refetches klines)."""
    msg = load("binance_usdm/ws_forceOrder.doc_example.json")
    async with binance_stream(fake) as got:
        await eventually(lambda: fake.ws_received["binance"], timeout=10, what="subscribe")
        for t in (253_402_300_800_000, 10**17):
            await fake.push("binance", {**msg, "o": {**msg["o"], "T": t}})
        await fake.push("binance", msg)
        await eventually(lambda: got, timeout=10, what="the good order")
        assert [e.observed_at.year for e in got] == [2019]
        assert fake.ws_connects["binance"] == 1


async def test_a_combined_stream_frame_is_read_not_dropped(fake: FakeVendors, load) -> None:
    """Binance wraps each event as `{"stream": name, "data": event}` on a combined stream (a
    /stream URL, or the `combined` connection property): such a frame has no event type at
    the top, so it was taken for a request's ack and every liquidation dropped silently."""
    msg = load("binance_usdm/ws_forceOrder.doc_example.json")
    async with binance_stream(fake) as got:
        await eventually(lambda: fake.ws_received["binance"], timeout=10, what="subscribe")
        await fake.push("binance", {"stream": "btcusdt@forceOrder", "data": msg})
        await eventually(lambda: got, timeout=10, what="the wrapped order")
        assert [(e.symbol, e.liquidated_side) for e in got] == [("BTCUSDT", "LONG")]


async def test_a_liquidation_of_no_quantity_is_not_relayed(fake: FakeVendors, load) -> None:
    """A forceOrder with `q` and `z` "0" (Binance) or a Coinglass row with `volUsd` 0 was
    relayed as a liquidation of nothing: one more order in its bucket's count, a liquidation
    the scorer believed happened. It is skipped; the next order is relayed."""
    msg = load("binance_usdm/ws_forceOrder.doc_example.json")
    async with binance_stream(fake) as got:
        await eventually(lambda: fake.ws_received["binance"], timeout=10, what="subscribe")
        nothing = {**msg["o"], "s": "ETHUSDT", "q": "0", "l": "0", "z": "0"}
        await fake.push("binance", {**msg, "o": nothing})
        await fake.push("binance", msg)
        await eventually(lambda: got, timeout=10, what="the good order")
        await asyncio.sleep(0.1)
        assert [e.symbol for e in got] == ["BTCUSDT"]
    cg = load("coinglass/ws__liquidationOrders.json")
    good = cg["data"][0]
    async with coinglass_stream(fake) as relayed:
        await eventually(lambda: fake.ws_received["coinglass"], timeout=10, what="subscribe")
        rows = [{**good, "volUsd": 0, "symbol": "BTCUSDT"}, {**good, "symbol": "ETHUSDT"}]
        await fake.push("coinglass", {**cg, "data": rows})
        await eventually(lambda: relayed, timeout=10, what="the good row")
        await asyncio.sleep(0.1)
        assert [e.symbol for e in relayed] == ["ETHUSDT"]


async def test_a_hostile_coinglass_row_costs_only_itself(fake: FakeVendors, load) -> None:
    """Coinglass: one row the contract refuses (a price below 1e-12, a time beyond year
    9999) must not drop the other rows of its message nor the connection."""
    msg = load("coinglass/ws__liquidationOrders.json")
    good = msg["data"][0]
    rows = [
        {**good, "price": 1e-13},
        {**good, "time": 253_402_300_800_000},
        {**good, "symbol": "ETHUSDT"},
    ]
    async with coinglass_stream(fake) as got:
        await eventually(lambda: fake.ws_received["coinglass"], timeout=10, what="subscribe")
        await fake.push("coinglass", {**msg, "data": rows})
        await eventually(lambda: got, timeout=10, what="the good row")
        await asyncio.sleep(0.1)
        assert [e.symbol for e in got] == ["ETHUSDT"]
        assert fake.ws_connects["coinglass"] == 1


async def test_a_coinglass_side_sent_as_a_boolean_is_no_liquidated_long(
    fake: FakeVendors, load
) -> None:
    """Pydantic reads `true` as 1, and side 1 means "a long was liquidated": a broken row's
    `"side": true` was relayed as a long liquidation. A boolean is no side: that row is
    refused alone; the rest of its message is relayed."""
    msg = load("coinglass/ws__liquidationOrders.json")
    good = msg["data"][0]
    rows = [{**good, "side": True, "symbol": "BTCUSDT"}, {**good, "symbol": "ETHUSDT"}]
    async with coinglass_stream(fake) as got:
        await eventually(lambda: fake.ws_received["coinglass"], timeout=10, what="subscribe")
        await fake.push("coinglass", {**msg, "data": rows})
        await eventually(lambda: got, timeout=10, what="the good row")
        await asyncio.sleep(0.1)
        assert [e.symbol for e in got] == ["ETHUSDT"]


async def test_a_coinglass_exchange_named_in_words_is_relayed_as_one_venue_token(
    fake: FakeVendors, load
) -> None:
    """The contract's venue is one token (no spaces); Coinglass names exchanges as written
    ("WOO X"): such a liquidation was refused as a hostile row and lost."""
    msg = load("coinglass/ws__liquidationOrders.json")
    good = msg["data"][0]
    rows = [{**good, "exName": "WOO X", "symbol": "BTCUSDT"}]
    async with coinglass_stream(fake) as got:
        await eventually(lambda: fake.ws_received["coinglass"], timeout=10, what="subscribe")
        await fake.push("coinglass", {**msg, "data": rows})
        await eventually(lambda: got, timeout=10, what="the liquidation")
        assert [(e.symbol, e.venue) for e in got] == [("BTCUSDT", "woo_x")]


async def test_a_refused_kline_subscription_costs_neither_the_liquidations_nor_silence(
    fake: FakeVendors, caplog: pytest.LogCaptureFixture
) -> None:
    """Binance refuses a SUBSCRIBE past its streams cap (or with a name it does not know) as
    a whole: liquidations and klines shared one request, so too many kline streams
    (INGESTOR_KLINE_STREAM_MAX_SYMBOLS x timeframes) silently cost every liquidation too,
    and the refusal, a message without an event type, was dropped without a word."""
    fake.binance_max_streams = 200

    async def ignore(_: object) -> None:
        return None

    klines = [f"s{i}usdt@kline_{tf}" for i in range(60) for tf in ("5m", "15m", "1h", "4h")]
    stream = BinanceUsdmStream(
        fake.ws_url("binance"), ignore, on_candle=ignore, kline_streams=lambda: klines
    )
    stop = asyncio.Event()
    task = asyncio.create_task(stream.ws.run(stop))
    try:
        with caplog.at_level(logging.WARNING, logger="perpsignal_connectors"):
            await eventually(
                lambda: any("refused" in r.getMessage() for r in caplog.records),
                timeout=10,
                what="the refusal logged",
            )
        assert "!forceOrder@arr" in fake.ws_subscribed["binance"]
        (line,) = [r for r in caplog.records if "refused" in r.getMessage()]
        assert "too many streams" in line.error  # type: ignore[attr-defined]
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_a_changed_message_format_is_one_warning_a_minute_not_one_per_message(
    fake: FakeVendors, load, caplog: pytest.LogCaptureFixture
) -> None:
    """Binance renaming a field of its liquidation messages makes every message malformed:
    each was a warning line (tens a second on a busy market). The first is a warning, the
    rest debug lines until a minute has passed; each is still counted."""
    got: list[LiquidationOrderV1] = []

    async def on_liq(ev: LiquidationOrderV1) -> None:
        got.append(ev)

    stream = BinanceUsdmStream(fake.ws_url("binance"), on_liq)
    stop = asyncio.Event()
    task = asyncio.create_task(stream.ws.run(stop))
    msg = load("binance_usdm/ws_forceOrder.doc_example.json")
    renamed = {**msg, "o": {k if k != "q" else "qty": v for k, v in msg["o"].items()}}
    try:
        await eventually(lambda: fake.ws_received["binance"], timeout=10, what="subscribe")
        with caplog.at_level(logging.WARNING, logger="perpsignal_connectors"):
            for i in range(30):
                await fake.push("binance", {**renamed, "E": msg["E"] + i})
            await fake.push("binance", "not json{")
            await fake.push("binance", msg)
            await eventually(lambda: got, timeout=10, what="the good order")
        lines = [r.getMessage() for r in caplog.records if "malformed" in r.getMessage()]
        assert len(lines) == 2, lines  # one per kind: a wrong shape, not JSON
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)


async def test_many_refused_coinglass_rows_are_one_warning(
    fake: FakeVendors, load, caplog: pytest.LogCaptureFixture
) -> None:
    """Coinglass rows the contract refuses, 50 in one message: one warning, not 50."""
    msg = load("coinglass/ws__liquidationOrders.json")
    good = msg["data"][0]
    rows = [{**good, "price": 1e-13}] * 50 + [good]
    async with coinglass_stream(fake) as got:
        await eventually(lambda: fake.ws_received["coinglass"], timeout=10, what="subscribe")
        with caplog.at_level(logging.WARNING, logger="perpsignal_connectors"):
            await fake.push("coinglass", {**msg, "data": rows})
            await eventually(lambda: got, timeout=10, what="the good row")
        assert len([r for r in caplog.records if "refused" in r.getMessage()]) == 1


async def test_live_kline_subscriptions_stay_within_binance_s_message_rate(
    fake: FakeVendors,
) -> None:
    """Binance disconnects a client sending more than 10 messages a second: a burst of
    universe changes (a listing wave, on-demand commands) sent one SUBSCRIBE each at once
    would cost the socket, and its liquidations with it. The requests are paced."""

    async def ignore(_: object) -> None:
        return None

    klines = ["btcusdt@kline_1m"]
    stream = BinanceUsdmStream(
        fake.ws_url("binance"), ignore, on_candle=ignore, kline_streams=lambda: klines
    )
    stop = asyncio.Event()
    task = asyncio.create_task(stream.ws.run(stop))
    try:
        await eventually(lambda: stream.ws.connected, timeout=10, what="connected")
        for i in range(12):
            klines.append(f"s{i}usdt@kline_1m")
            assert await stream.follow_klines() == (1, 0)
        del klines[1:7]
        assert await stream.follow_klines() == (0, 6)
        await eventually(
            lambda: fake.ws_subscribed["binance"] == {"!forceOrder@arr", *klines},
            timeout=10,
            what="the last request acknowledged",
        )
        assert fake.ws_closed_for_rate["binance"] == 0
        assert fake.ws_connects["binance"] == 1
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
