"""The constant-memory backtest gives what the in-memory one gives, on real history.

The events generated bar by bar are the list the scorer used to get; a streamed run's
signals.jsonl rows and summaries equal those built from the records kept in memory; the
judge's sliding true-range cache and the engine without per-candle checkpoints change no
verdict, plan or score.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from perpsignal_cli.backtesting import importers as imp
from perpsignal_cli.backtesting import report
from perpsignal_cli.backtesting.columns import SignalTable, SignalWriter, read_signals, signal_row
from perpsignal_cli.backtesting.pipeline import (
    CANDLE_CHUNK,
    EventStream,
    History,
    load_history,
    merge,
    rules_judge,
    run_in_process,
)
from perpsignal_common.events.base import utcnow
from perpsignal_domain.judging.judge import RuleJudge

HORIZONS = ["1h", "4h", "24h"]


@pytest.fixture(scope="module")
def history(market: Path) -> History:
    # 5m candles scored on 5m: more bars than one generation chunk, funding and F&G between
    return load_history(
        "XRPUSDT",
        market / "XRP_USDT_USDT-5m-futures.csv",
        funding=market / "XRP_USDT_USDT-8h-funding_rate.csv",
        fear_greed=market / "alternative_me-fear_greed-1d.csv",
        timeframe="5m",
    )


def test_event_stream_is_the_merged_event_list(history: History) -> None:
    stream = history.events
    assert isinstance(stream, EventStream)
    assert len(history.primary) > 2 * CANDLE_CHUNK
    want = merge([*imp.candle_events(history.primary, "XRPUSDT"), *stream.points])
    got = list(stream)
    assert len(got) == len(stream) == len(want)
    assert [e.event_id for e in got] == [e.event_id for e in want]
    assert got == want
    # a window of it is the same filter applied to the list
    lo = want[len(want) // 3].observed_at.timestamp() * 1000
    hi = want[2 * len(want) // 3].observed_at.timestamp() * 1000
    inside = [e for e in want if lo <= e.observed_at.timestamp() * 1000 <= hi]
    assert [e.event_id for e in stream.between(lo, hi)] == [e.event_id for e in inside]


def test_streamed_run_equals_the_in_memory_run(history: History, tmp_path: Path) -> None:
    kept = run_in_process(history, progress=False, horizons=HORIZONS)
    table = SignalTable(HORIZONS)
    with SignalWriter(tmp_path, table) as sink:
        streamed = run_in_process(history, progress=False, horizons=HORIZONS, sink=sink)
    assert streamed.records == [] and len(kept.records) == len(table) > 0
    assert list(read_signals(tmp_path)) == [signal_row(r) for r in kept.records]
    kw = {"horizons": HORIZONS, "equity_horizon": "4h"}
    a = report.build_report(kept, history, **kw)
    b = report.build_report(streamed, history, table=table, **kw)
    for r in (a, b):
        r.pop("generated")
    assert a == b
    assert a["performance"][0]["n"] > 0


def test_sliding_true_ranges_change_no_verdict(history: History) -> None:
    # no known ranges: ATR from the whole window, as before the cache
    plain = RuleJudge(rules_judge().config, clock=utcnow)
    run = run_in_process(history, progress=False, horizons=["1h"])
    assert run.records
    for rec in run.records[:: max(1, len(run.records) // 300)]:
        j = rec.judged
        vol, rules = plain.assess(j.symbol, j)  # a judged signal has every scored field
        assert vol == j.ai_verdict_layer.volatility_metrics
        assert rules.verdict == j.ai_verdict_layer.verdict
    assert any(r.judged.ai_verdict_layer.volatility_metrics.atr for r in run.records)


def test_engine_without_checkpoints_scores_as_the_live_one(history: History) -> None:
    from perpsignal_cli.backtesting.pipeline import engine_config
    from perpsignal_domain.scoring.engine import ScoringEngine

    live = ScoringEngine(engine_config(history.primary.timeframe))  # atomic, as the scorer
    assert live.atomic
    want = [s for ev in history.events for s in live.apply(ev)]
    run = run_in_process(history, progress=False, horizons=["1h"])
    got = [r.judged for r in run.records]
    assert len(got) == len(want) > 0
    for j, s in zip(got, want, strict=True):
        assert (j.causation_id, j.score, j.direction) == (s.event_id, s.score, s.direction)
        assert j.factors == s.factors
