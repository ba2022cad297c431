"""Backtest throughput on the real FTX BTC-PERP 1m history (45,031 bars).

* end to end: `perpsignal backtest` as its own process (import, 8 factors + SMC on 15m,
  rule judge, outcomes at 1h/4h/24h on the 1m path, baselines, report.json + report.html):
  wall time, bars/s and peak RSS. Goal from the issue: >= 10,000 bars/s end to end and
  < 460 MiB peak (freqtrade: ~14 s, ~460 MiB on this file).
* same run, baseline: the vectorized (numpy + TA-Lib) computation of the momentum factor's
  inputs (1/4/16-bar returns, RSI 14, EMA 20/50) over the same bars, the cheapest possible
  form of the same indicators.
* 50 symbols in one backtest run (`run_many`: the history renamed per symbol, a slice to
  keep this short; scoring, rule judge and outcomes): bars/s against one symbol through the
  same function on the same slice in the same process (after a short warm-up run, so
  first-use costs do not slow the single-symbol figure); goal within 20 %.

Run: `uv run python bench/backtest_throughput.py`.
"""

from __future__ import annotations

import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Row, report

REPO = Path(__file__).resolve().parents[1]
FTX = REPO.parent / "shared" / "data" / "market" / "ftx-btc-perp-20211231-20220201_1m.csv"
MULTI_BARS = 3_000  # bars per symbol in the 50-symbol run (x50 = 150,000 bars)
SYMBOLS = 50


def end_to_end(out: Path) -> tuple[float, float]:
    """Run the CLI as a child process; return (wall seconds, peak RSS MiB)."""
    started = time.perf_counter()
    subprocess.run(
        [
            sys.executable,
            "-m",
            "perpsignal_cli.main",
            "backtest",
            "--symbol",
            "BTCUSDT",
            "--candles",
            str(FTX),
            "--out",
            str(out),
            "--no-progress",
            "--quiet",
        ],
        check=True,
        cwd=REPO,
        env={**os.environ},
        capture_output=True,
    )
    wall = time.perf_counter() - started
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return wall, peak_kib / 1024


def vectorized(path: Path) -> float:
    """Return seconds to read the bars and compute the momentum inputs with numpy/TA-Lib."""
    import numpy as np
    import talib

    started = time.perf_counter()
    data = np.loadtxt(path, delimiter=",", skiprows=1)
    t = data[:, 0].astype(np.int64)
    bucket = t // 900_000
    starts = np.flatnonzero(np.r_[True, bucket[1:] != bucket[:-1]])
    ends = np.r_[starts[1:], len(t)] - 1
    close = data[ends, 4]
    high = np.maximum.reduceat(data[:, 2], starts)
    low = np.minimum.reduceat(data[:, 3], starts)
    for h in (1, 4, 16):
        _ = close[h:] / close[:-h] - 1.0
    _ = talib.RSI(close, 14), talib.EMA(close, 20), talib.EMA(close, 50)
    _ = talib.ATR(high, low, close, 14)
    return time.perf_counter() - started


def multi_symbol(n_symbols: int, bars: int, tmp: Path) -> float:
    """Return bars/s of `n_symbols` copies of the history in one backtest run.

    `run_many`: one engine and judge for every symbol, events in observation order, each
    symbol's outcomes measured; loading the histories is timed too.
    """
    from perpsignal_cli.backtesting.pipeline import load_history, run_many

    lines = FTX.read_text().splitlines()[: bars + 1]
    path = tmp / "slice.csv"
    path.write_text("\n".join(lines) + "\n")
    started = time.perf_counter()
    histories = [load_history(f"S{i:02d}USDT", path) for i in range(n_symbols)]
    results = run_many(histories, progress=False)
    rate = n_symbols * bars / (time.perf_counter() - started)
    assert all(r.events_done == r.events_total for r in results)
    assert all(len(r.records) == len(results[0].records) > 0 for r in results)
    return rate


def main() -> list[dict[str, object]]:
    """Run every measurement; return the result rows."""
    if not FTX.exists():
        print(f"skipped: {FTX} is not present")
        return []
    bars = sum(1 for _ in FTX.open()) - 1
    with tempfile.TemporaryDirectory() as tmp:
        wall, peak = end_to_end(Path(tmp) / "report")
        vec_s = vectorized(FTX)
        multi_symbol(1, MULTI_BARS, Path(tmp))  # warm-up: first-use costs off `one`
        one = multi_symbol(1, MULTI_BARS, Path(tmp))
        many = multi_symbol(SYMBOLS, MULTI_BARS, Path(tmp))
    rate = bars / wall
    rows = [
        Row(
            "end-to-end bars/s (FTX 1m, 45,031 bars)",
            rate,
            "bars/s",
            "vectorized momentum inputs (numpy+TA-Lib)",
            bars / vec_s,
            "freqtrade ~3,200 bars/s; goal >= 10,000",
            goal_ratio=None,
        ),
        Row(
            "end-to-end wall",
            wall,
            "s",
            "freqtrade (issue figure)",
            14.0,
            "<= 1/3 of freqtrade",
            higher_is_better=False,
            goal_ratio=1 / 3,
        ),
        Row(
            "peak RSS",
            peak,
            "MiB",
            "freqtrade (issue figure)",
            460.0,
            "< freqtrade",
            higher_is_better=False,
            goal_ratio=1.0,
        ),
        Row(
            f"{SYMBOLS} symbols bars/s (one core)",
            many,
            "bars/s",
            "1 symbol bars/s, same slice",
            one,
            "within 20 % of one symbol",
            goal_ratio=0.8,
        ),
    ]
    return report("backtest_throughput", rows)


if __name__ == "__main__":
    main()
