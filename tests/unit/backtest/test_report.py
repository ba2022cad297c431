"""The report's tables, recomputed independently from its per-signal records."""

from __future__ import annotations

import csv
import statistics
from pathlib import Path
from typing import Any

import pytest

from perpsignal_cli.backtesting import report
from perpsignal_cli.backtesting.columns import SignalTable, SignalWriter, read_signals
from perpsignal_cli.backtesting.pipeline import load_history, run_in_process


def test_wilson_interval_matches_the_textbook_value() -> None:
    lo, hi = report.wilson(8, 10)  # type: ignore[misc]
    assert lo == pytest.approx(0.4902, abs=1e-4)
    assert hi == pytest.approx(0.9433, abs=1e-4)
    assert report.wilson(0, 0) is None


@pytest.fixture(scope="module")
def written(market: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Any]:
    """A real run's report data and its signals.jsonl rows, streamed as the CLI does."""
    h = load_history(
        "XRPUSDT",
        market / "XRP_USDT_USDT-5m-futures.csv",
        funding=market / "XRP_USDT_USDT-8h-funding_rate.csv",
        fear_greed=market / "alternative_me-fear_greed-1d.csv",
    )
    out = tmp_path_factory.mktemp("report")
    horizons = ["1h", "4h", "24h"]
    table = SignalTable(horizons)
    with SignalWriter(out, table) as sink:
        result = run_in_process(h, progress=False, sink=sink)
    assert not result.records  # streamed: the run kept none
    data = report.build_report(result, h, horizons=horizons, equity_horizon="4h", table=table)
    return data, list(read_signals(out / "signals.jsonl"))


@pytest.fixture(scope="module")
def built(written: tuple[dict[str, Any], Any]) -> tuple[dict[str, Any], Any]:
    return written[0], None


@pytest.fixture(scope="module")
def sigs(written: tuple[dict[str, Any], Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = written[1]
    return rows


def test_performance_rows_agree_with_the_signal_records(
    built: tuple[dict[str, Any], Any], sigs: list[dict[str, Any]]
) -> None:
    data, _ = built
    for row in data["performance"]:
        picked = [
            s["outcomes"][row["horizon"]]
            for s in sigs
            if s["outcomes"].get(row["horizon"]) and row["verdict"] in ("ALL", s["verdict"])
        ]
        assert row["n"] == len(picked)
        if not picked:
            continue
        pnl = [o["pnl_pct"] for o in picked]
        wins = sum(o["result"] == "WIN" for o in picked)
        assert row["win_rate"] == pytest.approx(wins / len(picked), abs=1e-4)
        assert row["avg_pnl_pct"] == pytest.approx(statistics.fmean(pnl), abs=1e-4)
        assert row["median_pnl_pct"] == pytest.approx(statistics.median(pnl), abs=1e-4)
        assert row["max_adverse_pct"] == pytest.approx(
            max(o["max_adverse_pct"] for o in picked), abs=1e-4
        )
        assert row["small_sample"] == (len(picked) < 30)


def test_direction_verdict_counts_and_calibration(
    built: tuple[dict[str, Any], Any], sigs: list[dict[str, Any]]
) -> None:
    data, _ = built
    table = data["signals_by_direction_verdict"]
    assert sum(sum(r.values()) for r in table.values()) == len(sigs) == data["run"]["signals"]
    assert table["LONG"]["WAIT"] + table["LONG"]["SKIP"] + table["LONG"]["CONFIRM"] + table["LONG"][
        "DOWNSIZE"
    ] == sum(s["direction"] == "LONG" for s in sigs)
    # only LONG/SHORT signals are tracked, so NEUTRAL never has outcomes
    assert all(not s["outcomes"] for s in sigs if s["direction"] == "NEUTRAL")
    for row in data["calibration"]:
        inside = [
            s
            for s in sigs
            if s["outcomes"].get(row["horizon"])
            and row["score_from"] <= s["score"] < row["score_to"]
        ]
        assert row["n"] == len(inside)
        lo, hi = row["win_rate_ci95"]
        assert lo <= row["win_rate"] <= hi


def test_buy_and_hold_and_equity_curves(
    built: tuple[dict[str, Any], Any], sigs: list[dict[str, Any]], market: Path
) -> None:
    data, _ = built
    eq = data["equity"]
    with (market / "XRP_USDT_USDT-5m-futures.csv").open() as fh:
        rows = list(csv.reader(fh))[1:]
    first = next(s for s in sigs if s["outcomes"].get("4h"))
    expected = (float(rows[-1][4]) / first["price"] - 1) * 100
    assert eq["buy_and_hold"]["final_pct"] == pytest.approx(expected, abs=1e-3)
    everything = [s["outcomes"]["4h"]["pnl_pct"] for s in sigs if s["outcomes"].get("4h")]
    assert eq["all_signals"]["trades"] == len(everything)
    assert eq["all_signals"]["final_pct"] == pytest.approx(sum(everything), abs=1e-3)
    # random and momentum trade at the same times as the signals
    assert eq["random_direction"]["trades"] == len(everything)
    names = {r["strategy"] for r in data["baselines"]}
    assert {"all_signals", "confirm", "random_direction", "momentum", "always_long"} <= names


def test_missing_sources_are_named_in_the_notes(
    built: tuple[dict[str, Any], Any], sigs: list[dict[str, Any]]
) -> None:
    data, _ = built
    assert any("open interest" in n for n in data["notes"])
    assert any("long short" in n for n in data["notes"])
    statuses = {s["factors"]["oi_trend"]["status"] for s in sigs}
    assert statuses == {"missing"}


def test_terminal_table_labels_small_samples(built: tuple[dict[str, Any], Any]) -> None:
    data, _ = built
    text = report.terminal_table(data)
    assert "XRPUSDT" in text
    small = [r for r in data["performance"] if r["n"] and r["small_sample"]]
    assert ("(small sample)" in text) == bool(
        small or any(r["n"] and r["small_sample"] for r in data["baselines"])
    )


def test_the_costs_say_whether_funding_was_charged(
    built: tuple[dict[str, Any], Any], market: Path
) -> None:
    data, _ = built  # run with the recorded funding history
    assert data["run"]["costs"]["funding"].startswith("settled rates")
    assert not any("charges no funding" in n for n in data["notes"])
    h = load_history("XRPUSDT", market / "XRP_USDT_USDT-5m-futures.csv")
    result = run_in_process(h, progress=False)
    table = SignalTable.from_records(result.records, ["1h"])
    bare = report.build_report(result, h, horizons=["1h"], equity_horizon="1h", table=table)
    # no funding file: net P&L is not after funding, and the report says it
    assert bare["run"]["costs"]["funding"].startswith("not charged")
    assert any("net P&L charges no funding" in n for n in bare["notes"])
