"""Liquidation and social history for the backtest: the recorded vendor bodies and exports
become the events the live ingestor produces, and reach the scorer's factors."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from perpsignal_cli import backtest
from perpsignal_cli.backtesting import importers as imp
from perpsignal_cli.backtesting.pipeline import load_history
from perpsignal_common.events.market import (
    LiquidationBucketV1,
    LiquidationOrderV1,
    SocialMetricsV1,
)
from perpsignal_domain.scoring.config import EngineConfig
from perpsignal_domain.scoring.engine import ScoringEngine


@pytest.fixture(scope="module")
def api(shared_data: Path) -> Path:
    return shared_data / "api"


def test_coinglass_liquidation_history_becomes_buckets(api: Path) -> None:
    events = imp.read_liquidations(api / "coinglass/liquidation__liquidation-history.json", "BTC")
    assert all(isinstance(e, LiquidationBucketV1) for e in events)
    first = events[0]
    assert isinstance(first, LiquidationBucketV1)
    # daily rows: the bucket opened at its `time` is known at its end
    assert first.window_s == 86400
    assert first.observed_at == datetime(2022, 7, 28, tzinfo=UTC)
    assert (first.long_liquidations_usd, first.short_liquidations_usd) == pytest.approx(
        (2369935.19562, 6947459.43674)
    )
    agg = imp.read_liquidations(
        api / "coinglass/liquidation__aggregated-liquidation-history.json", "BTCUSDT"
    )
    assert isinstance(agg[0], LiquidationBucketV1)
    assert agg[0].short_liquidations_usd == pytest.approx(12969583.87632)


def test_coinglass_orders_keep_side_venue_and_symbol(api: Path) -> None:
    path = api / "coinglass/liquidation__liquidation-order.json"
    orders = imp.read_liquidations(path, "BTCUSDT")
    body = json.loads(path.read_text())["data"]
    assert len(orders) == len(body)
    newest = max(orders, key=lambda e: e.observed_at)
    assert isinstance(newest, LiquidationOrderV1)
    # Coinglass side 2 = a short liquidated (as the live Coinglass parser reads it)
    assert (newest.liquidated_side, newest.venue) == ("SHORT", "binance")
    assert newest.notional_usd == pytest.approx(205534.2932)
    assert imp.read_liquidations(path, "ETHUSDT") == []  # another symbol's rows left out


def test_binance_liquidation_snapshot_csv(tmp_path: Path) -> None:
    """data.binance.vision liquidationSnapshot layout: a SELL order liquidated a long."""
    path = tmp_path / "BTCUSDT-liquidationSnapshot.csv"
    path.write_text(
        "time,side,order_type,time_in_force,original_quantity,price,average_price,"
        "order_status,last_fill_quantity,accumulated_fill_quantity\n"
        "1568014460893,SELL,LIMIT,IOC,0.014,9910,9910.5,FILLED,0.014,0.014\n"
        "1568014470000,BUY,LIMIT,IOC,0.5,9950,9960,FILLED,0.5,0.5\n"
    )
    a, b = imp.read_liquidations(path, "BTCUSDT", venue="binance")
    assert isinstance(a, LiquidationOrderV1) and isinstance(b, LiquidationOrderV1)
    assert (a.liquidated_side, b.liquidated_side) == ("LONG", "SHORT")
    assert a.notional_usd == pytest.approx(9910.5 * 0.014)
    assert a.observed_at == datetime.fromtimestamp(1568014460.893, UTC)


def test_a_liquidation_list_without_sides_is_refused(shared_data: Path) -> None:
    """Hyperliquid's public liquidations.csv has notional but neither side nor coin: the
    factor weighs longs against shorts, so the file cannot feed it and says so."""
    path = shared_data / "market/hyperliquid-liquidations-2023.csv"
    with pytest.raises(imp.HistoryFormatError, match="without a side") as err:
        imp.read_liquidations(path, "BTCUSDT")
    text = str(err.value)
    # what the file has, why nothing can be derived from it, and how to supply what is missing
    assert "time, user, liquidated_ntl_pos, liquidated_account_value, leverage_type" in text
    assert "Hyperliquid's account-level list" in text and "neither the coin nor the side" in text
    assert "--columns liquidations.side=" in text and "liquidations.long_usd=" in text
    assert "liquidations.symbol=" in text


def test_a_sideless_list_of_another_venue_gets_the_general_reason(tmp_path: Path) -> None:
    path = tmp_path / "liq.csv"
    path.write_text("time,symbol,usd\n1700000000000,BTCUSDT,1000\n1700000060000,BTCUSDT,50\n")
    with pytest.raises(imp.HistoryFormatError, match="no column says which side") as err:
        imp.read_liquidations(path, "BTCUSDT")
    assert "Hyperliquid" not in str(err.value) and "columns: time, symbol, usd" in str(err.value)


def test_a_side_named_with_columns_makes_the_list_readable(tmp_path: Path) -> None:
    """The way out the message names: --columns liquidations.side=<column>."""
    path = tmp_path / "liq.csv"
    path.write_text("time,who,usd\n1700000000000,SELL,1000\n1700000060000,BUY,50\n")
    with imp.column_overrides(imp.parse_column_map(["liquidations.side=who"])):
        orders = imp.read_liquidations(path, "BTCUSDT")
    assert [(o.liquidated_side, o.notional_usd) for o in orders] == [  # type: ignore[union-attr]
        ("LONG", 1000.0),
        ("SHORT", 50.0),
    ]


def test_lunarcrush_time_series_becomes_social_metrics(api: Path) -> None:
    path = api / "lunarcrush/coins_coin_time-series_v2.json"
    events = imp.read_social(path, "ETHUSDT")
    row = json.loads(path.read_text())["data"][0]
    first = events[0]
    assert isinstance(first, SocialMetricsV1)
    assert first.observed_at == datetime.fromtimestamp(row["time"], UTC)
    assert (first.sentiment, first.galaxy_score, first.alt_rank) == (
        row["sentiment"],
        row["galaxy_score"],
        row["alt_rank"],
    )


def test_backtest_inputs_reach_the_factors(market: Path, tmp_path: Path) -> None:
    """`--liquidations` and `--social` files go through load_history into the scorer: the
    two factors are no longer missing for want of input, and move the way their data say."""
    candles = market / "XRP_USDT_USDT-5m-futures.csv"
    rows = candles.read_text().splitlines()
    t0 = int(rows[1].split(",")[0])
    liq = tmp_path / "liq.csv"  # shorts squeezed every 5 minutes, hourly buckets
    liq.write_text(
        "time,long_liquidation_usd,short_liquidation_usd\n"
        + "".join(f"{t0 + k * 3600_000},100000,900000\n" for k in range(48))
    )
    social = tmp_path / "social.csv"  # hourly LunarCrush rows
    social.write_text(
        "time,sentiment,galaxy_score\n"
        + "".join(f"{(t0 // 1000) + k * 3600},{70 + k % 7},{60 + k % 5}\n" for k in range(48))
    )
    history = load_history("XRPUSDT", candles, liquidations=liq, social=social, timeframe="15m")
    kinds = {type(e) for e in history.events}
    assert {LiquidationBucketV1, SocialMetricsV1} <= kinds
    engine = ScoringEngine(EngineConfig(primary_timeframe="15m", smc_timeframes=("15m",)))
    ok: dict[str, list[float]] = {"liquidations": [], "social": []}
    for ev in history.events:
        for s in engine.apply(ev):
            for f in s.factors:
                if f.name in ok and f.status == "ok":
                    ok[f.name].append(f.score)
    assert len(ok["liquidations"]) > 100 and len(ok["social"]) > 100
    # shorts liquidated: bullish (50 once the buckets end: a quiet window of a live feed)
    assert min(ok["liquidations"]) >= 50 and max(ok["liquidations"]) == pytest.approx(90.0)
    assert backtest.build_parser().parse_args(
        ["--symbol", "X", "--candles", "c", "--liquidations", "l", "--social", "s"]
    ).liquidations == Path("l")


# --- values no reader may take: NaN is how pandas writes "none", an infinity or a negative
# ratio is no value (each was a traceback: ZeroDivisionError, ValueError, OverflowError) ---


def _rows_of(api: Path, name: str) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = json.loads((api / name).read_text())["data"]
    return rows


def test_a_long_short_ratio_that_is_nan_is_missing_and_a_negative_one_refused(
    api: Path, tmp_path: Path
) -> None:
    """OKX's rubik long/short rows are `[ts, ratio]`: the ratio alone gives the share."""
    rows = _rows_of(api, "coinglass/long-short-ratio__global-longshort-account-ratio.json")
    pairs = [[r["time"], r["global_account_long_short_ratio"]] for r in rows]
    path = tmp_path / "ls.json"
    path.write_text(json.dumps([pairs[0], [pairs[1][0], math.nan]]))
    assert [e.ratio for e in imp.read_long_short(path, "BTCUSDT")] == [pairs[0][1]]
    for bad in (-1.0, -3.0, math.inf):
        path.write_text(json.dumps([pairs[0], [pairs[1][0], bad]]))
        with pytest.raises(imp.HistoryFormatError, match=rf"ls\.json: .*ratio {bad}"):
            imp.read_long_short(path, "BTCUSDT")


