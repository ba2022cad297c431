"""One liquidation moves the liquidation factor once, whatever sources report it.

The inputs are what the ingestor really emits: the recorded Binance `forceOrder` message
through the Binance stream's parser and the ingestor's relay and bucket builder; the same
order as Coinglass's stream relays it (the recorded Coinglass message with this order's
values) through the Coinglass parser; Coinglass's recorded all-exchange totals through its
parser. The scorer side is the real engine.
"""

from __future__ import annotations

import copy
import itertools
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

import orjson
import pytest

from perpsignal_common.events.base import Event
from perpsignal_common.events.market import LiquidationBucketV1, LiquidationOrderV1
from perpsignal_connectors.binance_usdm.stream import BinanceUsdmStream
from perpsignal_connectors.coinglass import schemas as cg_s
from perpsignal_connectors.coinglass.parsing import parse_liquidation_history
from perpsignal_connectors.coinglass.stream import CoinglassStream
from perpsignal_connectors.ids import ms_to_dt
from perpsignal_domain.scoring.config import EngineConfig
from perpsignal_domain.scoring.engine import ScoringEngine
from perpsignal_domain.scoring.factors.base import FactorResult
from perpsignal_ingestor.publisher import Publisher
from perpsignal_ingestor.sources.liquidations import LiquidationAggregator, LiquidationRelay

SYMBOL = "BTCUSDT"
FOUR_H_MS = 4 * 3600 * 1000
# the Coinglass totals are 4h intervals: look back over one so they are in the window
CFG = EngineConfig(primary_timeframe="5m", smc_timeframes=("5m",), liquidation_window_s=4 * 3600)


class _Producer:
    """The Kafka producer's place: records what the ingestor publishes."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    async def publish(self, event: Event, **_: object) -> None:
        self.events.append(event)

    async def wait_delivered(self) -> None:
        return None

    async def publish_many(self, events: Iterable[Event], **_: object) -> int:
        n = 0
        for event in events:
            await self.publish(event)
            n += 1
        return n


def _api(shared_data: Path, rel: str) -> dict[str, object]:
    data: dict[str, object] = json.loads((shared_data / "api" / rel).read_text())
    return data


class IngestorLiquidations:
    """The ingestor's liquidation path: both streams relayed into one aggregator."""

    def __init__(self, shared_data: Path, trade_ms: int | None = None) -> None:
        self.shared = shared_data
        self.force_order = _api(shared_data, "binance_usdm/ws_forceOrder.doc_example.json")
        order = self.force_order["o"]
        assert isinstance(order, dict)
        if trade_ms is not None:  # the recorded message moved to another time
            self.force_order["E"] = order["T"] = trade_ms
        self.trade_ms = int(order["T"])
        self.producer = _Producer()
        self.now_s = 0.0
        self.aggregator = LiquidationAggregator(300, clock=lambda: self.now_s)
        publisher = Publisher(self.producer)  # type: ignore[arg-type]
        binance = LiquidationRelay(publisher, self.aggregator, "binance_stream")
        coinglass = LiquidationRelay(publisher, self.aggregator, "coinglass_stream")
        self.binance = BinanceUsdmStream("ws://unused", binance.on_liquidation)
        self.coinglass = CoinglassStream("key", coinglass.on_liquidation, "ws://unused")

    async def binance_order(self) -> None:
        await self.binance._handle(orjson.dumps(self.force_order))

    async def coinglass_relay(self) -> None:
        """Coinglass's message for the same order (its recorded message as the template)."""
        msg = copy.deepcopy(_api(self.shared, "coinglass/ws__liquidationOrders.json"))
        order = self.force_order["o"]
        assert isinstance(order, dict)
        price, qty = float(order["ap"]), float(order["z"])
        row = msg["data"][0]  # type: ignore[index]
        row.update(  # a SELL liquidation order closes a long: Coinglass side 1
            {"exName": "Binance", "symbol": order["s"], "side": 1 if order["S"] == "SELL" else 2}
        )
        row.update({"price": price, "volUsd": price * qty, "time": self.trade_ms})
        await self.coinglass._handle(orjson.dumps(msg))

    def buckets(self) -> list[LiquidationBucketV1]:
        self.now_s = self.trade_ms / 1000 + 600  # the order's 5-minute window has ended
        return self.aggregator.flush()

    def coinglass_totals(self) -> list[LiquidationBucketV1]:
        """The recorded all-exchange totals, moved onto the 4h interval of the order."""
        body = _api(self.shared, "coinglass/liquidation__aggregated-liquidation-history.json")
        rows = cg_s.LIQUIDATION_AGG.validate_python(body["data"])[:1]
        start = self.trade_ms - self.trade_ms % FOUR_H_MS
        rows = [rows[0].model_copy(update={"time": start})]
        return parse_liquidation_history(rows, "BTC", "4h", ms_to_dt(start + FOUR_H_MS))

    @property
    def evaluated_at(self) -> float:
        return (self.trade_ms - self.trade_ms % FOUR_H_MS + FOUR_H_MS) / 1000


