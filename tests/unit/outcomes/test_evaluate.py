"""Outcome arithmetic on real Binance XRPUSDT 5m candles (../shared/data/market).

Expected numbers are read off the CSV rows by hand (quoted in comments) and the arithmetic is
done here, so the test does not restate the code under test.
"""

from __future__ import annotations

import csv
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from perpsignal_domain.outcomes.evaluate import (
    Candle,
    Series,
    classify,
    evaluate,
    evaluate_window,
    expected_count,
    path_window,
)

STEP = timedelta(minutes=5)


@pytest.fixture(scope="module")
def xrp(shared_data: Path) -> list[Candle]:
    path = shared_data / "market" / "XRP_USDT_USDT-5m-futures.csv"
    if not path.exists():
        pytest.skip(f"{path} missing")
    with path.open() as f:
        return [
            Candle(
                datetime.fromtimestamp(int(r["open_time"]) / 1000, tz=UTC),
                float(r["open"]),
                float(r["high"]),
                float(r["low"]),
                float(r["close"]),
            )
            for r in csv.DictReader(f)
        ]


def at(hh: int, mm: int) -> datetime:
    return datetime(2021, 11, 15, hh, mm, tzinfo=UTC)


def pct(a: float, b: float) -> float:
    return (a - b) / b * 100


# 2021-11-15, signal on the close of the 00:00 candle (observed 00:05): entry 1.1941.
# 1h path = candles 00:05 ... 01:00 (12 rows). Highest high 1.2165 (00:55), lowest low 1.1934
# (00:05), close of 01:00 = 1.2123.
ENTRY = 1.1941


def test_one_hour_path_is_the_twelve_candles_after_entry(xrp: list[Candle]) -> None:
    path = path_window(xrp, at(0, 5), at(1, 5), STEP)
    assert path is not None
    assert [c.open_time for c in path] == [at(0, 5) + i * STEP for i in range(12)]
    assert path[-1].close == 1.2123


def test_long_on_real_candles(xrp: list[Candle]) -> None:
    path = path_window(xrp, at(0, 5), at(1, 5), STEP)
    assert path is not None
    ev = evaluate("LONG", ENTRY, path)
    assert ev.exit_price == 1.2123
    assert ev.pnl_pct == pytest.approx(pct(1.2123, ENTRY))  # +1.524 %
    assert ev.pnl_pct > 1.5
    assert ev.result == "WIN"
    assert ev.max_favorable_pct == pytest.approx(pct(1.2165, ENTRY))
    assert ev.max_adverse_pct == pytest.approx((ENTRY - 1.1934) / ENTRY * 100)
    assert ev.first_hit == "none"
    assert ev.candles_used == 12


def test_short_is_the_mirror_of_long(xrp: list[Candle]) -> None:
    path = path_window(xrp, at(0, 5), at(1, 5), STEP)
    assert path is not None
    ev = evaluate("SHORT", ENTRY, path)
    assert ev.pnl_pct == pytest.approx((ENTRY - 1.2123) / ENTRY * 100)
    assert ev.result == "LOSS"
    # for a short the favourable move is down to the lowest low, the adverse one up to the high
    assert ev.max_favorable_pct == pytest.approx((ENTRY - 1.1934) / ENTRY * 100)
    assert ev.max_adverse_pct == pytest.approx((1.2165 - ENTRY) / ENTRY * 100)


def test_long_stop_first(xrp: list[Candle]) -> None:
    # stop 1.1935 is touched by the 00:05 low (1.1934); target 1.2100 only at 00:50 (1.2159)
    path = path_window(xrp, at(0, 5), at(1, 5), STEP)
    assert path is not None
    ev = evaluate("LONG", ENTRY, path, stop=1.1935, target=1.2100)
    assert ev.first_hit == "stop"
    assert ev.result == "WIN"  # the horizon result is still measured on the end price


def test_long_target_first_even_though_stop_is_hit_later(xrp: list[Candle]) -> None:
    # entry on the close of 00:55 (1.2119); 01:00 high 1.2147 reaches target 1.2140 first,
    # 01:05 low 1.2047 then goes through stop 1.2050
    path = path_window(xrp, at(1, 0), at(2, 0), STEP)
    assert path is not None
    assert path[0].high >= 1.2140 and path[1].low <= 1.2050
    ev = evaluate("LONG", 1.2119, path, stop=1.2050, target=1.2140)
    assert ev.first_hit == "target"


