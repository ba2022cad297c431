"""Slash dates (`01/02/2024 00:00`, as Excel, Investing.com and venue downloads write them),
and the other dates spreadsheets write (`2024.01.02`, `Jan 02, 2024`, `02-Jan-24`).

Day first or month first is decided per file from what its dates prove (a number above 12),
or by `--date-order`; a file that proves neither, or both, is refused naming why and where,
never read as other days. The files are the recorded XRPUSDT 5m and FTX BTC-PERP 1m exports
with their epoch times written as such dates.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from perpsignal_cli import backtest
from perpsignal_cli.backtesting import importers as imp
from perpsignal_cli.backtesting import multi
from perpsignal_cli.backtesting.importing import resolving


def _as_dates(lines: list[str], fmt: str) -> list[str]:
    """The rows of an `open_time,...` CSV with the epoch ms time written in `fmt`."""
    out = [lines[0]]
    for line in lines[1:]:
        ms, rest = line.split(",", 1)
        at = f"{datetime.fromtimestamp(int(ms) / 1000, UTC):{fmt}}"
        out.append(f'"{at}",{rest}' if "," in at else f"{at},{rest}")  # as CSV writers quote
    return out


def _write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture(scope="module")
def xrp_lines(market: Path) -> list[str]:
    """XRPUSDT 5m from 2021-11-15: its first date's day (15) proves the order."""
    return (market / "XRP_USDT_USDT-5m-futures.csv").read_text().splitlines()[:600]


@pytest.fixture(scope="module")
def ftx_january(market: Path) -> list[str]:
    """FTX BTC-PERP 1m from 2022-01-01 00:00 to 01-13 23:59: twelve days of dates that read
    either way (day and month both 1-12), then days the other order cannot read."""
    lines = (market / "ftx-btc-perp-20211231-20220201_1m.csv").read_text().splitlines()
    start, end = 1640995200000, 1640995200000 + 13 * 86_400_000
    return [lines[0], *(ln for ln in lines[1:] if start <= int(ln.split(",")[0]) < end)]


def _epochs(lines: list[str]) -> list[int]:
    return [int(ln.split(",")[0]) for ln in lines[1:]]


@pytest.mark.parametrize(
    "fmt",
    [
        "%d/%m/%Y %H:%M",  # Excel in a day-first locale
        "%m/%d/%Y %H:%M:%S",  # Excel in a month-first locale
        "%m/%d/%y %I:%M %p",  # Excel's US short date, a two-digit year and AM/PM
        "%d/%m/%Y %H:%M UTC",
        "%m/%d/%Y %H:%M:%S.%f+00:00",  # fractions and a UTC offset
        "%d-%m-%Y %H:%M",  # dashes, the year last: the same question, the same answer
    ],
)
def test_a_slash_dated_export_reads_the_same_bars_as_its_epoch_times(
    tmp_path: Path, xrp_lines: list[str], fmt: str
) -> None:
    path = _write(tmp_path / "xrp.csv", _as_dates(xrp_lines, fmt))
    series = imp.read_candles(path)
    assert series.open_ms == _epochs(xrp_lines)
    assert series.timeframe == "5m"


@pytest.fixture(scope="module")
def btc_daily(market: Path) -> tuple[list[str], list[int]]:
    """FTX BTC-PERP's January 2022 as daily bars (an `open_time,...` CSV) and their times."""
    bars = imp.aggregate(imp.read_candles(market / "ftx-btc-perp-20211231-20220201_1m.csv"), "1d")
    columns = (bars.open_ms, bars.open, bars.high, bars.low, bars.close, bars.volume)
    lines = ["open_time,open,high,low,close,volume"]
    lines += [",".join(map(str, row)) for row in zip(*columns, strict=True)]
    return lines, bars.open_ms


@pytest.mark.parametrize(
    "fmt",
    [
        "%Y.%m.%d",  # MetaTrader's year first
        "%Y.%m.%d %H:%M",
        "%b %d, %Y",  # Investing.com's older downloads, US sites
        "%B %d, %Y",
        "%d %b %Y",
        "%d-%b-%y",  # Excel's 15-Nov-21
        "%b %d, %Y %H:%M",
    ],
)
def test_dates_with_the_year_first_or_a_month_name_read_as_written(
    tmp_path: Path, btc_daily: tuple[list[str], list[int]], fmt: str
) -> None:
    """Unambiguous, so read whatever the file's first dates; a date alone is a day's bar.
    Without a time they were unreadable times."""
    lines, open_ms = btc_daily
    got = imp.read_candles(_write(tmp_path / "btc-1d.csv", _as_dates(lines, fmt)))
    assert got.open_ms == open_ms and got.timeframe == "1d"


def test_rows_without_a_header_may_start_with_a_slash_date(
    tmp_path: Path, xrp_lines: list[str]
) -> None:
    path = _write(tmp_path / "xrp.csv", _as_dates(xrp_lines, "%d/%m/%Y %H:%M")[1:])
    assert imp.read_candles(path).open_ms == _epochs(xrp_lines)


