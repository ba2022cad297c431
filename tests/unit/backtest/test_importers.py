"""Importers on the real recorded files: row counts and first/last times from the data README."""

from __future__ import annotations

import csv
import math
from datetime import UTC, datetime
from pathlib import Path

import pydantic
import pytest

from perpsignal_cli.backtesting import importers as imp
from perpsignal_common.events.market import CandleClosedV1


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_plain_ohlcv_candles(market: Path) -> None:
    s = imp.read_candles(market / "XRP_USDT_USDT-5m-futures.csv")
    assert s.timeframe == "5m"
    assert len(s) == 1999
    assert imp.ms_to_dt(s.open_ms[0]) == utc(2021, 11, 15)
    assert imp.ms_to_dt(s.open_ms[-1]) == utc(2021, 11, 21, 22, 30)
    assert (s.open[0], s.high[0], s.low[0], s.close[0]) == (1.1893, 1.1954, 1.1891, 1.1941)


def test_ftx_candles_with_usd_volume(market: Path) -> None:
    s = imp.read_candles(market / "ftx-btc-perp-20211231-20220201_1m.csv")
    assert s.timeframe == "1m"
    assert len(s) == 45_031
    assert imp.ms_to_dt(s.open_ms[0]) == utc(2021, 12, 31, 23, 1)
    assert imp.ms_to_dt(s.open_ms[-1]) == utc(2022, 2, 1, 5, 31)
    assert s.quote_volume[0] == pytest.approx(2300413.7295)
    # only a USD volume is published: base volume is that at the close price
    assert s.volume[0] == pytest.approx(2300413.7295 / 46377)


def test_candle_events_are_observed_at_close(market: Path) -> None:
    s = imp.read_candles(market / "XRP_USDT_USDT-1h-futures.csv")
    events = imp.candle_events(s, "XRPUSDT")
    assert len(events) == 100
    assert events[0].open_time == utc(2021, 11, 17, 1)
    assert events[0].observed_at == utc(2021, 11, 17, 2)
    assert events[-1].observed_at == utc(2021, 11, 21, 5)
    assert len({e.event_id for e in events}) == 100
    # ids are deterministic: importing again gives the same ids
    assert [e.event_id for e in imp.candle_events(s, "XRPUSDT")] == [e.event_id for e in events]