def _factor(events: Sequence[Event], at: float) -> FactorResult:
    engine = ScoringEngine(CFG)
    for e in events:
        engine.apply(e)
    return engine.evaluate(SYMBOL, at).results["liquidations"]


def _moved(r: FactorResult) -> tuple[float, str, object]:
    """What the factor says (its age follows the newest report, which may be a bucket)."""
    return r.score, r.status, r.inputs


async def _sources(
    shared_data: Path, *, binance: bool, coinglass_stream: bool
) -> IngestorLiquidations:
    ing = IngestorLiquidations(shared_data)
    if binance:
        await ing.binance_order()
    if coinglass_stream:
        await ing.coinglass_relay()
    return ing


@pytest.mark.parametrize(
    ("binance", "buckets", "coinglass_stream", "coinglass_totals"),
    [
        (True, False, False, False),  # order stream only
        (True, True, False, False),  # + the ingestor's buckets
        (True, True, True, False),  # + Coinglass's relay of the same order
        (True, True, True, True),  # + Coinglass's all-exchange totals
        (True, False, False, True),  # order stream + totals
        (False, True, True, False),  # Coinglass's relay is the only order stream
        (False, True, True, True),
    ],
)
async def test_one_order_moves_the_factor_once_whatever_the_sources(
    shared_data: Path, binance: bool, buckets: bool, coinglass_stream: bool, coinglass_totals: bool
) -> None:
    ing = await _sources(shared_data, binance=binance, coinglass_stream=coinglass_stream)
    orders = [e for e in ing.producer.events if isinstance(e, LiquidationOrderV1)]
    assert len(orders) == binance + coinglass_stream  # both streams relay their copy
    notional = orders[0].notional_usd
    assert orders[0].liquidated_side == "LONG"  # the recorded order is a SELL
    events: list[Event] = [*orders]
    if buckets:
        built = ing.buckets()
        assert [(b.long_liquidations_usd, b.count) for b in built] == [(notional, 1)]
        events += built
    if coinglass_totals:
        totals = ing.coinglass_totals()
        assert totals and totals[0].long_liquidations_usd > 1e6  # other orders, other venues
        events += totals
    at = ing.evaluated_at
    alone = _factor(orders[:1], at)
    assert alone.inputs["long_liquidations_usd"] == round(notional, 2)
    assert alone.inputs["short_liquidations_usd"] == 0
    # every arrival order gives the same answer: counted once
    for arrival in itertools.permutations(events):
        got = _moved(_factor(arrival, at))
        assert got == _moved(alone), [e.type + "/" + e.source for e in arrival]


async def test_replayed_orders_are_counted_once(shared_data: Path) -> None:
    """A rebalance rewinds the partition into live state: the order comes again."""
    ing = await _sources(shared_data, binance=True, coinglass_stream=False)
    order = ing.producer.events[0]
    once = _factor([order], ing.evaluated_at)
    assert _moved(_factor([order, order.model_copy(), order], ing.evaluated_at)) == _moved(once)


async def test_buckets_and_totals_count_where_no_order_was_received(shared_data: Path) -> None:
    """Buckets stand in for orders the scorer did not see (e.g. older than the rewind), and
    Coinglass totals for a symbol no order stream reported in the interval."""
    ing = await _sources(shared_data, binance=True, coinglass_stream=False)
    bucket = ing.buckets()
    notional = bucket[0].long_liquidations_usd
    assert _factor(bucket, ing.evaluated_at).inputs["long_liquidations_usd"] == round(notional, 2)
    totals = ing.coinglass_totals()
    got = _factor(totals, ing.evaluated_at).inputs["long_liquidations_usd"]
    assert got == round(totals[0].long_liquidations_usd, 2)
    # the totals include the venue's bucket: the finer per-venue data wins, never both
    for arrival in itertools.permutations([*bucket, *totals]):
        both = _factor(arrival, ing.evaluated_at)
        assert both.inputs["long_liquidations_usd"] == round(notional, 2)


async def test_the_ingestor_bucket_sums_one_source_per_venue(shared_data: Path) -> None:
    """Both streams relay the order; the window's bucket counts it once, from Binance."""
    ing = await _sources(shared_data, binance=True, coinglass_stream=True)
    built = ing.buckets()
    assert len(built) == 1
    assert (built[0].source, built[0].venue, built[0].count) == ("binance", "binance", 1)
