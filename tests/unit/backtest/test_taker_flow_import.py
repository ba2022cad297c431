"""Taker flow for the backtest: the recorded Binance and Coinglass taker bodies become the
`TakerFlowV1` events the live connectors produce, and `perpsignal backtest --taker-flow`
feeds them to the scorer's momentum factor."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from perpsignal_cli import backtest
from perpsignal_cli.backtesting import importers as imp
from perpsignal_cli.backtesting.columns import read_signals
from perpsignal_cli.backtesting.pipeline import load_history, run_in_process
from perpsignal_common.events.market import TakerFlowV1
from perpsignal_connectors.binance_usdm import parsing as bp
from perpsignal_connectors.binance_usdm import schemas as bs
from perpsignal_connectors.coinglass import parsing as cg_p
from perpsignal_connectors.coinglass import schemas as cg_s

FAR = datetime(2100, 1, 1, tzinfo=UTC)
AGG = "coinglass/taker-buysell__aggregated-taker-buysell-volume-history.json"


@pytest.fixture(scope="module")
def api(shared_data: Path) -> Path:
    return shared_data / "api"


def test_coinglass_history_reads_as_the_live_parser_emits(api: Path) -> None:
    """Same volumes, unit and observation time (the period's end) as the Coinglass parser."""
    got = imp.read_taker_flow(api / AGG, "BTCUSDT")
    raw = json.loads((api / AGG).read_text())["data"]
    live = cg_p.parse_taker(cg_s.TAKER_AGG.validate_python(raw), "BTC", "1h", FAR)
    assert [(e.observed_at, e.buy_volume, e.sell_volume, e.unit) for e in got] == [
        (e.observed_at, e.buy_volume, e.sell_volume, e.unit) for e in live
    ]
    assert all(e.period == "1h" for e in got)
    # the per-exchange history names its columns taker_buy/sell_volume_usd (strings)
    pair = imp.read_taker_flow(api / "coinglass/taker-buysell__taker-buysell-volume.json", "BTC")
    assert pair[0].buy_volume == pytest.approx(414120141.0714)
    assert pair[0].sell_volume == pytest.approx(350417509.655)
    assert pair[0].observed_at == datetime.fromtimestamp(1750183200 + 3600, UTC)


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_binance_taker_ratio_json_and_csv(api: Path, tmp_path: Path, fmt: str) -> None:
    body = api / "binance_usdm/futures_data_takerlongshortRatio.doc_current.json"
    rows = json.loads(body.read_text())
    path = body
    if fmt == "csv":  # the same rows as a CSV export with Binance's column names
        path = tmp_path / "taker.csv"
        path.write_text(
            "buySellRatio,buyVol,sellVol,timestamp\n"
            + "".join(
                f"{r['buySellRatio']},{r['buyVol']},{r['sellVol']},{r['timestamp']}\n" for r in rows
            )
        )
    got = imp.read_taker_flow(path, "BTCUSDT", venue="binance")
    live = bp.parse_taker_ratio(bs.TAKER_RATIO.validate_python(rows), "BTCUSDT", "5m")
    assert sorted((e.buy_volume, e.sell_volume, e.buy_sell_ratio) for e in got) == sorted(
        (e.buy_volume, e.sell_volume, e.buy_sell_ratio) for e in live
    )
    assert all(e.unit == "base" and e.venue == "binance" for e in got)


def test_a_file_without_buy_and_sell_volumes_is_refused(market: Path) -> None:
    with pytest.raises(imp.HistoryFormatError, match="need taker buy and sell volumes"):
        imp.read_taker_flow(market / "XRP_USDT_USDT-8h-funding_rate.csv", "XRPUSDT")


def _export(api: Path, candles: Path, out: Path) -> list[float]:
    """A Coinglass-shaped hourly export over the candles' span, its rows the recorded
    aggregated history's volumes in turn (no recording covers the candles' hours); return
    each row's imbalance."""
    recorded = json.loads((api / AGG).read_text())["data"]
    t0 = int(candles.read_text().splitlines()[1].split(",")[0])
    rows, imbalances = [], []
    for k in range(38):  # the last one known before the last candle closes
        r = recorded[k % len(recorded)]
        buy = r["aggregated_buy_volume_usd"] * (1 + 0.01 * (k % 7))  # varied, as a real day
        sell = r["aggregated_sell_volume_usd"]
        rows.append(
            {
                "time": t0 - 6 * 3600_000 + k * 3600_000,
                "aggregated_buy_volume_usd": buy,
                "aggregated_sell_volume_usd": sell,
            }
        )
        imbalances.append((buy - sell) / (buy + sell))
    out.write_text(json.dumps({"code": "0", "msg": "success", "data": rows}))
    return imbalances


def test_taker_flow_reaches_momentum(api: Path, xrp_small: Path, tmp_path: Path) -> None:
    path = tmp_path / "taker.json"
    imbalances = _export(api, xrp_small, path)
    history = load_history("XRPUSDT", xrp_small, taker_flow=path, timeframe="15m")
    flows = [e for e in history.events if isinstance(e, TakerFlowV1)]
    assert len(flows) == 38
    result = run_in_process(history, horizons=["1h"], progress=False)
    seen = set()
    for rec in result.records:
        m = next(f for f in rec.judged.factors if f.name == "momentum")
        if m.status == "ok" and "taker_imbalance" in m.inputs:
            seen.add(m.inputs["taker_imbalance"])
            assert -1.0 <= m.inputs["taker_flow_rank"] <= 1.0  # type: ignore[operator]
    # ranked from the 12th row on (SCORER_NEUTRAL_MIN_HISTORY), every later one used
    assert len(seen) >= 10
    assert seen <= {round(x, 4) for x in imbalances}


def test_cli_backtest_with_taker_flow(api: Path, xrp_small: Path, tmp_path: Path) -> None:
    path = tmp_path / "taker.json"
    _export(api, xrp_small, path)
    base = ["--symbol", "XRPUSDT", "--candles", str(xrp_small), "--no-progress", "--quiet"]
    assert backtest.main([*base, "--taker-flow", str(path), "--out", str(tmp_path / "a")]) == 0
    assert backtest.main([*base, "--out", str(tmp_path / "b")]) == 0
    a = json.loads((tmp_path / "a" / "report.json").read_text())
    b = json.loads((tmp_path / "b" / "report.json").read_text())
    source = next(s for s in a["sources"] if s["name"] == "taker_flow")
    assert (source["path"], source["events"]) == ("taker.json", 38)
    assert "no taker flow history given: momentum scores price alone" in b["notes"]
    moved = same = 0
    rows_a, rows_b = read_signals(tmp_path / "a"), read_signals(tmp_path / "b")
    for sa, sb in zip(rows_a, rows_b, strict=True):
        ma, mb = sa["factors"]["momentum"], sb["factors"]["momentum"]
        assert ma["status"] == mb["status"]
        moved += ma["score"] != mb["score"]
        same += ma["score"] == mb["score"]
        # the other factors are untouched by taker flow
        others = {k: v for k, v in sa["factors"].items() if k != "momentum"}
        assert others == {k: v for k, v in sb["factors"].items() if k != "momentum"}
    assert moved > 50 and same > 0  # before 12 rows of history, momentum is price alone
    assert "momentum" in a["factor_diagnostics"]
    assert a["factor_diagnostics"]["momentum"] != b["factor_diagnostics"]["momentum"]
