"""Cost of `perpsignal calibrate` on the real FTX BTC-PERP month (1m candles, 15m scoring).

Why re-weighting: the scorer's composite is linear in the sub-scores, so a configuration is
scored by array arithmetic over sub-scores recorded once (`research.calibration`), instead of
replaying the history through the engine per configuration. Figures, same run:

* per configuration: the search's cost (200 configurations x every fold, divided out)
  against one engine replay of the history with one configuration (what the naive search
  pays per configuration); goal <= 1 % of a replay;
* the whole calibration (one engine pass + outcomes + 8 folds x 200 configurations) against
  one replay alone: goal within 5x (the naive search replays the history 1,800 times).

Run: `uv run python bench/calibration_cost.py`.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Row, report

REPO = Path(__file__).resolve().parents[1]
FTX = REPO.parent / "shared" / "data" / "market" / "ftx-btc-perp-20211231-20220201_1m.csv"
TRIALS = 200


def main() -> None:
    from perpsignal_cli.backtesting.pipeline import engine_config, load_history
    from perpsignal_cli.calibrate import build_panel
    from perpsignal_common.events.signals import FACTOR_NAMES
    from perpsignal_domain.outcomes.evaluate import Costs
    from perpsignal_domain.research.calibration import (
        SearchSpace,
        calibrate,
        walk_forward_splits,
    )
    from perpsignal_domain.scoring.engine import ScoringEngine

    history = load_history("BTCUSDT", FTX)
    horizon = 4 * 3600.0

    # baseline: one replay of the history with one (non-default) configuration
    cfg = engine_config(history.primary.timeframe)
    other = dataclasses.replace(
        cfg, weights=dict(zip(FACTOR_NAMES, (5, 20, 30, 5, 15, 5, 5, 15), strict=True))
    )
    started = time.perf_counter()
    engine = ScoringEngine(other)
    n_signals = sum(len(engine.apply(ev)) for ev in history.events)
    replay = time.perf_counter() - started

    started = time.perf_counter()
    panel, current = build_panel(history, horizon, Costs(), (None, None))
    panel_s = time.perf_counter() - started
    folds = walk_forward_splits(
        float(panel.times[0]),
        float(panel.times[-1]) + 1,
        train_s=7 * 86400,
        test_s=3 * 86400,
        gap_s=horizon,
    )
    started = time.perf_counter()
    calibrate(panel, folds, SearchSpace(trials=TRIALS), current, final_train_s=7 * 86400)
    search = time.perf_counter() - started
    configs = TRIALS * (len(folds) + 1)  # every fold and the final fit
    per_config = search / configs
    print(
        f"{len(panel)} bars ({n_signals} signals per replay), {len(folds)} folds, "
        f"{configs} configurations evaluated: panel {panel_s:.2f} s, search {search:.2f} s, "
        f"one replay {replay:.2f} s"
    )
    report(
        "calibration_cost",
        [
            Row(
                "calibrate: per configuration (re-weighted)",
                per_config * 1000,
                "ms",
                "one engine replay per configuration",
                replay * 1000,
                "<= 1 % of a replay",
                higher_is_better=False,
                goal_ratio=0.01,
            ),
            Row(
                f"calibrate: whole run ({len(folds)} folds x {TRIALS} configurations)",
                panel_s + search,
                "s",
                "one engine replay",
                replay,
                "<= 5x one replay",
                higher_is_better=False,
                goal_ratio=5.0,
            ),
        ],
    )


if __name__ == "__main__":
    main()
