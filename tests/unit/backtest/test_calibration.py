"""Walk-forward calibration: purge, detection of a known-information factor, no false skill,
re-weighting equal to the engine, and `perpsignal calibrate` end to end on recorded data."""

from __future__ import annotations

import dataclasses
import itertools
import json
import os
from pathlib import Path

import numpy as np
import pytest

from perpsignal_cli import calibrate as cli
from perpsignal_cli.backtesting.pipeline import engine_config, load_history
from perpsignal_common.events.market import FundingRateV1
from perpsignal_common.events.signals import FACTOR_NAMES
from perpsignal_domain.outcomes.evaluate import Costs, evaluate, settled_between, settlement_time
from perpsignal_domain.research.calibration import (
    Calibration,
    Config,
    Panel,
    SearchSpace,
    calibrate,
    score_direction_confidence,
    walk_forward_splits,
)
from perpsignal_domain.scoring.config import DEFAULT_WEIGHTS
from perpsignal_domain.scoring.engine import ScoringEngine

BAR = 900.0
H = 16  # 4h horizon on 15m bars
DEFAULT = Config(tuple(DEFAULT_WEIGHTS[n] for n in FACTOR_NAMES), 65.0, 35.0, 35.0)
INFORMED = FACTOR_NAMES.index("liquidations")  # default weight 10


@pytest.mark.parametrize("anchored", [False, True])
@pytest.mark.parametrize(
    ("train_h", "test_h", "horizon_h"), [(72, 24, 4), (48, 12, 24), (10, 3, 1)]
)
def test_training_labels_never_overlap_a_test_window(
    anchored: bool, train_h: int, test_h: int, horizon_h: int
) -> None:
    times = np.arange(0, 10 * 86400, BAR)
    horizon = horizon_h * 3600.0
    folds = walk_forward_splits(
        0.0,
        times[-1] + 1,
        train_s=train_h * 3600,
        test_s=test_h * 3600,
        gap_s=horizon,
        anchored=anchored,
    )
    assert len(folds) >= 2
    for fold in folds:
        train = times[fold.train_mask(times, horizon)]
        test = times[fold.test_mask(times)]
        assert train.size and test.size
        # every training label (entry .. entry + horizon) ends before the test window starts
        assert (train + horizon).max() <= test.min()
        assert not np.intersect1d(train, test).size
    # test windows are consecutive and do not overlap one another
    for a, b in itertools.pairwise(folds):
        assert a.test_end <= b.test_start


def test_a_gap_shorter_than_the_horizon_is_refused(tmp_path: Path) -> None:
    rc = cli.main(
        [
            "--symbol",
            "X",
            "--candles",
            str(tmp_path / "none.csv"),
            "--gap",
            "1h",
            "--horizon",
            "4h",
            "--out",
            str(tmp_path),
        ]
    )
    assert rc == 2


def _synthetic(informed: bool, seed: int = 11, bars: int = 4000) -> Panel:
    """A market where the liquidations sub-score knows the sign of the next 4 h (or, with
    `informed` False, the same scores against shuffled returns)."""
    rng = np.random.default_rng(seed)
    steps = rng.normal(0.0, 0.25, bars + H)
    forward = np.array([steps[t + 1 : t + 1 + H].sum() for t in range(bars)])
    scores = np.clip(50.0 + rng.normal(0.0, 12.0, (bars, len(FACTOR_NAMES))), 0, 100)
    z = forward / forward.std()
    scores[:, INFORMED] = np.clip(50.0 + 20.0 * (0.6 * z + 0.8 * rng.normal(size=bars)), 0, 100)
    if not informed:
        forward = forward[rng.permutation(bars)]
    cost = 0.14
    return Panel(
        np.arange(bars, dtype=np.float64) * BAR,
        scores,
        np.ones_like(scores, dtype=bool),
        np.ones(bars),
        forward - cost,
        -forward - cost,
        H * BAR,
    )


def _run(panel: Panel) -> Calibration:
    folds = walk_forward_splits(
        float(panel.times[0]),
        float(panel.times[-1]) + 1,
        train_s=10 * 86400,
        test_s=5 * 86400,
        gap_s=panel.horizon_s,
    )
    return calibrate(
        panel, folds, SearchSpace(trials=150, seed=3), DEFAULT, final_train_s=10 * 86400
    )


