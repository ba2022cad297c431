"""`perpsignal demo`'s plan: bundled real data, ends on a trade plan, says what it replays."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from perpsignal_cli import demo
from perpsignal_common.events.market import CandleClosedV1, FearGreedV1, FundingRateV1
from tests.recorded import ARCHIVE


def test_plan_replays_the_bundled_xrp_week_and_ends_on_a_directional_signal(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    market = demo.unpack(ARCHIVE, tmp_path / "recorded") / "market"
    with caplog.at_level(logging.INFO):
        plan = demo.build_plan(market, speed=5000)
    # the plan's own run prints nothing in the user's terminal (the live judge logs the same)
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING] == []
    kinds = {type(e) for e in plan.events}
    assert kinds == {CandleClosedV1, FundingRateV1, FearGreedV1}
    candles = [e for e in plan.events if isinstance(e, CandleClosedV1)]
    assert {c.symbol for c in candles} == {"XRPUSDT"} and {c.timeframe for c in candles} == {"15m"}
    assert all(c.venue == "binance" for c in candles)  # the scorer's primary venue
    times = [e.observed_at for e in plan.events]
    assert times == sorted(times)  # observation order, as the replay paces it
    assert plan.directional > 10
    # cut after the data's last LONG/SHORT signal: the dashboard ends on a trade plan
    assert plan.last.isoformat() == "2021-11-21T20:15:00+00:00"
    info = plan.describe()
    assert "replay of recorded real market data" in info["message"]
    assert "2021-11-15 00:00 to 2021-11-21 20:15 UTC" in info["message"]
    assert "5000x" in info["message"] and info["symbols"] == ["XRPUSDT"]


def test_demo_env_turns_vendors_off_and_outcomes_to_market_time(tmp_path: Path) -> None:
    market = demo.unpack(ARCHIVE, tmp_path / "recorded") / "market"
    env = demo.demo_env(demo.build_plan(market, speed=100), tmp_path)
    assert env["INGESTOR_ENABLED_SOURCES"] == ""
    assert env["OUTCOMES_CLOCK"] == "event" and env["OUTCOMES_KLINES_FALLBACK"] == "false"
    assert env["NOTIFIER_PREVIEW"] == "true" and env["TELEGRAM_BOT_TOKEN"] == ""
    assert env["ENABLE_AI_JUDGE"] == "false"


def test_telegram_html_is_shown_as_the_reader_sees_it() -> None:
    assert demo.telegram_text("🟢 <b>LONG XRPUSDT</b> &amp; <code>1.2</code>") == (
        "🟢 LONG XRPUSDT & 1.2"
    )