def test_json_rows_with_slash_dates_are_decided_by_all_their_rows(
    tmp_path: Path, ftx_january: list[str]
) -> None:
    """A JSON file is read whole: a proof anywhere in it decides (here on the 13th)."""
    lines = _as_dates(ftx_january, "%m/%d/%Y %H:%M")
    header = lines[0].split(",")
    rows = [dict(zip(header, ln.split(","), strict=True)) for ln in lines[1:]]
    path = tmp_path / "ftx.json"
    path.write_text(json.dumps(rows))
    assert imp.read_candles(path).open_ms == _epochs(ftx_january)


def test_dates_that_read_either_way_are_refused_naming_the_option(
    tmp_path: Path, ftx_january: list[str]
) -> None:
    lines = _as_dates(ftx_january, "%d/%m/%Y %H:%M")
    twelve_days = [ln for ln in lines if not ln.startswith("13/")]
    path = _write(tmp_path / "ftx.csv", twelve_days)
    with pytest.raises(imp.HistoryFormatError, match="--date-order dmy") as err:
        imp.read_candles(path)
    assert "'01/01/2022 00:00'" in str(err.value) and "\n" not in str(err.value)
    with imp.date_order("dmy"):
        assert imp.read_candles(path).open_ms == _epochs(ftx_january)[: len(twelve_days) - 1]


