"""A candle that comes after newer ones is dead-lettered with its reason, never lost unseen.

A symbol's series only grows, so the engine does not take a candle opening before its
newest bar. The service used to drop such a candle silently: a gap's backfill arriving after
the stream's newer candles, or a stray from the past, left a hole in the series that no
signal, log or dead letter showed. Now it is a `PoisonMessage` (the consumer dead-letters
it with the reason); a redelivery of a bar the series holds stays silent, and the symbol
goes on scoring. Candles: the recorded XRPUSDT rows through the Binance klines parser.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from perpsignal_common.errors import PoisonMessage
from perpsignal_common.events.signals import SignalScoredV1
from perpsignal_common.events.topics import Topic
from perpsignal_scorer.settings import ScorerSettings
from tests.poison_helpers import binance_candles
from tests.unit.scorer.test_mss_clock import _Service

SETTINGS = ScorerSettings(scorer_primary_timeframe="5m", scorer_smc_timeframes="5m")


def _signals(svc: _Service) -> list[SignalScoredV1]:
    return [e for e in svc.published if isinstance(e, SignalScoredV1)]


async def test_a_backfilled_candle_after_newer_ones_is_dead_lettered(shared_data: Path) -> None:
    candles = binance_candles(
        shared_data / "market" / "XRP_USDT_USDT-5m-futures.csv", "XRPUSDT", "5m", 42
    )
    svc = _Service(SETTINGS)
    late = candles[25]
    for c in candles[:25] + candles[26:40]:
        await svc.handle(c, Topic.MARKET)
    assert len(_signals(svc)) == 39
    with pytest.raises(PoisonMessage, match="came after the newer bar") as refused:
        await svc.handle(late, Topic.MARKET)
    assert late.open_time.isoformat() in str(refused.value)
    assert candles[39].open_time.isoformat() in str(refused.value)
    # a redelivery of a bar the series holds changes nothing and is no poison
    await svc.handle(candles[30], Topic.MARKET)
    assert len(_signals(svc)) == 39
    # the symbol goes on: the next candles are scored as before
    for c in candles[40:]:
        await svc.handle(c, Topic.MARKET)
    assert [s.causation_id for s in _signals(svc)[-2:]] == [c.event_id for c in candles[40:]]


async def test_a_candle_older_than_the_kept_bars_is_dead_lettered(shared_data: Path) -> None:
    candles = binance_candles(
        shared_data / "market" / "XRP_USDT_USDT-5m-futures.csv", "XRPUSDT", "5m", 305
    )
    svc = _Service(SETTINGS)
    for c in candles[1:]:
        await svc.handle(c, Topic.MARKET)
    with pytest.raises(PoisonMessage, match="opens before the 300 bars the scorer keeps"):
        await svc.handle(candles[0], Topic.MARKET)
    assert len(_signals(svc)) == 304