def test_a_fear_greed_value_that_is_nan_is_missing_and_an_infinite_one_refused(
    market: Path, tmp_path: Path
) -> None:
    lines = (market / "alternative_me-fear_greed-1d.csv").read_text().splitlines()[:20]
    t = lines[5].split(",")[0]
    path = tmp_path / "fng.csv"
    path.write_text("\n".join([*lines[:5], f"{t},nan", *lines[6:]]) + "\n")
    assert len(imp.read_fear_greed(path)) == len(lines) - 2
    path.write_text("\n".join([*lines[:5], f"{t},inf", *lines[6:]]) + "\n")
    with pytest.raises(imp.HistoryFormatError, match=r"fng\.csv: .*value inf"):
        imp.read_fear_greed(path)


def test_a_social_alt_rank_that_is_nan_is_missing(api: Path, tmp_path: Path) -> None:
    body = json.loads((api / "lunarcrush/coins_coin_time-series_v2.json").read_text())
    row = body["data"][0]
    body["data"].append({**row, "time": row["time"] + 3600})  # the next hour's, as recorded
    body["data"][0]["alt_rank"] = math.nan
    path = tmp_path / "social.json"
    path.write_text(json.dumps(body))
    events = imp.read_social(path, "ETHUSDT")
    assert events[0].alt_rank is None and events[1].alt_rank == body["data"][1]["alt_rank"]
    body["data"][0]["alt_rank"] = math.inf
    path.write_text(json.dumps(body))
    with pytest.raises(imp.HistoryFormatError, match=r"social\.json: .*alt_rank inf"):
        imp.read_social(path, "ETHUSDT")


@pytest.mark.parametrize("window", [math.nan, math.inf, -3600.0])
def test_a_liquidation_window_that_is_no_length_is_refused(
    api: Path, tmp_path: Path, window: float
) -> None:
    rows = _rows_of(api, "coinglass/liquidation__liquidation-history.json")
    rows[1]["window_s"] = window
    path = tmp_path / "liq.json"
    path.write_text(json.dumps(rows))
    with pytest.raises(imp.HistoryFormatError, match=r"liq\.json: .*window_s"):
        imp.read_liquidations(path, "BTC")