def test_a_later_row_past_the_scanned_rows_decides_against_the_option_and_is_refused(
    tmp_path: Path, ftx_january: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The prefix (here 1,000 rows) reads either way; the 13th's first row cannot be month
    first: the file is refused at that line, not read as 13 months."""
    monkeypatch.setattr(resolving, "DATE_SCAN_ROWS", 1000)
    lines = _as_dates(ftx_january, "%d/%m/%Y %H:%M")
    path = _write(tmp_path / "ftx.csv", lines)
    with pytest.raises(imp.HistoryFormatError, match="first 1,000 rows"):
        imp.read_candles(path)
    line = next(n for n, ln in enumerate(lines, 1) if ln.startswith("13/01/2022"))
    with imp.date_order("mdy"), pytest.raises(imp.HistoryFormatError) as err:
        imp.read_candles(path)
    assert f"line {line}: '13/01/2022 00:00' is day first" in str(err.value)
    assert "--date-order mdy" in str(err.value)
    with imp.date_order("dmy"):
        assert imp.read_candles(path).open_ms == _epochs(ftx_january)


def test_the_scanned_rows_decide_without_the_option(tmp_path: Path, ftx_january: list[str]) -> None:
    path = _write(tmp_path / "ftx.csv", _as_dates(ftx_january, "%m/%d/%Y %H:%M"))
    assert imp.read_candles(path).open_ms == _epochs(ftx_january)


def test_a_file_of_both_orders_is_refused_naming_the_line(
    tmp_path: Path, xrp_lines: list[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Day first proven at once (the 15th), month first in the last row: whether or not the
    scanned rows reach it, the file is refused at that line."""
    lines = _as_dates(xrp_lines, "%d/%m/%Y %H:%M")
    day, month, rest = lines[-1].split("/", 2)
    lines[-1] = f"{month}/{day}/{rest}"  # 17/11/2021 -> 11/17/2021
    path = _write(tmp_path / "xrp.csv", lines)
    for scanned in (imp.DATE_SCAN_ROWS, 10):
        monkeypatch.setattr(resolving, "DATE_SCAN_ROWS", scanned)
        with pytest.raises(imp.HistoryFormatError) as err:
            imp.read_candles(path)
        msg = str(err.value)
        assert f"line {len(lines)}: '{lines[-1].split(',')[0]}' is month first" in msg
        assert "line 2: '15/11/2021 00:00' is day first" in msg


def test_the_option_contradicted_by_the_first_rows_is_refused(
    tmp_path: Path, xrp_lines: list[str]
) -> None:
    path = _write(tmp_path / "xrp.csv", _as_dates(xrp_lines, "%d/%m/%Y %H:%M"))
    with imp.date_order("mdy"), pytest.raises(imp.HistoryFormatError, match="line 2: "):
        imp.read_candles(path)


def test_cli_asks_for_the_date_order_in_one_line_and_runs_with_it(
    tmp_path: Path, ftx_january: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    lines = [ln for ln in _as_dates(ftx_january, "%d/%m/%Y %H:%M") if not ln.startswith("13/")]
    candles = _write(tmp_path / "ftx.csv", lines[:3000])
    argv = ["--symbol", "BTCUSDT", "--candles", str(candles), "--out", str(tmp_path / "out")]
    argv += ["--no-progress", "--quiet", "--jobs", "1"]
    assert backtest.main(argv) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert "--date-order dmy (day first) or --date-order mdy" in err.splitlines()[-1]
    assert backtest.main([*argv, "--date-order", "dmy"]) == 0
    report = json.loads((tmp_path / "out" / "report.json").read_text())
    read = next(s for s in report["sources"] if s["name"] == "candles")
    # 15m bars from 1 January 00:00 to 3 January (month first, they were 1 March)
    assert read["first"] == "2022-01-01T00:15:00+00:00" and read["last"] < "2022-01-04"


def test_a_many_symbol_run_plans_and_passes_the_date_order(
    tmp_path: Path, ftx_january: list[str]
) -> None:
    path = _write(tmp_path / "BTCUSDT.csv", _as_dates(ftx_january, "%d/%m/%Y %H:%M")[:50])
    with imp.date_order("dmy"):
        assert multi._timeframe_s(path) == 60  # the bar length from its rows
    args = backtest.build_parser().parse_args([str(path), "--date-order", "dmy"])
    assert multi.shared_argv(backtest.build_parser(), args)[-2:] == ["--date-order", "dmy"]


@pytest.mark.parametrize(
    ("text", "at"),
    [
        ("2024/1/2 13:05", datetime(2024, 1, 2, 13, 5, tzinfo=UTC)),
        ("2024.1.2", datetime(2024, 1, 2, tzinfo=UTC)),
        ("Sept 2, 2024", datetime(2024, 9, 2, tzinfo=UTC)),
        ("2 January 2024 13:05", datetime(2024, 1, 2, 13, 5, tzinfo=UTC)),
        ("02 Jan 2024 13:05 +0100", datetime(2024, 1, 2, 12, 5, tzinfo=UTC)),
    ],
)
def test_one_date_of_each_spelling(text: str, at: datetime) -> None:
    assert imp.ms_to_dt(imp.parse_time_ms(text)) == at


@pytest.mark.parametrize("text", ["15-11-21", "02 Foo 2024", "2024.13.02", "31 Feb 2024"])
def test_what_only_looks_like_a_date_is_refused(text: str) -> None:
    """A dash date with a two-digit year may be year first (21-11-15): not guessed."""
    with pytest.raises(imp.HistoryFormatError, match="unreadable time"):
        imp.parse_time_ms(text, "dmy")


def _split(lines: list[str], day: str, clock: str, sep: str, header: str | None) -> list[str]:
    """An `open_time,...` CSV with its time as a date column and a time-of-day column."""
    out = [] if header is None else [header]
    for line in lines[1:]:
        ms, *rest = line.split(",")
        at = datetime.fromtimestamp(int(ms) / 1000, UTC)
        out.append(sep.join([f"{at:{day}}", f"{at:{clock}}", *rest]))
    return out


def test_a_metatrader_5_export_reads_its_date_and_time_columns_together(
    tmp_path: Path, xrp_lines: list[str]
) -> None:
    """MetaTrader 5's bar export: tab-separated `<DATE>` (2021.11.15) and `<TIME>` (00:05:00).
    The time of day alone was taken as the time: unreadable."""
    head = "<DATE>\t<TIME>\t<OPEN>\t<HIGH>\t<LOW>\t<CLOSE>\t<VOL>"
    path = _write(tmp_path / "XRPUSD_M5.csv", _split(xrp_lines, "%Y.%m.%d", "%H:%M:%S", "\t", head))
    got = imp.read_candles(path)
    assert got.open_ms == _epochs(xrp_lines) and got.timeframe == "5m"


def test_a_metatrader_4_history_without_a_header_reads_by_position(
    tmp_path: Path, xrp_lines: list[str]
) -> None:
    """MetaTrader 4's history export: `2021.11.15,00:05,open,high,low,close,volume`, seven
    values like Bybit's klines (where the time of day would be the open)."""
    path = _write(tmp_path / "XRPUSD5.csv", _split(xrp_lines, "%Y.%m.%d", "%H:%M", ",", None))
    got = imp.read_candles(path)
    assert got.open_ms == _epochs(xrp_lines)
    assert got.close == [float(ln.split(",")[4]) for ln in xrp_lines[1:]]


def test_slash_dates_beside_a_time_column_are_decided_as_slash_dates(
    tmp_path: Path, ftx_january: list[str]
) -> None:
    """`Date,Time,...` with day-first dates: the date column is where the order shows."""
    lines = _split(ftx_january, "%d/%m/%Y", "%H:%M", ",", "Date,Time,Open,High,Low,Close,Volume")
    path = _write(tmp_path / "btc.csv", lines)
    assert imp.read_candles(path).open_ms == _epochs(ftx_january)  # the 13th decides
    twelve_days = [ln for ln in lines if not ln.startswith("13/")]
    with pytest.raises(imp.HistoryFormatError, match="'01/01/2022' read day/month/year"):
        imp.read_candles(_write(tmp_path / "btc12.csv", twelve_days))