def test_calibration_raises_the_informed_factors_weight_and_beats_the_default_oos() -> None:
    result = _run(_synthetic(informed=True))
    assert len(result.folds) >= 4
    chosen = [r.best.weights[INFORMED] for r in result.folds]
    assert np.mean(chosen) > 2 * DEFAULT_WEIGHTS["liquidations"]
    assert result.final.weights[INFORMED] > 2 * DEFAULT_WEIGHTS["liquidations"]
    assert result.pooled.mean_net_pnl_pct is not None
    assert result.pooled_current.mean_net_pnl_pct is not None
    assert result.pooled.mean_net_pnl_pct > result.pooled_current.mean_net_pnl_pct
    assert result.pooled.mean_net_pnl_pct > 0
    assert result.skill
    assert result.headline.startswith("OUT-OF-SAMPLE SKILL")


def test_on_a_shuffled_market_the_deflated_sharpe_says_no_skill() -> None:
    result = _run(_synthetic(informed=False))
    assert not result.skill
    assert result.headline.startswith("NO EVIDENCE OF SKILL")
    assert "Keep the defaults" in result.headline
    # the best of 150 trials, deflated for the number tried, is not convincing
    dsr = [r.deflated_sharpe for r in result.folds if r.deflated_sharpe is not None]
    assert dsr and np.median(dsr) < 0.95
    assert result.oos_psr is None or result.oos_psr < 0.95


def _xrp(market: Path) -> tuple[Path, Path, Path]:
    return (
        market / "XRP_USDT_USDT-5m-futures.csv",
        market / "XRP_USDT_USDT-8h-funding_rate.csv",
        market / "alternative_me-fear_greed-1d.csv",
    )


