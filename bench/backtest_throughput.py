"""Backtest throughput against freqtrade, same run, on the real FTX BTC-PERP 1m history.

* peer: `freqtrade backtesting` in its own virtual environment (created on first use under
  `~/.cache/perpsignal-bench/freqtrade`, or `FREQTRADE_PYTHON` names an interpreter that has
  freqtrade), offline: the FTX file converted to its JSON candle format in a temp dir, and
  its exchange's market list replaced by the one pair (ccxt's `load_markets` patched; no
  network). Strategy: TA-Lib RSI 14, ATR 14, EMA 20/50/200, MACD, Bollinger 20/2, returns
  over 1/4/16/60 bars, entry/exit rules on them and an ATR stop (`custom_stoploss`, so the
  trade loop runs on every candle), one position, 1m timeframe.
* `perpsignal backtest --timeframe 1m` on the same file, at its defaults: every 1m bar scored
  (8 factors, SMC, rule judge, outcomes at 1h/4h/24h, baselines, statistics, report.json +
  report.html + signals.jsonl), the history split over every core into consecutive exact
  parts (backtesting/split.py); and the same with `--jobs 1` (one process) as context, also
  with the domain core interpreted (`PERPSIGNAL_NATIVE=0`: the gain of its mypyc build). The
  runs alternate, `RUNS` times each; medians of wall time and of peak memory. Goals (issue
  20): time <= 1/3 of freqtrade's, peak memory below freqtrade's.
* peak memory is the process tree's: the largest sum of the resident memory of the command
  and its descendants, sampled every 20 ms (a forked part's copy-on-write pages count once
  per process, against us), never below the command's own exact peak (`os.wait4`).
* both sides' bytecode is compiled before the runs (their site-packages, our workspace): with
  PYTHONDONTWRITEBYTECODE set and a uv-made environment (uv does not compile on install)
  every run recompiled its imports, ~6 s of freqtrade's ~13 s. Measured here since 2026-12-07;
  earlier tables compared against that inflated figure.
* the default run (`perpsignal backtest`, 15m scoring) against the same freqtrade runs.
* a symbol-year of 1m bars (the FTX month repeated 12 times, each copy shifted after the
  previous one, ~540,000 bars, in a temp dir): peak memory of `perpsignal backtest
  --timeframe 1m` at its defaults (one process: the default split stops at 250,000 bars);
  absolute goal < 500 MiB (there is no peer for it: freqtrade is not run on it).

When freqtrade cannot be installed (no network) its rows say so and are not measured.
Run: `uv run python -m bench.backtest_throughput` (`BENCH_BACKTEST_RUNS`: runs per side,
default 3; `BENCH_BACKTEST_YEAR=0` skips the symbol-year run, ~2 min on a quiet 2-core box
at 1m speed x 12).
"""

from __future__ import annotations

import contextlib
import csv
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.common import Row, report

REPO = Path(__file__).resolve().parents[1]
FTX = REPO.parent / "shared" / "data" / "market" / "ftx-btc-perp-20211231-20220201_1m.csv"
RUNS = int(os.environ.get("BENCH_BACKTEST_RUNS", "3"))
YEAR_COPIES = 12
YEAR = os.environ.get("BENCH_BACKTEST_YEAR", "1") != "0"  # 0: skip the (long) year run
YEAR_GOAL_MIB = 500.0
FT_HOME = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "perpsignal-bench"
FT_VENV = FT_HOME / "freqtrade"

# freqtrade's entry point with the exchange's market list made static (offline backtest)
FT_RUNNER = """
import sys
import ccxt.async_support as accxt

MARKET = {
    "id": "BTCUSDT", "symbol": "BTC/USDT", "base": "BTC", "quote": "USDT", "settle": None,
    "baseId": "BTC", "quoteId": "USDT", "settleId": None, "active": True, "type": "spot",
    "spot": True, "margin": False, "swap": False, "future": False, "option": False,
    "contract": False, "linear": None, "inverse": None, "contractSize": None,
    "taker": 0.0005, "maker": 0.0002, "precision": {"amount": 0.00001, "price": 0.01},
    "limits": {"amount": {"min": 0.00001, "max": 9000.0}, "price": {"min": 0.01, "max": 1e6},
               "cost": {"min": 5.0, "max": None}, "leverage": {"min": None, "max": None}},
    "info": {},
}

async def load_markets(self, reload=False, params={}):
    self.set_markets([dict(MARKET)])
    return self.markets

accxt.binance.load_markets = load_markets
from freqtrade.main import main
main(sys.argv[1:])
"""

