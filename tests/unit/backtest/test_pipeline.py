"""The in-process backtest: causality, determinism, interruption and outcome arithmetic."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from perpsignal_cli import backtest
from perpsignal_cli.backtesting.pipeline import History, load_history, run_in_process


def _history(candles: Path, market: Path) -> History:
    return load_history(
        "XRPUSDT",
        candles,
        funding=market / "XRP_USDT_USDT-8h-funding_rate.csv",
        fear_greed=market / "alternative_me-fear_greed-1d.csv",
    )


def _signals(h: History) -> dict[datetime, dict[str, Any]]:
    result = run_in_process(h, progress=False)
    return {
        r.judged.observed_at: r.judged.model_dump(mode="json", exclude={"produced_at"})
        for r in result.records
    }


def _rewrite(src: Path, dst: Path, row: int, factor: float) -> int:
    """Copy `src` with data row `row` scaled by `factor`; return that row's open time (ms)."""
    lines = src.read_text().splitlines()
    cols = lines[row + 1].split(",")
    for i in (1, 2, 3, 4):
        cols[i] = repr(float(cols[i]) * factor)
    lines[row + 1] = ",".join(cols)
    dst.write_text("\n".join(lines) + "\n")
    return int(cols[0])


@pytest.mark.parametrize("row", [120, 250, 398])
def test_changing_a_future_bar_leaves_every_earlier_signal_unchanged(
    xrp_small: Path, market: Path, tmp_path: Path, row: int
) -> None:
    base = _signals(_history(xrp_small, market))
    changed_path = tmp_path / "changed.csv"
    open_ms = _rewrite(xrp_small, changed_path, row, 1.25)
    changed = _signals(_history(changed_path, market))
    visible_at = datetime.fromtimestamp(open_ms / 1000, UTC) + timedelta(minutes=5)
    earlier = [t for t in base if t < visible_at]
    later = [t for t in base if t >= visible_at]
    assert earlier, "the changed bar must have signals before it"
    for t in earlier:
        assert changed[t] == base[t], f"signal at {t} saw a bar closing at {visible_at}"
    # the change is seen as soon as the bar has closed (the test would notice a no-op)
    if later:
        assert changed[later[0]] != base[later[0]]


def test_same_input_gives_the_same_report(xrp_small: Path, market: Path, tmp_path: Path) -> None:
    args = [
        "--symbol",
        "XRPUSDT",
        "--candles",
        str(xrp_small),
        "--funding",
        str(market / "XRP_USDT_USDT-8h-funding_rate.csv"),
        "--fear-greed",
        str(market / "alternative_me-fear_greed-1d.csv"),
        "--no-progress",
        "--quiet",
    ]
    assert backtest.main([*args, "--out", str(tmp_path / "a")]) == 0
    assert backtest.main([*args, "--out", str(tmp_path / "b")]) == 0
    a = json.loads((tmp_path / "a" / "report.json").read_text())
    b = json.loads((tmp_path / "b" / "report.json").read_text())
    a.pop("generated")
    b.pop("generated")
    assert a == b
    assert (tmp_path / "a" / "report.html").read_bytes() == (
        tmp_path / "b" / "report.html"
    ).read_bytes()
    assert a["run"]["signals"] == 133  # 399 complete 5m bars -> 133 closed 15m candles
    signals = (tmp_path / "a" / "signals.jsonl").read_bytes()
    assert signals == (tmp_path / "b" / "signals.jsonl").read_bytes()
    assert signals.count(b"\n") == 133
    assert "<svg" in (tmp_path / "a" / "report.html").read_text()


class _Interrupting(list):  # type: ignore[type-arg]
    """An event list whose iteration is interrupted (as by Ctrl-C) after `n` events."""

    def __init__(self, items: list[Any], n: int) -> None:
        super().__init__(items)
        self.n = n

    def __iter__(self) -> Iterator[Any]:
        for i, item in enumerate(super().__iter__()):
            if i == self.n:
                raise KeyboardInterrupt
            yield item


def test_ctrl_c_stops_cleanly_and_keeps_what_was_done(xrp_small: Path, market: Path) -> None:
    from perpsignal_common.events.market import CandleClosedV1

    h = _history(xrp_small, market)
    candles_seen = sum(isinstance(e, CandleClosedV1) for e in h.events[:60])
    h.events = _Interrupting(h.events, 60)
    result = run_in_process(h, progress=False)
    assert result.interrupted
    assert result.events_done == 60
    assert len(result.records) == candles_seen


def test_outcome_is_measured_on_the_candles_after_the_signal(xrp_small: Path, market: Path) -> None:
    result = run_in_process(_history(xrp_small, market), progress=False)
    measured = [r for r in result.records if r.outcomes.get("1h")]
    assert measured
    with xrp_small.open() as fh:
        rows = {int(r[0]): [float(x) for x in r[1:5]] for r in list(csv.reader(fh))[1:]}
    rec = measured[0]
    j = rec.judged
    entry_ms = int(j.observed_at.timestamp() * 1000)
    path = [rows[entry_ms + k * 300_000] for k in range(12)]  # the next twelve 5m bars
    exit_price = path[-1][3]
    sign = 1 if j.direction == "LONG" else -1
    ev = rec.outcomes["1h"].evaluation
    assert ev.exit_price == exit_price
    assert ev.pnl_pct == pytest.approx(sign * (exit_price - j.price) / j.price * 100)
    worst = min(r[2] for r in path) if sign == 1 else max(r[1] for r in path)
    assert ev.max_adverse_pct == pytest.approx(max(0.0, sign * (j.price - worst) / j.price * 100))
    # the signal's price is the close of the 15m candle it was scored on
    assert j.price == rows[entry_ms - 300_000][3]


def test_bad_input_is_refused(tmp_path: Path) -> None:
    assert backtest.main(["--symbol", "X", "--candles", str(tmp_path / "none.csv")]) == 2
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    assert backtest.main(["--symbol", "X", "--candles", str(bad), "--out", str(tmp_path)]) == 2


def test_candles_without_volume_give_the_same_signals_and_the_report_says_so(
    xrp_small: Path, market: Path, tmp_path: Path
) -> None:
    """A file without volume (CoinGecko OHLC, mark-price candles) reads as volume 0. No
    factor, judge rule or report figure reads candle volume, so its signals are those of the
    same bars with their volumes; the report's notes say the volumes are unknown, not zero
    (it was said only in a log line)."""
    lines = xrp_small.read_text().splitlines()
    assert lines[0].endswith(",volume")
    bare = tmp_path / "xrp_5m_no_volume.csv"
    bare.write_text("\n".join(line.rsplit(",", 1)[0] for line in lines) + "\n")
    full, without = _history(xrp_small, market), _history(bare, market)
    assert set(without.base.volume) == {0.0} and set(full.base.volume) != {0.0}

    def scored(h: History) -> dict[datetime, dict[str, Any]]:
        return {t: {k: v for k, v in s.items() if k != "candles"} for t, s in _signals(h).items()}

    same = scored(full)
    assert same and scored(without) == same
    said = [n for n in without.notes if "volume" in n]
    assert len(said) == 1 and "unknown, not zero" in said[0]
    assert not [n for n in full.notes if "volume" in n]