def test_short_target_first_and_stop_first(xrp: list[Candle]) -> None:
    path = path_window(xrp, at(0, 5), at(1, 5), STEP)
    assert path is not None
    # short target 1.1935 is touched by the 00:05 low; stop 1.2050 only later (00:25 high 1.2092)
    assert evaluate("SHORT", ENTRY, path, stop=1.2050, target=1.1935).first_hit == "target"
    # short stop 1.1990 is touched by the 00:05 high (1.1993); target 1.1900 never
    assert evaluate("SHORT", ENTRY, path, stop=1.1990, target=1.1900).first_hit == "stop"
    assert evaluate("SHORT", ENTRY, path, stop=1.3, target=1.1).first_hit == "none"


def test_both_in_one_candle_assumes_stop_first(xrp: list[Candle]) -> None:
    # the 00:25 candle spans 1.1975 .. 1.2092: a long from 1.2000 with stop 1.1980 and target
    # 1.2090 sees both inside it; the order within a candle is unknown -> worst case, stop
    path = path_window(xrp, at(0, 25), at(0, 30), STEP)
    assert path is not None and len(path) == 1
    assert evaluate("LONG", 1.2, path, stop=1.1980, target=1.2090).first_hit == "stop"
    assert evaluate("SHORT", 1.2, path, stop=1.2090, target=1.1980).first_hit == "stop"


def test_missing_candle_means_no_path(xrp: list[Candle]) -> None:
    holed = [c for c in xrp if c.open_time != at(0, 30)]
    assert path_window(holed, at(0, 5), at(1, 5), STEP) is None
    # a path that ends after the last recorded candle is incomplete, never extrapolated
    end = xrp[-1].open_time
    assert path_window(xrp, end, end + timedelta(hours=1), STEP) is None


def test_unaligned_entry_uses_only_candles_after_it(xrp: list[Candle]) -> None:
    # on-demand signal at 00:07: the first full candle after it opens at 00:10; due 01:07 ->
    # last full candle is 01:00 (closes 01:05), so 11 candles
    path = path_window(xrp, at(0, 7), at(1, 7), STEP)
    assert path is not None
    assert path[0].open_time == at(0, 10) and path[-1].open_time == at(1, 0)
    assert expected_count(at(0, 7), at(1, 7), STEP) == 11 == len(path)


def test_neutral_band() -> None:
    assert classify(0.1) == "NEUTRAL"
    assert classify(-0.1) == "NEUTRAL"
    assert classify(0.1001) == "WIN"
    assert classify(-0.1001) == "LOSS"
    assert classify(0.3, band_pct=0.5) == "NEUTRAL"


def test_rejects_what_cannot_be_measured() -> None:
    c = [Candle(at(0, 0), 1, 1, 1, 1)]
    with pytest.raises(ValueError, match="direction"):
        evaluate("NEUTRAL", 1.0, c)
    with pytest.raises(ValueError, match="candle"):
        evaluate("LONG", 1.0, [])


def test_windows_of_a_series_measure_what_the_copied_paths_do(xrp: list[Candle]) -> None:
    # the evaluator measures windows of one candle series per symbol; every 1h/4h/24h path of
    # the first days, LONG and SHORT, with levels near the entry (stop first, target first, both
    # in one candle, none) gives the same evaluation as `evaluate` on the copied path
    series = Series.of(xrp)
    levels = [(None, None), (0.99, 1.01), (0.995, 1.002), (1.01, 0.99), (None, 1.003)]
    seen = set()
    for i in range(0, 1500, 7):
        entry_at = xrp[i].open_time
        entry = xrp[i - 1].close if i else xrp[0].open
        for hours in (1, 4, 24):
            due_at = entry_at + timedelta(hours=hours)
            window = series.window(entry_at, due_at, STEP)
            path = path_window(xrp, entry_at, due_at, STEP)
            assert path is not None and window is not None
            for direction in ("LONG", "SHORT"):
                for k, (s, t) in enumerate(levels):
                    sign = 1 if direction == "LONG" else -1
                    stop = None if s is None else entry * (1 - sign * (1 - s))
                    target = None if t is None else entry * (1 + sign * (t - 1))
                    want = evaluate(direction, entry, path, stop=stop, target=target)
                    got = evaluate_window(
                        direction, entry, series, *window, stop=stop, target=target
                    )
                    assert got == want, (entry_at, hours, direction, k)
                    seen.add(got.first_hit)
    assert seen == {"stop", "target", "none"}
