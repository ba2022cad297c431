"""A backtest split over processes gives the one-process run's signals and report, exactly.

Real recorded XRPUSDT 5m candles with the recorded funding and fear & greed series (point
events between the candles, some at the part boundaries); the split threshold is lowered so
that this 2,000-bar history splits into two and three forked parts.
"""

from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

from perpsignal_cli.backtest import run_symbol
from perpsignal_cli.backtesting import split
from perpsignal_cli.backtesting.chart import MAX_MARKERS
from perpsignal_cli.backtesting.pipeline import load_history

pytestmark = pytest.mark.skipif(not split.can_split(), reason="no fork on this platform")


@pytest.fixture(autouse=True)
def _defaults(monkeypatch: pytest.MonkeyPatch) -> None:
    for k in [k for k in os.environ if k.startswith(("SCORER_", "JUDGE_"))]:
        monkeypatch.delenv(k)
    monkeypatch.setattr(split, "SPLIT_MIN_BARS", 200)


def _without_run_time(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if k != "generated"}


def _chart(page: str) -> Any:
    found = re.search(
        r"<script type=application/json id=price-chart-data>(.*?)</script>", page, re.S
    )
    assert found is not None, "no chart data in the page"
    return json.loads(found.group(1).replace("<\\/", "</"))


def _history(market: Path) -> Any:
    return load_history(
        "XRPUSDT",
        market / "XRP_USDT_USDT-5m-futures.csv",
        funding=market / "XRP_USDT_USDT-8h-funding_rate.csv",
        fear_greed=market / "alternative_me-fear_greed-1d.csv",
        timeframe="5m",
    )


def _run(market: Path, out: Path, jobs: int, span: tuple[int | None, int | None]) -> Any:
    history = _history(market)
    assert split.parts_for(history, jobs) == jobs
    result, _ = run_symbol(history, out, horizons=["1h", "4h"], span=span, jobs=jobs)
    return result


@pytest.mark.parametrize("jobs", [2, 3])
def test_split_run_equals_the_one_process_run(market: Path, tmp_path: Path, jobs: int) -> None:
    one = _run(market, tmp_path / "one", 1, (None, None))
    many = _run(market, tmp_path / "many", jobs, (None, None))
    signals = (tmp_path / "one" / "signals.jsonl").read_bytes()
    assert signals.count(b"\n") > 1500  # a signal per bar after the warm-up
    assert (tmp_path / "many" / "signals.jsonl").read_bytes() == signals
    reports = [json.loads((tmp_path / d / "report.json").read_text()) for d in ("one", "many")]
    assert _without_run_time(reports[1]) == _without_run_time(reports[0])
    assert (many.events_done, many.events_total, many.interrupted) == (
        one.events_done,
        one.events_total,
        False,
    )
    assert not list((tmp_path / "many").glob(".parts-*"))  # the part files are gone
    # the page's chart reads the directional lines at offsets each part's writer noted,
    # shifted by the parts joined before it: the one-process run's chart
    charts = [_chart((tmp_path / d / "report.html").read_text()) for d in ("one", "many")]
    assert charts[1] == charts[0]
    directional = sum(b'"direction":"NEUTRAL"' not in line for line in signals.splitlines())
    assert len(charts[0]["markers"]) == min(directional, MAX_MARKERS) > 10


def test_split_keeps_only_the_signals_in_the_span(market: Path, tmp_path: Path) -> None:
    lo, hi = 1_636_934_400_000, 1_637_193_600_000  # 2021-11-15 .. 2021-11-18, mid-history
    _run(market, tmp_path / "one", 1, (lo, hi))
    _run(market, tmp_path / "many", 2, (lo, hi))
    rows = (tmp_path / "many" / "signals.jsonl").read_bytes()
    assert rows == (tmp_path / "one" / "signals.jsonl").read_bytes()
    times = [json.loads(line)["observed_at"] for line in rows.splitlines()]
    assert times and times[0] >= "2021-11-15" and times[-1] < "2021-11-18"


def test_cuts_balance_the_replay_against_the_span() -> None:
    times = [float(t) for t in range(10_000)]
    assert split.cuts(times, 1) == []
    (c,) = split.cuts(times, 2, warm=0.2)
    # part 1 replays c bars at 0.2 each and scores the rest; part 0 scores c: equal work
    assert c == pytest.approx(10_000 / 1.8, abs=2)
    three = split.cuts(times, 3, warm=0.2)
    assert three == sorted(three) and len(three) == 3 - 1
    work = [three[0], 0.2 * three[0] + three[1] - three[0], 0.2 * three[1] + 10_000 - three[1]]
    assert max(work) - min(work) < 3
    assert split.cuts(times[:2], 3) == []  # fewer bars than parts: no split


def test_which_histories_split(market: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    history = load_history("XRPUSDT", market / "XRP_USDT_USDT-5m-futures.csv", timeframe="5m")
    assert split.parts_for(history, 1) == 1
    assert split.parts_for(history, 2) == split.parts_for(history, 2, auto=True) == 2
    # a very long history stays in one process by default (flat memory), not when asked
    monkeypatch.setattr(split, "SPLIT_AUTO_MAX_BARS", len(history.primary) - 1)
    assert split.parts_for(history, 2, auto=True) == 1
    assert split.parts_for(history, 2) == 2
    monkeypatch.setattr(split, "SPLIT_MIN_BARS", 5_000)  # a short one never splits
    assert split.parts_for(history, 2) == 1


class _StopAt:
    """The rule judge, with Ctrl-C arriving when it reaches `at` (in whichever part)."""

    def __init__(self, at: str) -> None:
        from perpsignal_cli.backtesting.pipeline import rules_judge

        self.judge = rules_judge()
        self.at = at

    def judge_rules(self, sig: Any) -> Any:
        if sig.observed_at.isoformat() >= self.at:
            raise KeyboardInterrupt
        return self.judge.judge_rules(sig)


def test_ctrl_c_keeps_a_prefix_of_the_history(market: Path, tmp_path: Path) -> None:
    from perpsignal_cli.backtesting.columns import SignalTable

    _run(market, tmp_path / "one", 1, (None, None))
    whole = (tmp_path / "one" / "signals.jsonl").read_bytes().splitlines(keepends=True)
    at = json.loads(whole[300])["observed_at"]  # inside the first part
    history = _history(market)
    table = SignalTable(["1h", "4h"])
    result = split.run_split(
        history,
        tmp_path / "stopped",
        table,
        parts=2,
        horizons=["1h", "4h"],
        judge=_StopAt(at),  # type: ignore[arg-type]
        progress=False,
    )
    assert result.interrupted
    kept = (tmp_path / "stopped" / "signals.jsonl").read_bytes()
    # the first part's signals before the stop; the finished second part is not reported
    # (it would leave a hole in the history)
    assert kept == b"".join(whole[:300])
    assert len(table) == 300