FT_STRATEGY = """
from datetime import datetime

import talib.abstract as ta
from pandas import DataFrame

from freqtrade.strategy import IStrategy, stoploss_from_absolute


class PeerStrategy(IStrategy):
    timeframe = "1m"
    startup_candle_count = 200
    minimal_roi = {"0": 100}
    stoploss = -0.99
    use_custom_stoploss = True
    can_short = False
    process_only_new_candles = True

    def populate_indicators(self, df: DataFrame, metadata: dict) -> DataFrame:
        df["rsi"] = ta.RSI(df, timeperiod=14)
        df["atr"] = ta.ATR(df, timeperiod=14)
        for n in (20, 50, 200):
            df[f"ema{n}"] = ta.EMA(df, timeperiod=n)
        macd = ta.MACD(df)
        df["macd"], df["macdsignal"] = macd["macd"], macd["macdsignal"]
        bb = ta.BBANDS(df, timeperiod=20, nbdevup=2.0, nbdevdn=2.0)
        df["bb_lower"], df["bb_upper"] = bb["lowerband"], bb["upperband"]
        for n in (1, 4, 16, 60):
            df[f"ret{n}"] = df["close"].pct_change(n)
        return df

    def populate_entry_trend(self, df: DataFrame, metadata: dict) -> DataFrame:
        df.loc[
            (df["ema20"] > df["ema50"]) & (df["macd"] > df["macdsignal"])
            & (df["rsi"] < 70) & (df["ret4"] > 0),
            "enter_long",
        ] = 1
        return df

    def populate_exit_trend(self, df: DataFrame, metadata: dict) -> DataFrame:
        df.loc[(df["ema20"] < df["ema50"]) | (df["close"] > df["bb_upper"]), "exit_long"] = 1
        return df

    def custom_stoploss(self, pair, trade, current_time: datetime, current_rate: float,
                        current_profit: float, after_fill: bool, **kwargs) -> float | None:
        df, _ = self.dp.get_analyzed_dataframe(pair, self.timeframe)
        atr = df["atr"].iat[-1]
        return stoploss_from_absolute(current_rate - 2 * atr, current_rate,
                                      is_short=trade.is_short)
"""


def measure(
    cmd: list[str], cwd: Path, log: Path, env: dict[str, str] | None = None
) -> tuple[float, float]:
    """Run `cmd` as a child; return (wall seconds, peak MiB of its process tree); raise on
    failure.

    Peak memory: the largest sum of resident memory over the child and its descendants,
    sampled every 20 ms (a backtest split over cores forks workers; their copy-on-write
    pages count once per process, against us), and never below the child's own exact peak
    (`os.wait4`).
    """
    started = time.perf_counter()
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            cmd, cwd=cwd, stdout=fh, stderr=subprocess.STDOUT, env=env and {**os.environ, **env}
        )
        peak = _tree_peak(proc)
        _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-5:]
        raise RuntimeError(f"{cmd[:3]}... exited {proc.returncode}: {' | '.join(tail)}")
    return wall, max(peak, usage.ru_maxrss * 1024) / 2**20


def _tree_peak(proc: subprocess.Popen[bytes]) -> float:
    """Sample the tree's summed RSS (bytes) until the child exits; return the largest."""
    root = psutil.Process(proc.pid)
    peak = 0.0
    while True:
        try:
            if root.status() == psutil.STATUS_ZOMBIE:
                return peak
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return peak
        total = 0
        for p in tree:
            with contextlib.suppress(psutil.Error):
                total += p.memory_info().rss
        peak = max(peak, float(total))
        time.sleep(0.02)


