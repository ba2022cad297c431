"""report.json's statistics, factor diagnostics, net P&L, and --timerange on real history."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from perpsignal_cli import backtest
from perpsignal_cli.backtesting import diagnostics, report
from perpsignal_cli.backtesting.columns import SignalTable
from perpsignal_cli.backtesting.pipeline import History, RunResult, load_history, run_in_process
from perpsignal_cli.backtesting.timerange import (
    TimerangeError,
    keep_in_range,
    parse_timerange,
    restrict,
)
from perpsignal_common.events.market import FundingRateV1
from perpsignal_common.events.signals import FACTOR_NAMES
from perpsignal_domain.outcomes.evaluate import (
    HORIZON_SECONDS,
    NO_COSTS,
    Costs,
    pnl_pct,
    settlement_time,
)
from perpsignal_domain.research import stats

COSTS = Costs(taker_fee_bp=4.0, slippage_bp=1.5)
HORIZONS = ["1h", "4h", "24h"]


@pytest.fixture(scope="module")
def history(market: Path) -> History:
    return load_history(
        "XRPUSDT",
        market / "XRP_USDT_USDT-5m-futures.csv",
        funding=market / "XRP_USDT_USDT-8h-funding_rate.csv",
    )


@pytest.fixture(scope="module")
def runs(history: History) -> tuple[RunResult, RunResult]:
    return (
        run_in_process(history, progress=False, costs=NO_COSTS),
        run_in_process(history, progress=False, costs=COSTS),
    )


def test_costs_reduce_net_pnl_by_exactly_fees_slippage_and_funding(
    history: History, runs: tuple[RunResult, RunResult]
) -> None:
    gross_run, net_run = runs
    funding = sorted(
        (settlement_time(e.observed_at.timestamp()), e.rate)  # as the outcomes code reads them
        for e in history.events
        if isinstance(e, FundingRateV1)
    )
    paid = 0
    for g, n in zip(gross_run.records, net_run.records, strict=True):
        for h, og in g.outcomes.items():
            on = n.outcomes[h]
            if og is None or on is None:
                continue
            eg, en = og.evaluation, on.evaluation
            assert eg.net_pnl_pct == eg.pnl_pct  # the gross run
            assert en.pnl_pct == eg.pnl_pct
            t0 = n.judged.observed_at.timestamp()
            t1 = t0 + {"1h": 3600, "4h": 14400, "24h": 86400}[h]
            rates = sum(r for t, r in funding if t0 < t <= t1)
            sign = 1.0 if n.judged.direction == "LONG" else -1.0
            fees = 5.5 / 100 * (1 + en.exit_price / n.judged.price)  # (4 + 1.5) bp a leg
            assert en.net_pnl_pct == pytest.approx(eg.pnl_pct - fees - sign * rates * 100)
            paid += rates != 0
    assert paid > 0  # some windows held through a funding settlement


@pytest.fixture(scope="module")
def built(history: History, runs: tuple[RunResult, RunResult]) -> dict[str, Any]:
    return report.build_report(
        runs[1], history, horizons=HORIZONS, equity_horizon="4h", costs=COSTS
    )


def test_factor_diagnostics_give_mean_score_and_ic_with_interval(built: dict[str, Any]) -> None:
    diag = built["factor_diagnostics"]
    assert set(diag) == set(FACTOR_NAMES)
    with_data = [name for name, d in diag.items() if d["n_ok"]]
    assert "momentum" in with_data
    for name, d in diag.items():
        assert set(d["ic"]) == set(HORIZONS)
        if name not in with_data:
            assert d["mean_score"] is None
            continue
        assert 0 <= d["mean_score"] <= 100
        for h in HORIZONS:
            ic = d["ic"][h]
            assert ic["n"] > 10
            assert -1 <= ic["ic"] <= 1
            lo, hi = ic["ci95"]
            assert lo <= hi
            assert ic["excludes_zero"] == (lo > 0 or hi < 0)


def test_statistics_say_no_skill_in_words_when_the_evidence_does(built: dict[str, Any]) -> None:
    st = built["statistics"]
    per = {p["horizon"]: p for p in st["horizons"]}
    assert set(per) == set(HORIZONS)
    for p in per.values():
        assert p["n"] == next(
            r["n"]
            for r in built["performance"]
            if r["verdict"] == "ALL" and r["horizon"] == p["horizon"]
        )
        naive, overlap = p["win_rate_ci95_naive"], p["win_rate_ci95_overlap"]
        assert overlap[1] - overlap[0] > naive[1] - naive[0]
        assert set(p["p_values"]) == {"random_direction", "momentum", "always_long"}
        assert p["mean_net_pnl_pct"] < p["mean_pnl_pct"]
    unskilled = [h for h, p in per.items() if p["skill"] is False]
    text = " ".join(st["headline"])
    if unskilled:
        assert text.startswith("NO EVIDENCE OF SKILL at " + ", ".join(unskilled))
    confirms = sum(r["CONFIRM"] for r in built["signals_by_direction_verdict"].values())
    assert ("CONFIRM never occurred" in text) == (confirms == 0)
    assert built["run"]["costs"]["taker_fee_bp_per_side"] == 4.0


def test_timerange_parsing() -> None:
    assert parse_timerange("20211117-20211118") == (1637107200000, 1637193600000)
    assert parse_timerange("20211117-") == (1637107200000, None)
    assert parse_timerange("-20211118") == (None, 1637193600000)
    for bad in ("2021117-", "20211118-20211117", "-", "20211117"):
        with pytest.raises(TimerangeError):
            parse_timerange(bad)


def test_timerange_keeps_the_full_runs_signals_inside_it(
    history: History, runs: tuple[RunResult, RunResult]
) -> None:
    start, end = parse_timerange("20211117-20211119")
    assert start is not None
    assert end is not None
    cut = restrict(history, start, end)
    assert cut.base.open_ms[-1] + cut.base.step_ms <= end
    got = keep_in_range(run_in_process(cut, progress=False), start, end)
    want = [r for r in runs[0].records if start <= r.judged.observed_at.timestamp() * 1000 < end]
    assert got.records
    assert [r.judged.signal_id for r in got.records] == [r.judged.signal_id for r in want]
    assert [r.judged.score for r in got.records] == [r.judged.score for r in want]
    # nothing after the end is used: a 24h outcome due past it is not measured
    last = got.records[-1]
    assert last.outcomes.get("24h") is None


def test_cli_timerange_and_costs(market: Path, tmp_path: Path) -> None:
    args = [
        "--symbol", "XRPUSDT",
        "--candles", str(market / "XRP_USDT_USDT-5m-futures.csv"),
        "--timerange", "20211118-20211120",
        "--fee-bp", "0", "--slippage-bp", "0",
        "--no-progress", "--quiet", "--out", str(tmp_path),
    ]  # fmt: skip
    assert backtest.main(args) == 0
    data = json.loads((tmp_path / "report.json").read_text())
    signals = [json.loads(line) for line in (tmp_path / "signals.jsonl").read_text().splitlines()]
    assert len(signals) == data["run"]["signals"]
    times = [s["observed_at"] for s in signals]
    assert times
    assert min(times) >= "2021-11-18"
    assert max(times) < "2021-11-20"
    for s in signals:
        for o in s["outcomes"].values():
            if o:
                assert o["net_pnl_pct"] == o["pnl_pct"]  # no fees, no funding file
    assert "Does it carry information?" in (tmp_path / "report.html").read_text()
    assert backtest.main([*args[:4], "--timerange", "2021-11-18", "--out", str(tmp_path)]) == 2


@pytest.mark.parametrize("flag", ["--fee-bp", "--slippage-bp"])
@pytest.mark.parametrize("value", ["nan", "inf", "1e308", "-1"])
def test_cli_refuses_absurd_costs_before_scoring(
    market: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str
) -> None:
    """`--fee-bp nan` passed the `< 0` check, scored the whole history and then failed the
    symbol at the report's JSON write ("Out of range float values"); 1e308 made every net
    P&L infinite. Both CLIs now refuse such a cost up front, with the allowed range."""
    from perpsignal_cli import calibrate

    candles = str(market / "XRP_USDT_USDT-5m-futures.csv")
    out = tmp_path / "run"
    common = ["--symbol", "XRPUSDT", "--candles", candles, flag, value, "--out", str(out)]
    assert backtest.main([*common, "--no-progress", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert "perpsignal backtest: --fee-bp and --slippage-bp must be numbers from 0 to 10000" in err
    if value == "1e308":  # a number: calibrate's range check after parsing
        assert calibrate.main(common) == 2
        assert "--fee-bp/--slippage-bp from 0 to 10000" in capsys.readouterr().err
    else:  # not a finite number >= 0: calibrate's parser refuses it (a usage error)
        with pytest.raises(SystemExit) as exited:
            calibrate.main(common)
        assert exited.value.code == 2
        expected = f"argument {flag}: must be a finite number >= 0, got '{value}'"
        assert expected in capsys.readouterr().err
    assert not out.exists()  # refused before anything ran


def test_forward_returns_are_the_outcomes_window_and_pnl_of_each_signal(
    history: History, runs: tuple[RunResult, RunResult]
) -> None:
    """The vectorised forward returns the IC reads: per signal, the last close of the
    outcomes' own path window (`PathIndex.path`) through `pnl_pct`, bit for bit."""
    table = SignalTable.from_records(runs[0].records, HORIZONS)
    index = history.path_index(history.base)
    t_ms = table.t_ms().tolist()
    price = table.col("price").tolist()
    for h in HORIZONS:
        got = diagnostics.forward_returns(table, index, h)
        complete = 0
        for i, (t, p) in enumerate(zip(t_ms, price, strict=True)):
            path = index.path(t, t + HORIZON_SECONDS[h] * 1000)
            if path is None:
                assert math.isnan(got[i])
            else:
                assert got[i] == pnl_pct("LONG", p, path[-1].close)
                complete += 1
        assert complete > len(t_ms) // 2


def test_information_coefficient_is_spearman_with_an_interval_around_it() -> None:
    rng = np.random.default_rng(3)
    x = np.round(rng.normal(size=500), 1)  # ties, as factor sub-scores have
    y = 0.3 * x + rng.normal(size=500)
    ic, ci = stats.information_coefficient(x, y, block=5, reps=300)
    assert ic == stats.spearman(x, y)
    assert ci is not None and ci[0] < ic < ci[1]
    assert stats.information_coefficient(np.ones(50), y[:50], block=5) == (None, None)
