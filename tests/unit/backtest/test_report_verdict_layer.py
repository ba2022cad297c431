"""signals.jsonl rows carry the judge's whole verdict layer, as the live product publishes it.

Before, a signal row had the verdict, sizes and stop/target only: the agreements and
conflicts behind a verdict and the ATR volatility metrics were lost.
"""

from __future__ import annotations

import json
from pathlib import Path

from perpsignal_cli import backtest
from perpsignal_cli.backtesting import report
from perpsignal_cli.backtesting.columns import SignalTable, read_signals
from perpsignal_cli.backtesting.pipeline import load_history, run_in_process


def test_signal_rows_equal_the_judged_verdict_layer(
    xrp_small: Path, market: Path, tmp_path: Path
) -> None:
    h = load_history("XRPUSDT", xrp_small, funding=market / "XRP_USDT_USDT-8h-funding_rate.csv")
    result = run_in_process(h, progress=False)
    table = SignalTable(["1h", "4h"])
    report.write_signals(result.records, tmp_path, table)
    data = report.build_report(result, h, horizons=["1h", "4h"], equity_horizon="4h", table=table)
    assert data["run"]["signals"] == len(result.records)
    rows = {r["signal_id"]: r for r in read_signals(tmp_path / "signals.jsonl")}
    assert len(rows) == len(result.records) > 0
    for rec in result.records:
        layer = rec.judged.ai_verdict_layer
        row = rows[rec.judged.signal_id]
        assert row["agreements"] == list(layer.layer_checks.agreements)
        assert row["conflicts"] == list(layer.layer_checks.conflicts)
        assert row["ai_summary"] == layer.ai_summary
        vol = layer.volatility_metrics
        assert (row["atr"], row["atr_pct"], row["volatility_class"]) == (
            vol.atr,
            vol.atr_pct,
            vol.volatility_class,
        )
    # the layer is not empty on real data: checks fired and ATR was measured
    assert any(r["agreements"] or r["conflicts"] for r in rows.values())
    assert any(r["atr"] is not None and r["volatility_class"] for r in rows.values())


def test_report_json_on_disk_has_them(xrp_small: Path, tmp_path: Path) -> None:
    out = tmp_path / "r"
    args = ["--symbol", "XRPUSDT", "--candles", str(xrp_small), "--out", str(out)]
    assert backtest.main([*args, "--no-progress", "--quiet"]) == 0
    assert json.loads((out / "report.json").read_text())["run"]["signals_file"] == "signals.jsonl"
    first = json.loads((out / "signals.jsonl").read_text().splitlines()[0])
    assert {"agreements", "conflicts", "atr", "atr_pct", "volatility_class"} <= set(first)