def compile_bytecode(python: Path | str, *paths: Path) -> None:
    """Write the bytecode of `python`'s site-packages and of `paths` (once: up to date is
    skipped), so that neither side of the comparison compiles its imports on every run
    (PYTHONDONTWRITEBYTECODE is set on some machines; a pip install compiles, uv does not)."""
    site = subprocess.run(
        [str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    targets = [site, *map(str, paths)]
    subprocess.run(
        [str(python), "-m", "compileall", "-q", "-j", "0", *targets],
        check=False,
        capture_output=True,
    )


def perpsignal_cmd(
    candles: Path, out: Path, timeframe: str | None, jobs: int | None = None
) -> list[str]:
    cmd = [sys.executable, "-m", "perpsignal_cli.main", "backtest", "--symbol", "BTCUSDT"]
    cmd += ["--candles", str(candles), "--out", str(out), "--no-progress", "--quiet"]
    cmd += ["--jobs", str(jobs)] if jobs else []
    return cmd + (["--timeframe", timeframe] if timeframe else [])


# our runs: key -> (timeframe, --jobs, extra environment); None: the defaults (every core)
OURS: dict[str, tuple[str | None, int | None, dict[str, str] | None]] = {
    "1m": ("1m", None, None),
    "1m-j1": ("1m", 1, None),
    # the same engine interpreted: what the mypyc build of the domain core gains
    "1m-j1-py": ("1m", 1, {"PERPSIGNAL_NATIVE": "0"}),
    "15m": (None, None, None),
}


def domain_core() -> str:
    """Say how the domain core runs in this environment (perpsignal_domain._native)."""
    return subprocess.run(
        [sys.executable, "-c", "import perpsignal_domain._native as n; print(n.status)"],
        capture_output=True,
        text=True,
        check=True,
        env={k: v for k, v in os.environ.items() if k != "PERPSIGNAL_NATIVE"},
    ).stdout.strip()


def freqtrade_python() -> tuple[Path | None, str]:
    """Return freqtrade's interpreter (installing it on first use) or None and the reason."""
    given = os.environ.get("FREQTRADE_PYTHON")
    if given:
        return Path(given), "FREQTRADE_PYTHON"
    python = FT_VENV / "bin" / "python"
    probe = [str(python), "-c", "import freqtrade, talib"]
    if python.exists() and subprocess.run(probe, check=False, capture_output=True).returncode == 0:
        return python, f"{FT_VENV}"
    uv = shutil.which("uv")
    if uv is None:
        return None, "uv is not on PATH to install freqtrade"
    FT_HOME.mkdir(parents=True, exist_ok=True)
    steps = [
        [uv, "venv", "--quiet", "--allow-existing", str(FT_VENV)],
        [uv, "pip", "install", "--quiet", "--python", str(python), "freqtrade"],
    ]
    for step in steps:
        done = subprocess.run(step, check=False, capture_output=True, text=True, timeout=1800)
        if done.returncode != 0:
            last = (done.stderr or done.stdout).strip().splitlines()[-1:] or ["?"]
            return None, f"freqtrade could not be installed ({last[0][:160]})"
    if subprocess.run(probe, check=False, capture_output=True).returncode != 0:
        return None, "freqtrade installed but does not import"
    return python, f"{FT_VENV}"


def freqtrade_setup(tmp: Path) -> tuple[list[str], Path]:
    """Write freqtrade's user dir (data as its JSON candles, config, strategy, runner)."""
    home = tmp / "freqtrade"
    data = home / "user_data" / "data" / "binance"
    data.mkdir(parents=True)
    (home / "user_data" / "strategies").mkdir()
    rows = []
    with FTX.open() as fh:
        reader = csv.reader(fh)
        next(reader)
        for t, o, h, lo, c, v in reader:
            rows.append([int(t), float(o), float(h), float(lo), float(c), float(v) / float(c)])
    (data / "BTC_USDT-1m.json").write_text(json.dumps(rows))
    (home / "user_data" / "strategies" / "PeerStrategy.py").write_text(FT_STRATEGY)
    (home / "runner.py").write_text(FT_RUNNER)
    config = {
        "max_open_trades": 1,
        "stake_currency": "USDT",
        "stake_amount": "unlimited",
        "dry_run": True,
        "dry_run_wallet": 10000,
        "timeframe": "1m",
        "trading_mode": "spot",
        "dataformat_ohlcv": "json",
        "fee": 0.0005,
        "exchange": {"name": "binance", "pair_whitelist": ["BTC/USDT"], "pair_blacklist": []},
        "pairlists": [{"method": "StaticPairList"}],
        "entry_pricing": {"price_side": "same", "use_order_book": False},
        "exit_pricing": {"price_side": "same", "use_order_book": False},
        "strategy": "PeerStrategy",
    }
    (home / "config.json").write_text(json.dumps(config))
    args = ["backtesting", "-c", "config.json", "--userdir", "user_data"]
    return ["runner.py", *args, "--export", "none", "--cache", "none"], home


def symbol_year(tmp: Path) -> Path:
    """Write the FTX month 12 times in a row (each copy after the previous one's end)."""
    lines = FTX.read_text().splitlines()
    header, body = lines[0], [line.split(",", 1) for line in lines[1:]]
    first, last = int(body[0][0]), int(body[-1][0])
    span = last - first + 60_000
    path = tmp / "ftx-btc-perp-year_1m.csv"
    with path.open("w") as fh:
        fh.write(header + "\n")
        for k in range(YEAR_COPIES):
            shift = k * span
            fh.writelines(f"{int(t) + shift},{rest}\n" for t, rest in body)
    return path


def _median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def main() -> list[dict[str, object]]:
    """Run every measurement; return the result rows."""
    if not FTX.exists():
        print(f"skipped: {FTX} is not present")
        return []
    ft_python, ft_where = freqtrade_python()
    print(f"freqtrade: {ft_python or 'NOT AVAILABLE'} ({ft_where})", file=sys.stderr)
    core = domain_core()
    print(f"domain core: {core}", file=sys.stderr)
    compile_bytecode(sys.executable, REPO / "libs", REPO / "services")
    if ft_python:
        compile_bytecode(ft_python)
    runs: dict[str, list[tuple[float, float]]] = {"ft": [], **{k: [] for k in OURS}}
    with tempfile.TemporaryDirectory() as tmp_s:
        tmp = Path(tmp_s)
        ft_cmd, ft_home = freqtrade_setup(tmp) if ft_python else ([], tmp)
        for i in range(RUNS):  # alternate, so load changes hit both sides alike
            if ft_python:
                runs["ft"].append(measure([str(ft_python), *ft_cmd], ft_home, tmp / "ft.log"))
            for key, (tf, jobs, env) in OURS.items():
                cmd = perpsignal_cmd(FTX, tmp / f"out-{key}", tf, jobs)
                runs[key].append(measure(cmd, REPO, tmp / f"ps-{key}.log", env))
            print(f"run {i + 1}/{RUNS}: " + ", ".join(f"{k} {v[-1]}" for k, v in runs.items() if v),
                  file=sys.stderr)  # fmt: skip
        bars_year = YEAR_COPIES * (sum(1 for _ in FTX.open()) - 1)
        year_wall = year_rss = float("nan")
        signals = 0
        if YEAR:
            year = symbol_year(tmp)
            year_wall, year_rss = measure(perpsignal_cmd(year, tmp / "out-year", "1m"), REPO,
                                          tmp / "ps-year.log")  # fmt: skip
            signals = sum(1 for _ in (tmp / "out-year" / "signals.jsonl").open())
    med = {k: (_median([w for w, _ in v]), _median([m for _, m in v])) for k, v in runs.items()}
    ft_wall, ft_rss = med["ft"]
    peer = "freqtrade backtesting (same run)" if ft_python else f"NOT MEASURED: {ft_where}"
    rows = []
    labels = {
        "1m": ("--timeframe 1m (every bar, every core)", None),
        "1m-j1": ("--timeframe 1m --jobs 1 (one process)", "context (one process)"),
        "15m": ("default (15m)", "context (15m scoring)"),
    }
    for key, (label, context) in labels.items():
        wall, rss = med[key]
        rows += [
            Row(
                f"{label} wall",
                wall,
                "s",
                peer,
                ft_wall,
                context or "<= 1/3 of freqtrade",
                higher_is_better=False,
                goal_ratio=(None if context else 1 / 3) if ft_python else None,
            ),
            Row(
                f"{label} peak memory (process tree)",
                rss,
                "MiB",
                peer,
                ft_rss,
                context or "< freqtrade",
                higher_is_better=False,
                goal_ratio=(None if context else 1.0) if ft_python else None,
            ),
        ]
    # the compiled domain core against the same source interpreted, one process each
    compiled = core.startswith("compiled")
    rows.append(
        Row(
            "--timeframe 1m --jobs 1 wall, domain core "
            + ("compiled (mypyc)" if compiled else f"NOT COMPILED: {core}"),
            med["1m-j1"][0],
            "s",
            "the same run interpreted (PERPSIGNAL_NATIVE=0)",
            med["1m-j1-py"][0],
            "context (the gain of make native)",
            higher_is_better=False,
        )
    )
    # no peer runs a symbol-year: an absolute figure, listed with the context rows
    rows.append(
        Row.absolute(
            f"symbol-year 1m ({bars_year:,} bars, {signals:,} signals) peak memory",
            year_rss,
            "MiB",
            f"< {YEAR_GOAL_MIB:.0f} MiB; wall {year_wall:.0f} s"
            if YEAR
            else "NOT MEASURED (BENCH_BACKTEST_YEAR=0)",
            limit=YEAR_GOAL_MIB if YEAR else None,
            higher_is_better=False,
        )
    )
    return report("backtest_throughput", rows)


if __name__ == "__main__":
    main()
