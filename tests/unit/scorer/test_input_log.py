"""A missing or stale input is logged once, when its status changes, never per signal.

The scorer scores a missing or stale input neutral and lowers the confidence, and said so
only inside each signal: an operator reading the logs saw nothing when a feed went quiet.
Input: the recorded XRPUSDT week (5m candles, funding, fear & greed) through the service's
market handler, with the funding feed ending a day and a half before the candles.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path

import pytest

from perpsignal_common.events.signals import SignalScoredV1
from perpsignal_common.events.topics import Topic
from perpsignal_scorer.settings import ScorerSettings
from tests.unit.scorer import recorded
from tests.unit.scorer.test_mss_clock import _Service

LOGGER = "perpsignal_scorer.service"


async def test_inputs_missing_or_going_stale_are_logged_once(
    shared_data: Path, caplog: pytest.LogCaptureFixture
) -> None:
    m = shared_data / "market"
    candles = recorded.candles(m / "XRP_USDT_USDT-5m-futures.csv", "XRPUSDT", "5m")
    cut = candles[-1].observed_at - timedelta(hours=36)
    funding = [
        f
        for f in recorded.funding(m / "XRP_USDT_USDT-8h-funding_rate.csv", "XRPUSDT")
        if f.observed_at <= cut
    ]
    fng = recorded.fear_greed(m / "alternative_me-fear_greed-1d.csv")
    svc = _Service(ScorerSettings(scorer_primary_timeframe="5m", scorer_smc_timeframes="5m,1h"))
    caplog.set_level(logging.INFO, logger=LOGGER)
    for event in recorded.merged(fng, funding, candles):
        if event.type == "global.fear_greed":
            svc.service.engine.apply(event)  # the global loop's handler
        else:
            await svc.handle(event, Topic.MARKET)
    signals = [e for e in svc.published if isinstance(e, SignalScoredV1)]
    assert len(signals) == len(candles)
    stale = [s for s in signals if "funding" in s.stale_factors]
    assert stale and stale[-1] is signals[-1]  # the feed ended: stale from then on
    lines = [r for r in caplog.records if r.name == LOGGER]
    assert len(lines) <= 8, [r.getMessage() for r in lines]  # status changes, not signals
    first = lines[0].getMessage()
    for name in ("liquidations", "funding", "long_short", "oi_trend", "social"):
        assert f"{name} missing" in first, first
    lost = [r for r in lines if r.levelno == logging.WARNING]
    assert len(lost) == 1, [r.getMessage() for r in lines]
    assert "XRPUSDT" in lost[0].getMessage() and "funding stale" in lost[0].getMessage()
    assert any("now scores" in r.getMessage() and "funding" in r.getMessage() for r in lines)
