"""Sound neutrals on recorded data: no factor sits structurally off 50, and the share of
SHORT signals is not pushed up by positioning that is merely the symbol's normal.

The files are the real exports under ../shared/data/market, imported by the backtest's own
importers (`load_history`), so the events are those a backtest feeds the engine.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from pathlib import Path

import pytest

from perpsignal_cli.backtesting.pipeline import load_history
from perpsignal_domain.scoring.config import EngineConfig
from perpsignal_domain.scoring.engine import ScoringEngine

POSITIONING = "binance-BTCUSDT-5m-oi_longshort_basis.csv"
FTX = "ftx-btc-perp-20211231-20220201_1m.csv"


@pytest.fixture(scope="module")
def market(shared_data: Path) -> Path:
    path = shared_data / "market"
    if not path.is_dir():
        pytest.skip("recorded market data absent")
    return path


def _run(
    symbol: str, candles: Path, tf: str = "15m", **inputs: Path
) -> tuple[dict[str, list[float]], dict[str, int]]:
    """Return the ok sub-scores per factor and the count per direction of a replay."""
    history = load_history(symbol, candles, timeframe=tf, **inputs)  # type: ignore[arg-type]
    engine = ScoringEngine(EngineConfig(primary_timeframe=tf, smc_timeframes=(tf, "1h", "4h")))
    scores: dict[str, list[float]] = defaultdict(list)
    directions: dict[str, int] = defaultdict(int)
    for ev in history.events:
        for signal in engine.apply(ev):
            directions[signal.direction] += 1
            for f in signal.factors:
                if f.status == "ok":
                    scores[f.name].append(f.score)
    return scores, directions


def _means(scores: dict[str, list[float]]) -> dict[str, float]:
    return {name: sum(v) / len(v) for name, v in scores.items() if v}


def _shifted_positioning(market: Path, dst: Path, start_ms: int) -> Path:
    """The recorded Binance positioning rows (9 hours, 5m), moved in time to start at
    `start_ms`: real account shares (about two thirds long) over real candles."""
    with (market / POSITIONING).open(newline="") as f:
        rows = list(csv.DictReader(f))
    t0 = int(rows[0]["time"])
    with dst.open("w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        for r in rows:
            w.writerow({**r, "time": str(int(r["time"]) - t0 + start_ms)})
    return dst


def test_positioning_is_read_against_its_own_history(market: Path, tmp_path: Path) -> None:
    """Regression: two thirds of Binance accounts long is that market's normal. The old 50 %
    neutral scored long/short about 30 on every bar of this file, whatever the accounts did;
    read against its own history the factor follows what they did: the long share fell from
    66 % to 64 % over these 9 hours (de-crowding), which the contrarian factor reads as
    bullish on average (above 50), not bearish."""
    candles = tmp_path / "btc_5m.csv"
    rows = (market / FTX).read_text().splitlines()
    candles.write_text("\n".join(rows[: 1 + 60 * 12]) + "\n")  # 12 h of real 1m candles
    start = int(rows[1].split(",")[0])
    positioning = _shifted_positioning(market, tmp_path / "pos.csv", start + 3 * 3600_000)
    scores, _ = _run("BTCUSDT", candles, "5m", long_short=positioning, open_interest=positioning)
    means = _means(scores)
    assert len(scores["long_short"]) > 80
    assert 50 < means["long_short"] < 75, means
    assert 35 <= means["smart_money"] <= 65, means
    assert 35 <= means["oi_trend"] <= 65, means
    # the shares really are far from 50 %: the neutral is the history, not the midpoint
    with (market / POSITIONING).open(newline="") as f:
        shares = [float(r["globallongAccount"]) for r in csv.DictReader(f)]
    assert min(shares) > 0.6 and shares[-1] < shares[0]


@pytest.mark.parametrize(
    ("candles", "symbol", "inputs"),
    [
        (FTX, "BTCUSDT", {"fear_greed": "alternative_me-fear_greed-1d.csv"}),
        ("ETH_BTC-5m.csv", "ETHBTC", {}),
        ("ADA_BTC-5m.csv", "ADABTC", {}),
        (
            "XRP_USDT_USDT-5m-futures.csv",
            "XRPUSDT",
            {
                "funding": "XRP_USDT_USDT-8h-funding_rate.csv",
                "fear_greed": "alternative_me-fear_greed-1d.csv",
            },
        ),
    ],
)
def test_every_factor_mean_sub_score_is_within_35_65(
    market: Path, candles: str, symbol: str, inputs: dict[str, str]
) -> None:
    """The acceptance check's criterion on every recorded history with its inputs.

    Regression for smart money: its structure trend held at full strength until the next
    break scored XRPUSDT's week (price -10 %, trend down most of the time) at a mean of 31;
    a break's pull now fades with its age (about 39 there, still bearish)."""
    scores, _ = _run(symbol, market / candles, **{k: market / v for k, v in inputs.items()})
    means = _means(scores)
    assert {"momentum", "smart_money"} <= set(means)
    for name, mean in means.items():
        assert 35 <= mean <= 65, (name, mean)
    if symbol == "XRPUSDT":
        assert means["smart_money"] < 50  # a falling market still reads bearish


def test_short_share_not_biased_by_usual_positioning(market: Path, tmp_path: Path) -> None:
    """On a rising stretch of real candles (ETH/BTC, +4.5 % over 20 days) with real account
    positioning (two thirds long throughout) moved onto it, SHORT signals are not the
    majority of directional ones. The old 50 % neutral made long/short pull every bar down:
    38 of its 51 directional signals here were SHORT (75 %)."""
    candles = market / "ETH_BTC-5m.csv"
    first = int(candles.read_text().splitlines()[1].split(",")[0])
    positioning = _shifted_positioning(market, tmp_path / "pos.csv", first)
    # the 9 recorded hours repeated over the 20 days: every bar has a fresh, real reading
    with positioning.open() as f:
        head, *body = f.read().splitlines()
    step, span = 300_000, len(body) * 300_000
    lines = [head]
    for k in range(20 * 86400_000 // span + 1):
        for line in body:
            t, rest = line.split(",", 1)
            lines.append(f"{int(t) + k * span},{rest}")
    positioning.write_text("\n".join(lines) + "\n")
    assert step  # 5m rows
    scores, directions = _run("ETHBTC", candles, long_short=positioning)
    short, long_ = directions["SHORT"], directions["LONG"]
    assert short + long_ >= 40
    assert short / (short + long_) <= 0.55, directions
    assert 35 <= _means(scores)["long_short"] <= 65