def test_reweighting_the_recorded_sub_scores_equals_running_the_engine_with_the_weights(
    market: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for k in [k for k in os.environ if k.startswith("SCORER_")]:
        monkeypatch.delenv(k)
    candles, funding, fg = _xrp(market)
    history = load_history("XRPUSDT", candles, funding=funding, fear_greed=fg)
    panel, current = cli.build_panel(history, 4 * 3600.0, Costs(), (None, None))
    assert current == DEFAULT
    other = Config((5.0, 40.0, 10.0, 5.0, 15.0, 5.0, 5.0, 15.0), 58.0, 42.0, 35.0)
    cfg = dataclasses.replace(
        engine_config(history.primary.timeframe),
        weights=dict(zip(FACTOR_NAMES, other.weights, strict=True)),
        long_threshold=58.0,
        short_threshold=42.0,
    )
    engine = ScoringEngine(cfg)
    signals = [s for ev in history.events for s in engine.apply(ev)]
    assert len(signals) == len(panel)
    score, direction, confidence = score_direction_confidence(panel, other)
    side = {"LONG": 1, "SHORT": -1, "NEUTRAL": 0}
    assert np.allclose(score, [s.score for s in signals], atol=2e-3)
    assert np.allclose(confidence, [s.confidence for s in signals], atol=0.05)
    got = np.array([side[s.direction] for s in signals])
    near = np.abs(score - 58.0) < 2e-3  # a tie at the threshold may round either way
    near |= np.abs(score - 42.0) < 2e-3
    assert (direction[~near] == got[~near]).all()
    assert (got != 0).sum() > 50  # the comparison covers directional signals


def test_perpsignal_calibrate_end_to_end_writes_settings_the_services_load(
    market: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from perpsignal_judge.settings import JudgeSettings
    from perpsignal_scorer.settings import ScorerSettings

    for k in [k for k in os.environ if k.startswith(("SCORER_", "JUDGE_"))]:
        monkeypatch.delenv(k)
    candles, funding, fg = _xrp(market)
    out = tmp_path / "cal"
    rc = cli.main(
        [
            "--symbol",
            "XRPUSDT",
            "--candles",
            str(candles),
            "--funding",
            str(funding),
            "--fear-greed",
            str(fg),
            "--train",
            "2d",
            "--test",
            "1d",
            "--trials",
            "60",
            "--out",
            str(out),
        ]
    )
    assert rc == 0
    printed = capsys.readouterr().out
    data = json.loads((out / "calibration.json").read_text())
    # the verdict in words comes first, in the output and in both files
    assert printed.splitlines()[0] == data["headline"]
    assert data["headline"].startswith(("NO EVIDENCE OF SKILL", "OUT-OF-SAMPLE SKILL"))
    env_text = (out / "calibrated.env").read_text()
    assert env_text.splitlines()[0] == "# perpsignal calibrate: " + data["headline"]
    if not data["skill"]:
        assert data["recommendation"] == "keep the defaults"
        assert "keep the defaults" in env_text
    assert data["trials"] == 60
    assert len(data["folds"]) == 4  # 7 days: 2d train + 4h gap, then four 1-day tests
    for fold in data["folds"]:
        assert fold["train"][1] < fold["test"][0]  # purge gap
        assert {"in_sample", "out_of_sample", "deflated_sharpe"} <= set(fold)
    # the settings classes read the file as written
    final = data["final"]["config"]
    scorer = ScorerSettings(_env_file=out / "calibrated.env")
    cfg = scorer.engine_config()
    assert cfg.weights == final["weights"]
    assert (cfg.long_threshold, cfg.short_threshold) == (
        final["long_threshold"],
        final["short_threshold"],
    )
    # the recorded set has no liquidations, positioning, OI or social input: kept as they are
    assert data["searched_factors"] == ["funding", "momentum", "smart_money", "fear_greed"]
    for name in ("liquidations", "long_short", "oi_trend", "social"):
        assert final["weights"][name] == DEFAULT_WEIGHTS[name]
    judge = JudgeSettings(_env_file=out / "calibrated.env")
    assert judge.judge_min_confidence == final["min_confidence"]


def test_factors_the_history_never_scored_keep_their_weights() -> None:
    free = [n not in ("social", "oi_trend") for n in FACTOR_NAMES]
    configs = SearchSpace(trials=50, seed=1).configs(DEFAULT, free)
    assert len(configs) == 50 and configs[0] == DEFAULT
    for c in configs:
        w = dict(zip(FACTOR_NAMES, c.weights, strict=True))
        assert (w["social"], w["oi_trend"]) == (5.0, 10.0)
        assert sum(c.weights) == pytest.approx(100.0)
        assert all(x >= 0 for x in c.weights)
    # the searched ones do move
    assert len({c.weights for c in configs}) > 40


def test_panel_pnl_is_what_the_outcomes_code_measures_for_each_side(market: Path) -> None:
    candles, funding, fg = _xrp(market)
    history = load_history("XRPUSDT", candles, funding=funding, fear_greed=fg)
    costs = Costs(taker_fee_bp=5.0, slippage_bp=2.0)
    panel, _ = cli.build_panel(history, 8 * 3600.0, costs, (None, None))
    index = history.path_index(history.base)
    settled = sorted(
        (settlement_time(e.observed_at.timestamp()), float(e.rate))  # as outcomes reads them
        for e in history.events
        if isinstance(e, FundingRateV1) and e.settled
    )
    times, rates = [t for t, _ in settled], [r for _, r in settled]
    checked = paid = 0
    for k in range(0, len(panel), 7):
        t = float(panel.times[k])
        path = index.path(round(t * 1000), round((t + 8 * 3600) * 1000))
        if not path:
            assert np.isnan(panel.long_pnl[k]) and np.isnan(panel.short_pnl[k])
            continue
        base = history.base
        entry = next(
            c for o, c in zip(base.open_ms, base.close, strict=True) if o + 300_000 == t * 1000
        )
        window = settled_between(times, rates, t, t + 8 * 3600)
        for side, got in (("LONG", panel.long_pnl[k]), ("SHORT", panel.short_pnl[k])):
            ev = evaluate(side, entry, path, costs=costs, funding_rates=window)
            assert got == pytest.approx(ev.net_pnl_pct, abs=1e-9)
        checked += 1
        paid += bool(window)
    assert checked > 50 and paid > 5  # the 8h windows cross funding settlements