@pytest.mark.parametrize(
    "name", ["XRP_USDT_USDT-5m-futures.csv", "ftx-btc-perp-20211231-20220201_1m.csv"]
)
def test_candle_events_built_in_bulk_equal_validated_ones(market: Path, name: str) -> None:
    """The importer validates the first candle and builds the rest from it when the series
    passes its bulk check: each must be what the validated constructor gives."""
    s = imp.read_candles(market / name)
    assert imp._plain_series(s)  # these real files take the bulk path
    events = imp.candle_events(s, "BTCUSDT", "ftx")
    for e in events[:: max(1, len(events) // 500)] + events[-3:]:
        checked = CandleClosedV1(**{k: getattr(e, k) for k in e.model_fields_set})
        assert e == checked
        assert e.model_dump_json() == checked.model_dump_json()
        assert e.model_fields_set == checked.model_fields_set


def _bad(series: imp.CandleSeries, k: int, column: str, value: object) -> imp.CandleSeries:
    bad = series.slice(0, len(series))
    getattr(bad, column)[k] = value
    return bad


@pytest.mark.parametrize(
    ("column", "value"),
    [("high", 0.5), ("close", math.nan), ("low", -1.0), ("volume", -2.0), ("open", math.inf)],
)
def test_a_bad_candle_in_a_series_is_refused_as_by_validation(
    market: Path, column: str, value: object
) -> None:
    s = imp.read_candles(market / "XRP_USDT_USDT-5m-futures.csv")
    bad = _bad(s, 700, column, value)
    assert not imp._plain_series(bad)
    with pytest.raises(pydantic.ValidationError):
        imp.candle_events(bad, "XRPUSDT")


def test_int_prices_become_floats_as_validation_makes_them(market: Path) -> None:
    s = imp.read_candles(market / "XRP_USDT_USDT-5m-futures.csv").slice(0, 50)
    s.open[10] = 2  # an int, as a hand-made series may carry
    s.high[10] = 3
    events = imp.candle_events(s, "XRPUSDT")
    assert type(events[10].open) is float and events[10].model_dump_json().count('"open":2.0')


def test_funding(market: Path) -> None:
    ev = imp.read_funding(market / "XRP_USDT_USDT-8h-funding_rate.csv", "XRPUSDT")
    assert len(ev) == 91
    # the settlement's real few-ms offset is kept
    assert ev[0].observed_at == utc(2021, 11, 18, 0, 0, 0, 17_000)
    assert ev[-1].observed_at.replace(microsecond=0) == utc(2021, 12, 18)
    assert ev[0].rate == 0.0001
    assert all(e.settled and e.symbol == "XRPUSDT" for e in ev)


def test_open_interest_and_long_short(market: Path) -> None:
    path = market / "binance-BTCUSDT-5m-oi_longshort_basis.csv"
    oi = imp.read_open_interest(path, "BTCUSDT")
    assert len(oi) == 110
    assert oi[0].observed_at == utc(2024, 5, 9, 16, 10)
    assert oi[-1].observed_at == utc(2024, 5, 10, 1, 15)
    assert oi[0].open_interest == pytest.approx(70887.608)
    assert oi[0].open_interest_usd == pytest.approx(4420877317.8768)
    ls = imp.read_long_short(path, "BTCUSDT")
    assert len(ls) == 3 * 110  # global accounts, top accounts, top positions per row
    first = {e.kind: e for e in ls if e.observed_at == utc(2024, 5, 9, 16, 10)}
    assert first["global_account"].long_share == pytest.approx(0.6604)
    assert first["top_account"].long_share == pytest.approx(0.6512)
    assert first["top_position"].long_share == pytest.approx(0.5384)
    assert first["global_account"].ratio == pytest.approx(1.9446)


def test_fear_greed(market: Path) -> None:
    ev = imp.read_fear_greed(market / "alternative_me-fear_greed-1d.csv")
    assert len(ev) == 2428
    assert ev[0].observed_at == utc(2018, 2, 1)
    assert ev[-1].observed_at == utc(2024, 9, 27)
    assert (ev[0].value, ev[-1].value) == (30, 61)


def test_binance_kline_file_without_header(tmp_path: Path) -> None:
    # the layout of data.binance.vision futures kline files (12 columns, no header)
    path = tmp_path / "BTCUSDT-15m-2024-01-01.csv"
    path.write_text(
        "1704067200000,42283.58,42554.57,42261.02,42475.23,1271.681,1704068099999,"
        "53957005.1,13547,743.512,31541456.6,0\n"
        "1704068100000,42475.23,42574.0,42450.0,42520.1,900.5,1704068999999,"
        "38280000.0,9000,450.0,19130000.0,0\n"
    )
    s = imp.read_candles(path)
    assert s.timeframe == "15m"
    assert len(s) == 2
    assert s.close == [42475.23, 42520.1]
    assert s.volume[0] == 1271.681
    assert s.quote_volume[0] == 53957005.1


def test_binance_metrics_and_funding_files(tmp_path: Path) -> None:
    metrics = tmp_path / "BTCUSDT-metrics-2024-01-01.csv"
    metrics.write_text(
        "create_time,symbol,sum_open_interest,sum_open_interest_value,"
        "count_toptrader_long_short_ratio,sum_toptrader_long_short_ratio,"
        "count_long_short_ratio,sum_taker_long_short_vol_ratio\n"
        "2024-01-01 00:05:00,BTCUSDT,82000.5,3470000000.0,1.5,1.25,3.0,0.9\n"
    )
    oi = imp.read_open_interest(metrics, "BTCUSDT")
    assert oi[0].observed_at == utc(2024, 1, 1, 0, 5)
    assert oi[0].open_interest == 82000.5
    ls = {e.kind: e for e in imp.read_long_short(metrics, "BTCUSDT")}
    assert ls["global_account"].long_share == pytest.approx(0.75)  # ratio 3 = 3 longs : 1 short
    assert ls["top_account"].long_share == pytest.approx(0.6)
    assert ls["top_position"].long_share == pytest.approx(1.25 / 2.25)
    funding = tmp_path / "BTCUSDT-fundingRate-2024-01.csv"
    funding.write_text(
        "calc_time,funding_interval_hours,last_funding_rate\n1704067200000,8,0.00037409\n"
    )
    f = imp.read_funding(funding, "BTCUSDT")
    assert (f[0].rate, f[0].interval_h, f[0].observed_at) == (0.00037409, 8.0, utc(2024, 1, 1))


def test_aggregate_to_15m_matches_the_rows(market: Path) -> None:
    path = market / "XRP_USDT_USDT-5m-futures.csv"
    with path.open() as fh:
        rows = [[float(x) for x in r] for r in list(csv.reader(fh))[1:4]]
    agg = imp.aggregate(imp.read_candles(path), "15m")
    assert agg.open_ms[0] == rows[0][0]
    assert agg.open[0] == rows[0][1]
    assert agg.high[0] == max(r[2] for r in rows)
    assert agg.low[0] == min(r[3] for r in rows)
    assert agg.close[0] == rows[2][4]
    assert agg.volume[0] == pytest.approx(sum(r[5] for r in rows))
    # 1999 bars from 00:00 to 22:30 on day 7: the last 15m bucket (22:30-22:45) is not closed
    assert len(agg) == 1999 // 3


def test_unreadable_shapes_are_refused(tmp_path: Path) -> None:
    bad = tmp_path / "x.csv"
    bad.write_text("when,price\n2024-01-01,1\n")
    with pytest.raises(imp.HistoryFormatError):
        imp.read_candles(bad)
    with pytest.raises(imp.HistoryFormatError):
        imp.read_fear_greed(bad)
