"""Hostile and damaged exports: a clear one-line error (exit 2) or a correct read, never a
traceback or a silent misread.

The files are written here in the shapes exporters produce (a Binance-style CSV with a
header, gzip, JSON); each test names the failure a user met before the fix.
"""

from __future__ import annotations

import json
import logging
import re
from datetime import UTC, datetime
from pathlib import Path

import pytest

from perpsignal_cli import backtest
from perpsignal_cli.backtesting import importers as imp
from perpsignal_cli.backtesting.importing import archives
from perpsignal_cli.backtesting.pipeline import load_history
from perpsignal_common.events.market import LiquidationOrderV1

T0 = 1_637_000_000_000 - 1_637_000_000_000 % 3_600_000  # 2021-11-15 18:00 UTC
HEADER = "open_time,open,high,low,close,volume\n"


def _bars(n: int = 120, step: int = 60_000) -> list[list[float]]:
    """`n` consistent 1m bars (high >= open, close >= low) from T0."""
    out: list[list[float]] = []
    price = 100.0
    for i in range(n):
        close = price * (1 + ((i * 7919) % 13 - 6) / 1000)
        high, low = max(price, close) * 1.001, min(price, close) * 0.999
        out.append([T0 + i * step, price, high, low, close, 10.0])
        price = close
    return out


def _csv(path: Path, rows: list[list[object]]) -> Path:
    path.write_text(HEADER + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


def _run(tmp_path: Path, candles: Path, *extra: str) -> int:
    argv = ["--symbol", "BTCUSDT", "--candles", str(candles), "--out", str(tmp_path / "out")]
    return backtest.main([*argv, "--no-progress", "--quiet", "--jobs", "1", *extra])


def _one_line_error(capsys: pytest.CaptureFixture[str], *words: str) -> str:
    err = capsys.readouterr().err
    assert "Traceback" not in err
    last = [ln for ln in err.splitlines() if ln.startswith("perpsignal backtest:")]
    assert last, err
    for w in words:
        assert w in last[-1], last[-1]
    return last[-1]


# --- a bar the candle contract refuses -----------------------------------------------------


@pytest.mark.parametrize(
    ("bad", "timeframe"),
    [
        ({"high": "99.0", "low": "100.5"}, "1m"),  # high below low (a misaligned export)
        ({"low": "0"}, "1m"),  # a zero low
        ({"close": "-1"}, "15m"),  # a negative close, inside a 15m bucket
        ({"close": "nan"}, "15m"),  # NaN inside a bucket: the outcome path still holds it
        ({"open": "inf"}, "1m"),
    ],
)
def test_a_bad_bar_is_refused_at_import_naming_the_file_and_bar(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: dict[str, str], timeframe: str
) -> None:
    rows: list[list[object]] = [list(r) for r in _bars()]
    for name, value in bad.items():  # 19:01, inside the 19:00-19:15 bucket, not its last bar
        rows[61][["time", "open", "high", "low", "close"].index(name)] = value
    path = _csv(tmp_path / "bad.csv", rows)
    assert _run(tmp_path, path, "--timeframe", timeframe) == 2
    _one_line_error(capsys, str(path), "2021-11-15T19:01")
    with pytest.raises(imp.HistoryFormatError, match="19:01"):
        imp.read_candles(path)


def test_a_bar_in_the_future_is_refused_at_import(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rows: list[list[object]] = [list(r) for r in _bars()]
    rows.append([4_102_444_800_000, *rows[-1][1:]])  # 2100-01-01, a typo'd year
    path = _csv(tmp_path / "future.csv", rows)
    assert _run(tmp_path, path, "--timeframe", "1m") == 2
    _one_line_error(capsys, str(path), "2100-01-01", "future")


# --- a file that is no readable export ------------------------------------------------------


def _damaged(tmp_path: Path, kind: str) -> Path:
    good = HEADER + "".join(",".join(map(str, r)) + "\n" for r in _bars())
    if kind == "long line":  # a field past the csv module's limit (a binary blob, a 2 GB line)
        path = tmp_path / "long.csv"
        path.write_text(HEADER + "x" * 200_000 + ",1,2,3,4\n" + good.split("\n", 1)[1])
    elif kind == "corrupt gzip":  # the magic bytes, then damage (a broken download)
        path = tmp_path / "candles.json.gz"
        path.write_bytes(b"\x1f\x8b\x08\x00" + bytes(range(256)) * 4)
    elif kind == "truncated gzip":
        import gzip

        path = tmp_path / "candles.csv.gz"
        path.write_bytes(gzip.compress(good.encode())[:-40])
    else:  # JSON nested past the parser's recursion limit
        path = tmp_path / "deep.json"
        path.write_text("[" * 100_000 + "]" * 100_000)
    return path


@pytest.mark.parametrize("kind", ["long line", "corrupt gzip", "truncated gzip", "deep JSON"])
def test_a_damaged_file_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    path = _damaged(tmp_path, kind)
    assert _run(tmp_path, path) == 2
    _one_line_error(capsys, str(path))
    with pytest.raises(imp.HistoryFormatError, match=str(path)):
        imp.read_funding(path, "BTCUSDT")


@pytest.mark.parametrize("kind", ["corrupt gzip", "deep JSON"])
def test_a_damaged_file_in_a_folder_is_listed_and_the_rest_runs(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], kind: str
) -> None:
    import json

    folder = tmp_path / "in"
    folder.mkdir()
    bad = _damaged(folder, kind)
    _csv(folder / "BTCUSDT-1m.csv", [list(r) for r in _bars(300)])
    out = tmp_path / "out"
    rc = backtest.main([str(folder), "--out", str(out), "--jobs", "1", "--quiet"])
    assert "Traceback" not in capsys.readouterr().err
    assert rc == 0
    summary = json.loads((out / "summary.json").read_text())
    files = {Path(f["path"]).name: f for f in summary["files"]}
    assert files[bad.name]["status"] == "error"


# --- times ------------------------------------------------------------------------------


@pytest.mark.parametrize("stamp", ["nan", "inf", "1e30", "-1637000000000"])
def test_an_impossible_time_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], stamp: str
) -> None:
    rows: list[list[object]] = [list(r) for r in _bars()]
    rows[5][0] = stamp
    path = _csv(tmp_path / "candles.csv", rows)
    assert _run(tmp_path, path) == 2
    _one_line_error(capsys, str(path), stamp)
    funding = tmp_path / "funding.csv"
    funding.write_text(f"fundingTime,fundingRate\n{T0},0.0001\n{stamp},0.0001\n")
    good = _csv(tmp_path / "good.csv", [list(r) for r in _bars()])
    assert _run(tmp_path, good, "--funding", str(funding)) == 2
    _one_line_error(capsys, str(funding), stamp)


# --- duplicated rows (pages of an API dump that overlap) ---------------------------------------


def test_overlapping_pages_give_the_report_of_the_clean_export(
    tmp_path: Path, market: Path
) -> None:
    """A dump paged by start time repeats the boundary rows: each time counts once (a
    candle not counted twice, a funding rate not charged twice in net P&L)."""
    candles = (market / "XRP_USDT_USDT-5m-futures.csv").read_text().splitlines(keepends=True)
    funding = (market / "XRP_USDT_USDT-8h-funding_rate.csv").read_text().splitlines(keepends=True)
    pages = tmp_path / "pages.csv"
    pages.write_text("".join(candles[:1201] + candles[1100:]))
    f_pages = tmp_path / "f_pages.csv"
    f_pages.write_text("".join(funding[:9] + funding[3:]))
    reports = []
    for name, c, f in (
        (
            "clean",
            market / "XRP_USDT_USDT-5m-futures.csv",
            market / "XRP_USDT_USDT-8h-funding_rate.csv",
        ),
        ("pages", pages, f_pages),
    ):
        out = tmp_path / name
        argv = ["--symbol", "XRPUSDT", "--candles", str(c), "--funding", str(f), "--out", str(out)]
        assert backtest.main([*argv, "--no-progress", "--quiet", "--jobs", "1"]) == 0
        reports.append((out / "signals.jsonl").read_text())
    assert '"LONG"' in reports[0] or '"SHORT"' in reports[0]  # net P&L of directional signals
    assert reports[1] == reports[0]
    assert len(imp.read_candles(pages)) == len(candles) - 1
    assert len(imp.read_funding(f_pages, "XRPUSDT")) == len(funding) - 1


def test_a_repeated_time_with_other_prices_is_named_in_the_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Rows repeating a time were counted, never named, whether or not they agreed with the
    row kept: now the warning says how many differ and the first such time."""
    bars = _bars(5)
    other = [bars[3][0], *(x * 1.01 for x in bars[3][1:5]), 99.0]
    path = _csv(tmp_path / "c.csv", [bars[0], bars[1], bars[1], other, *bars[2:]])
    with caplog.at_level(logging.WARNING):
        s = imp.read_candles(path)
    assert s.close == [b[4] for b in bars]  # the last row of each time
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "2 rows repeat a time (1 with other prices or volume than the row kept" in said
    assert f"the first at {imp.ms_to_dt(int(bars[3][0])).isoformat()[:19]}Z" in said


# --- numbers as spreadsheets write them ----------------------------------------------------


def test_thousands_separators_are_read_not_dropped(tmp_path: Path) -> None:
    """A spreadsheet-formatted export of ETH crossing 1,000: every row is a bar."""
    rows = [[T0 + i * 60_000, 990.0 + i, 991.5 + i, 989.0 + i, 991.0 + i, 5.0] for i in range(30)]
    path = tmp_path / "eth.csv"
    path.write_text(
        HEADER
        + "".join(
            f'{t},"{o:,.2f}","{h:,.2f}","{lo:,.2f}","{c:,.2f}","{v:,.1f}"\n'
            for t, o, h, lo, c, v in rows
        )
    )
    s = imp.read_candles(path)
    assert len(s) == 30
    assert s.close[-1] == 1020.0 and s.high[20] == 1011.5


@pytest.mark.parametrize("cell", ["n/a", "1.234,5", "12O.5"])
def test_an_unreadable_price_is_an_error_not_a_missing_bar(tmp_path: Path, cell: str) -> None:
    rows: list[list[object]] = [list(r) for r in _bars()]
    rows[40][4] = f'"{cell}"'
    path = _csv(tmp_path / "c.csv", rows)
    with pytest.raises(imp.HistoryFormatError, match=r"18:40.*" + cell.replace(".", r"\.")):
        imp.read_candles(path)


def test_a_bar_of_nan_prices_is_a_missing_bar(tmp_path: Path) -> None:
    """numpy/pandas dumps write an absent bar as NaN in every price (as an empty cell)."""
    rows: list[list[object]] = [list(r) for r in _bars()]
    rows[40][1:5] = ["NaN"] * 4
    s = imp.read_candles(_csv(tmp_path / "c.csv", rows))
    assert len(s) == len(rows) - 1 and s.gaps() == 1


# --- Coinbase ---------------------------------------------------------------------------------


def test_coinbase_exchange_candles_low_high_open_close(tmp_path: Path) -> None:
    """Coinbase Exchange /products/{id}/candles: [time s, low, high, open, close, volume],
    newest first: six values like CCXT's rows, in another order."""
    bars = _bars(60)
    path = tmp_path / "coinbase-BTC-USD-1m.json"
    body = [[t // 1000, lo, h, o, c, v] for t, o, h, lo, c, v in reversed(bars)]
    path.write_text(json.dumps(body))
    s = imp.read_candles(path)
    assert s.open == [b[1] for b in bars] and s.low == [b[3] for b in bars]
    assert s.high == [b[2] for b in bars] and s.close == [b[4] for b in bars]


def test_coinbase_advanced_trade_candles(tmp_path: Path) -> None:
    """Advanced Trade /api/v3/brokerage/products/{id}/candles: `start` (epoch s, a string)."""
    bars = _bars(60)
    rows = [
        {
            "start": str(t // 1000),
            "low": str(lo),
            "high": str(h),
            "open": str(o),
            "close": str(c),
            "volume": str(v),
        }
        for t, o, h, lo, c, v in reversed(bars)
    ]
    path = tmp_path / "candles.json"
    path.write_text(json.dumps({"candles": rows}))
    s = imp.read_candles(path)
    assert s.open_ms == [b[0] for b in bars] and s.close == [b[4] for b in bars]


# --- the symbol column of a liquidation list ---------------------------------------------------

_LIQ_HEADER = "time,symbol,side,price,qty\n"


def _liquidations(path: Path, names: dict[str, str]) -> Path:
    """Orders of two coins, each named as `names` says (BTC first, then ETH)."""
    rows = []
    for k in range(20):
        coin = "BTC" if k % 2 == 0 else "ETH"
        price = 60_000.0 if coin == "BTC" else 3_000.0
        side = "SELL" if k % 3 else "BUY"
        rows.append(f"{T0 + k * 60_000},{names[coin]},{side},{price},{0.1 + k / 100}\n")
    path.write_text(_LIQ_HEADER + "".join(rows))
    return path


@pytest.mark.parametrize(
    "names",
    [
        {"BTC": "BTC/USDT:USDT", "ETH": "ETH/USDT:USDT"},  # CCXT's unified symbol
        {"BTC": "BTCUSDT_UMCBL", "ETH": "ETHUSDT_UMCBL"},  # Bitget's v1 product id
    ],
)
def test_liquidation_rows_of_the_symbol_are_kept_however_the_venue_names_it(
    tmp_path: Path, names: dict[str, str]
) -> None:
    path = _liquidations(tmp_path / "liq.csv", names)
    btc = imp.read_liquidations(path, "BTCUSDT")
    assert len(btc) == 10 and all(e.price == 60_000.0 for e in btc)  # type: ignore[union-attr]


def test_liquidation_exchanges_named_in_words_are_read_as_one_venue_token(
    tmp_path: Path,
) -> None:
    """A Coinglass export names exchanges as its site does ('WOO X', 'Binance ' with a
    trailing space); the contract's venue is one token, and the whole file was refused as
    'a row breaks the event contract'. Read as the live stream relays them: woo_x, binance."""
    path = tmp_path / "coinglass-liquidations.csv"
    path.write_text(
        "time,symbol,exchange,side,price,qty\n"
        f"{T0},BTCUSDT,WOO X,SELL,60000,0.1\n"
        f"{T0 + 60_000},BTCUSDT,Binance ,BUY,60000,0.2\n"
        f"{T0 + 120_000},BTCUSDT, ,BUY,60000,0.3\n"
    )
    orders = imp.read_liquidations(path, "BTCUSDT")
    assert [o.venue for o in orders] == ["woo_x", "binance", "history"]


def test_liquidation_orders_of_another_market_are_left_out_and_said(tmp_path: Path) -> None:
    """Orders priced far from the symbol's candles (a BTC file given to a 100-priced coin,
    a contract quoted in other units) would count their notional many times over in the
    liquidations factor; the live scorer dead-letters them. The backtest leaves them out at
    import, keeps the orders of this market and says how many it left out."""
    candles = _csv(tmp_path / "coin-1m.csv", [list(r) for r in _bars(300)])
    rows = []
    for k in range(30):  # every third order is priced like BTC, the others like the coin
        price = 60_000.0 if k % 3 == 0 else 100.0 + k / 10
        rows.append(f"{T0 + (k + 5) * 60_000},BTCUSDT,SELL,{price},{1 + k}\n")
    liq = tmp_path / "liq.csv"
    liq.write_text(_LIQ_HEADER + "".join(rows))
    history = load_history("BTCUSDT", candles, liquidations=liq)
    orders = [e for e in history.events if isinstance(e, LiquidationOrderV1)]
    assert len(orders) == 20 and all(e.price < 110 for e in orders)
    assert any("10 of 30 orders left out" in n for n in history.notes)


def test_a_shared_liquidation_list_reaches_each_symbol_of_a_folder(tmp_path: Path) -> None:
    """OKX names its swaps BTC-USDT-SWAP: the single-symbol reader took such rows, the
    multi-symbol plan did not give the file to BTCUSDT."""
    folder = tmp_path / "in"
    folder.mkdir()
    _csv(folder / "BTCUSDT-1m.csv", [list(r) for r in _bars(300)])
    _csv(folder / "ETHUSDT-1m.csv", [list(r) for r in _bars(300)])
    _liquidations(folder / "okx-liquidations.csv", {"BTC": "BTC-USDT-SWAP", "ETH": "ETH-USDT-SWAP"})
    out = tmp_path / "out"
    assert backtest.main([str(folder), "--out", str(out), "--jobs", "1", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    files = {Path(f["path"]).name: f for f in summary["files"]}
    assert files["okx-liquidations.csv"]["status"] == "used"
    assert sorted(files["okx-liquidations.csv"]["symbols"]) == ["BTCUSDT", "ETHUSDT"]


# --- other delimiters ------------------------------------------------------------------------


def test_a_tab_separated_export_is_read(tmp_path: Path) -> None:
    bars = _bars(30)
    path = tmp_path / "c.tsv.txt"
    path.write_text(
        HEADER.replace(",", "\t") + "".join("\t".join(map(str, r)) + "\n" for r in bars)
    )
    s = imp.read_candles(path)
    assert s.close == [b[4] for b in bars]


@pytest.mark.parametrize("header", [True, False])
def test_a_semicolon_export_with_decimal_commas_is_read(tmp_path: Path, header: bool) -> None:
    """A spreadsheet saved in a decimal-comma locale: `;` between cells, `,` in numbers."""
    bars = _bars(30)

    def cell(x: float) -> str:
        return str(x).replace(".", ",")

    lines = "".join(f"{int(r[0])};" + ";".join(cell(x) for x in r[1:]) + "\n" for r in bars)
    path = tmp_path / "c.csv"
    path.write_text((HEADER.replace(",", ";") if header else "") + lines)
    s = imp.read_candles(path)
    assert s.close == [b[4] for b in bars] and s.volume == [b[5] for b in bars]


def test_exports_joined_with_cat_are_read_whole(tmp_path: Path) -> None:
    """Two exports joined (`cat a.csv b.csv`): the second's header, BOM and all, stopped the
    import with `unreadable time '\\ufefftime'`; a joined header-less one's BOM likewise."""
    bars = _bars(4)
    rows = ["".join(",".join(map(str, r)) + "\n" for r in part) for part in (bars[:2], bars[2:])]
    path = tmp_path / "joined.csv"
    path.write_bytes((HEADER + rows[0]).encode() + ("\ufeff" + HEADER + rows[1]).encode())
    assert imp.read_candles(path).close == [b[4] for b in bars]
    bare = tmp_path / "joined_bare.csv"
    bare.write_bytes(rows[0].encode() + ("\ufeff" + rows[1]).encode())
    assert imp.read_candles(bare).close == [b[4] for b in bars]


@pytest.mark.parametrize(
    ("stamp", "said"),
    [
        ("1.63711E+12", "an epoch rounded to 10,000 s by scientific notation"),  # Excel's
        ("44517.0416666667", "a spreadsheet's date serial (days: 2021-11-17 01:00"),
    ],
)
def test_a_spreadsheets_mangled_time_is_refused_saying_what_it_is(stamp: str, said: str) -> None:
    """A 13-digit epoch saved as Excel shows it (`1.63711E+12`) was read 2.8 h rounded (bars
    merged, or a 10,000 s bar length); a date serial as a 1970 second (a 0 s bar length)."""
    with pytest.raises(imp.HistoryFormatError, match=re.escape(said)):
        imp.parse_time_ms(stamp)
    # a program's shortest exact text of a float is read (Python's repr of ns)
    assert imp.parse_time_ms("1.6371108e+18") == 1637110800000


def test_a_csv_cut_in_its_last_row_loses_that_row_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A download cut mid-row: an open interest of `7` for `70887.608` was read (the factor
    saw the market empty), a close of `1.0` for a bar that closed at 1.068. Now such a
    last row (no line end, fewer or shorter values than the row before) is skipped, the
    warning naming its line; a file merely without a final line end keeps its last row."""
    oi = tmp_path / "oi.csv"
    oi.write_text(
        "timestamp,openInterest\n1637110800000,70887.608\n1637114400000,71165.804\n1637118000000,7"
    )
    with caplog.at_level(logging.WARNING):
        got = imp.read_open_interest(oi, "BTCUSDT")
    assert [e.open_interest for e in got] == [70887.608, 71165.804]
    said = " ".join(r.getMessage() for r in caplog.records)
    assert "line 4 has no line end, and its last value '7' is shorter" in said
    bars = _bars(3)
    text = HEADER + "".join(",".join(map(str, r)) + "\n" for r in bars)
    cut = tmp_path / "cut.csv"
    cut.write_text(text.rstrip("\n").rsplit(",", 1)[0])  # the volume and its comma gone
    assert imp.read_candles(cut).close == [b[4] for b in bars[:2]]
    whole = tmp_path / "whole.csv"
    whole.write_text(text.rstrip("\n"))  # no final line end, nothing cut
    assert imp.read_candles(whole).close == [b[4] for b in bars]


def test_a_csv_without_a_final_line_end_keeps_a_last_row_whose_volume_is_smaller(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """The last rows of Binance spot XRP/ETH 1m candles (shared data/market) saved without
    a final line end: the last volume, 785, is shorter than the row before's 3642, and the
    bar was skipped as 'a download cut mid-row?'. A fifth of the real candle files lost
    their last bar that way; a value as long as the column's others is kept."""
    rows = [
        "1570964400000,0.00152882,0.00152945,0.00152882,0.00152945,338",
        "1570964460000,0.00152949,0.0015302,0.00152949,0.0015302,13746",
        "1570964520000,0.00152969,0.00152969,0.00152969,0.00152969,181",
        "1570964580000,0.00152903,0.00152903,0.00152903,0.00152903,158",
        "1570964700000,0.00152774,0.00152774,0.00152774,0.00152774,251",
        "1570964760000,0.00152774,0.00152774,0.00152716,0.00152716,1017",
        "1570964880000,0.00152625,0.00152625,0.00152568,0.00152568,142",
        "1570965060000,0.00152506,0.00152506,0.00152458,0.00152458,734",
        "1570965180000,0.00152449,0.00152449,0.00152449,0.00152449,7",
        "1570965300000,0.00152609,0.00152609,0.00152362,0.00152362,7359",
        "1570965480000,0.0015256,0.00152871,0.0015256,0.00152753,3642",
        "1570965540000,0.00152814,0.00152817,0.00152787,0.00152787,785",
    ]
    path = tmp_path / "XRP_ETH-1m.csv"
    path.write_text(HEADER + "\n".join(rows))
    with caplog.at_level(logging.WARNING):
        series = imp.read_candles(path, "XRPETH")
    assert series.volume[-3:] == [7359.0, 3642.0, 785.0]
    assert not [r for r in caplog.records if "no line end" in r.getMessage()]


@pytest.mark.parametrize("header", [True, False])
def test_a_row_with_more_values_than_the_header_is_refused_naming_its_line(
    tmp_path: Path, header: bool
) -> None:
    """`1,0762` unquoted in a comma file: the row's values moved one place, its close read
    as `1` (or the bar refused for another reason, not naming the line). A trailing empty
    value (`...,10.0,`) is no value and is read as before."""
    bars = _bars(3)
    lines = [",".join(map(str, r)) + "\n" for r in bars]
    lines[1] = lines[1].replace(f",{bars[1][4]},", f",{str(bars[1][4]).replace('.', ',')},")
    path = tmp_path / "c.csv"
    path.write_text((HEADER if header else "") + "".join(lines))
    with pytest.raises(imp.HistoryFormatError, match=f"line {2 + header} has 7 values where"):
        imp.read_candles(path)
    trailing = tmp_path / "t.csv"
    trailing.write_text(HEADER + "".join(",".join(map(str, r)) + ",\n" for r in bars))
    assert imp.read_candles(trailing).close == [b[4] for b in bars]


def test_a_windows_1252_export_is_read(tmp_path: Path) -> None:
    """Excel's plain 'CSV' on Western Windows is Windows-1252 (`Währung`, `€`): it was 'not
    CSV or JSON (utf-8 codec can't decode byte 0xe4)'."""
    bars = _bars(3)
    path = tmp_path / "c.csv"
    text = HEADER.strip() + ",Währung\n" + "".join(",".join(map(str, r)) + ",€\n" for r in bars)
    path.write_bytes(text.encode("cp1252"))
    assert imp.read_candles(path).close == [b[4] for b in bars]


def _jsonl(bars: list[list[float]]) -> str:
    keys = ("t", "o", "h", "l", "c", "v")
    return "".join(json.dumps(dict(zip(keys, r, strict=True))) + "\n" for r in bars)


def test_json_lines_cut_mid_row_and_a_bad_line_are_named(tmp_path: Path) -> None:
    """A JSON-lines download cut in its last row was 'not CSV or JSON (... line 1 column
    11)', the line number that of the bad row itself: now that row is skipped with a
    warning; a bad row elsewhere is refused naming its line; a JSON array cut mid-way is
    said to be cut."""
    bars = _bars(4)
    cut = tmp_path / "cut.jsonl"
    cut.write_text(_jsonl(bars)[:-20])  # the last row cut, no line end
    assert imp.read_candles(cut).close == [b[4] for b in bars[:3]]
    bad = tmp_path / "bad.jsonl"
    lines = _jsonl(bars).splitlines(keepends=True)
    bad.write_text("".join([*lines[:2], lines[2][:-20] + "\n", lines[3]]))
    with pytest.raises(imp.HistoryFormatError, match=r"bad.jsonl: line 3 is not JSON"):
        imp.read_candles(bad)
    array = tmp_path / "cut.json"
    array.write_text(json.dumps(bars)[:-30])
    with pytest.raises(imp.HistoryFormatError, match=r"cut.json: ends mid-way \(a cut download"):
        imp.read_candles(array)


DECIMAL_COMMA = (
    "time;open;high;low;close;volume\n"
    "2021-11-17 01:00;1.080,1;1.097,5;1.076,5;1.079,2;3.153\n"
    "2021-11-17 02:00;1.079,0;1.087,5;1.073,5;1.076,2;2.697\n"
    "2021-11-17 03:00;1.076,0;1.085,5;1.058,5;1.068,0;4.014\n"
)


def test_a_decimal_comma_files_thousands_are_thousands(tmp_path: Path) -> None:
    """In a decimal-comma export `3.153` is three thousand: it was read as 3.153 beside the
    prices `1.080,1` read right as 1080.1 (each cell was read on its own)."""
    path = tmp_path / "c.csv"
    path.write_text(DECIMAL_COMMA)
    s = imp.read_candles(path)
    assert s.open == [1080.1, 1079.0, 1076.0] and s.volume == [3153.0, 2697.0, 4014.0]
    tab = tmp_path / "t.tsv"  # a tab-separated one: its `1,5` were "not a number"
    tab.write_text(DECIMAL_COMMA.replace(";", "\t"))
    assert imp.read_candles(tab).volume == [3153.0, 2697.0, 4014.0]
    point = tmp_path / "p.csv"  # `;` with decimal points: `3,153` is a thousand there
    point.write_text(
        "time;open;high;low;close;volume\n"
        "2021-11-17 01:00;1080.1;1097.5;1076.5;1079.2;3,153\n"
        "2021-11-17 02:00;1079.0;1087.5;1073.5;1076.2;2,697\n"
    )
    assert imp.read_candles(point).volume == [3153.0, 2697.0]


@pytest.mark.parametrize(
    ("text", "said"),
    [
        (  # one row of decimal points among decimal commas: 1.0790 was read as 1.079
            DECIMAL_COMMA.replace("1.079,0;1.087,5;1.073,5;1.076,2", "1.0790;1.0875;1.0735;1.0762"),
            "line 3: '1.0790' has a decimal point, but line 2: '1.080,1' a decimal comma",
        ),
        (  # nothing tells whether 65.000 is 65 or 65,000: it was read as 65
            "time;open;high;low;close\n2021-11-17 01:00;65.000;65.500;64.800;65.200\n"
            "2021-11-17 02:00;65.200;65.900;65.100;65.800\n",
            "line 2: '65.000' reads 65000 (a thousands separator) or 65.000",
        ),
    ],
)
def test_a_file_whose_decimal_mark_is_unclear_is_refused_naming_the_line(
    tmp_path: Path, text: str, said: str
) -> None:
    path = tmp_path / "c.csv"
    path.write_text(text)
    with pytest.raises(imp.HistoryFormatError) as err:
        imp.read_candles(path)
    assert said in str(err.value)


@pytest.mark.parametrize(
    "stamp",
    [
        "2021-11-15 18:00:00 UTC",  # BigQuery's CSV export of a TIMESTAMP
        "2021-11-15 18:00:00.000 UTC",  # Dune's query results
        "2021-11-15 18:00:00 +0000 UTC",  # Go's time.Time printed
        "2021/11/15 18:00:00",
        "Mon, 15 Nov 2021 18:00:00 GMT",  # RFC 1123 (HTTP dates)
    ],
)
def test_time_strings_that_name_their_zone_in_words(stamp: str) -> None:
    assert imp.ms_to_dt(imp.parse_time_ms(stamp)).isoformat() == "2021-11-15T18:00:00+00:00"


# --- funding ------------------------------------------------------------------------------------


def test_kraken_futures_funding_takes_the_relative_rate(tmp_path: Path) -> None:
    """Kraken Futures /historical-funding-rates: `fundingRate` is absolute (USD per contract,
    ~1e-10), `relativeFundingRate` the rate the factor and net P&L mean."""
    body = {
        "result": "success",
        "serverTime": "2022-06-28T09:29:04.243Z",
        "rates": [
            {
                "timestamp": "2022-06-28T00:00:00.000Z",
                "fundingRate": -8.15861558e-10,
                "relativeFundingRate": -0.000016898883333333,
            },
            {
                "timestamp": "2022-06-28T04:00:00.000Z",
                "fundingRate": -2.6115278e-11,
                "relativeFundingRate": -5.40935416667e-7,
            },
        ],
    }
    path = tmp_path / "kraken-PF_XBTUSD-funding.json"
    path.write_text(json.dumps(body))
    rates = [e.rate for e in imp.read_funding(path, "XBTUSD")]
    assert rates == [-0.000016898883333333, -5.40935416667e-7]


# --- zip archives as data.binance.vision serves them --------------------------------------------


def _binance_zip(path: Path, bars: list[list[float]]) -> Path:
    import zipfile

    rows = "".join(
        f"{int(t)},{o},{h},{lo},{c},{v},{int(t) + 59_999},{v * c},10,1.0,{c},0\n"
        for t, o, h, lo, c, v in bars
    )
    header = (
        "open_time,open,high,low,close,volume,close_time,quote_volume,count,"
        "taker_buy_volume,taker_buy_quote_volume,ignore\n"
    )
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr(path.name.removesuffix(".zip") + ".csv", header + rows)
    return path


def test_a_binance_vision_zip_is_read_as_downloaded(tmp_path: Path) -> None:
    """data.binance.vision serves every daily/monthly file as a zip holding one CSV."""
    bars = _bars(60)
    path = _binance_zip(tmp_path / "BTCUSDT-1m-2021-11-15.zip", bars)
    s = imp.read_candles(path)
    assert s.close == [b[4] for b in bars]


def test_zips_in_a_folder_are_found_and_matched_to_their_symbol(tmp_path: Path) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    _binance_zip(folder / "BTCUSDT-1m-2021-11-15.zip", _bars(300))
    out = tmp_path / "out"
    assert backtest.main([str(folder), "--out", str(out), "--jobs", "1", "--quiet"]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert [r["symbol"] for r in summary["symbols"]] == ["BTCUSDT"]


def test_a_huge_line_is_refused_without_reading_the_file_into_memory(tmp_path: Path) -> None:
    """A 48 MB line (a 2 GB one behaves alike): one error naming the file, and no copy of
    the file in memory; the whole text was held several times over (~8x its size)."""
    import tracemalloc

    path = tmp_path / "huge.csv"
    with path.open("w") as fh:
        fh.write(HEADER)
        fh.write("1" * 48_000_000 + ",1,2,3,4,5\n")
    tracemalloc.start()
    try:
        with pytest.raises(imp.HistoryFormatError, match=f"{path}: line 2 is longer than"):
            imp.read_candles(path)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 16_000_000


def test_a_file_that_cannot_be_opened_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Permission denied (a file of another user; root, running the tests, is never denied)."""
    path = _csv(tmp_path / "locked.csv", [list(r) for r in _bars()])
    real_open = Path.open

    def deny(self: Path, *args: object, **kwargs: object) -> object:
        if self == path:
            raise PermissionError(13, "Permission denied", str(self))
        return real_open(self, *args, **kwargs)  # type: ignore[call-overload]

    monkeypatch.setattr(Path, "open", deny)
    monkeypatch.setattr(Path, "read_bytes", lambda self: deny(self).read())  # type: ignore[attr-defined]
    assert _run(tmp_path, path) == 2
    _one_line_error(capsys, str(path), "Permission denied")


# --- the bar length --------------------------------------------------------------------------


def test_a_stray_row_does_not_make_hourly_bars_minute_bars(tmp_path: Path) -> None:
    """Two rows a minute apart in an hourly export made every bar a 1m bar, observed at its
    open + 1 minute while holding the whole hour's prices (look-ahead in every signal)."""
    rows: list[list[object]] = [list(r) for r in _bars(200, step=3_600_000)]
    stray = list(rows[100])
    stray[0] = int(rows[100][0]) + 60_000  # type: ignore[call-overload]
    rows.insert(101, stray)
    path = _csv(tmp_path / "BTCUSDT-1h.csv", rows)
    with pytest.raises(imp.HistoryFormatError, match=r"1h.*2021-11-19T22:01"):
        imp.read_candles(path)


def test_a_funding_rate_written_in_percent_is_a_fraction(tmp_path: Path) -> None:
    """Binance's website funding history download writes `0.0100%`."""
    path = tmp_path / "funding.csv"
    path.write_text(
        "Time,Contracts,Funding Interval,Funding Rate\n"
        "2021-11-15 16:00:00,BTCUSDT,8h,0.0100%\n"
        "2021-11-16 00:00:00,BTCUSDT,8h,-0.0035%\n"
    )
    rates = [e.rate for e in imp.read_funding(path, "BTCUSDT")]
    assert rates == pytest.approx([0.0001, -0.000035])


def _ticker_snapshots(path: Path, *, next_funding: bool) -> Path:
    """A venue's ticker stream recorded every 10 minutes (the Bybit `tickers` topic): the
    current, predicted funding rate on every row; settlements every 8 h."""
    head = "exchange,symbol,timestamp,open_interest,mark_price,funding_rate"
    lines = [head + (",next_funding_time" if next_funding else "") + "\n"]
    for k in range(6 * 24):  # one day
        t = T0 + k * 600_000
        settle = (t // 28_800_000 + 1) * 28_800_000
        rate = 0.0001 * (1 + settle // 28_800_000 % 3)  # drifts by settlement
        tail = f",{settle}" if next_funding else ""
        lines.append(f"bybit,BTCUSDT,{t},1000,60000,{rate}{tail}\n")
    path.write_text("".join(lines))
    return path


def test_ticker_snapshots_with_the_next_settlement_give_one_rate_per_settlement(
    tmp_path: Path,
) -> None:
    """Each row's rate is charged at its settlement once (it was charged at every row: 144
    'settlements' a day, net P&L's funding ~48x too large)."""
    path = _ticker_snapshots(tmp_path / "tickers.csv", next_funding=True)
    ev = imp.read_funding(path, "BTCUSDT")
    assert [e.observed_at.hour for e in ev] == [0, 8, 16, 0]
    settled = [round(e.observed_at.timestamp() * 1000) for e in ev]
    assert [e.rate for e in ev] == [0.0001 * (1 + s // 28_800_000 % 3) for s in settled]


def test_ticker_snapshots_without_settlement_times_are_refused(tmp_path: Path) -> None:
    path = _ticker_snapshots(tmp_path / "tickers.csv", next_funding=False)
    with pytest.raises(imp.HistoryFormatError, match=r"10 min.*settle"):
        imp.read_funding(path, "BTCUSDT")


def test_the_bar_still_open_in_a_fresh_dump_is_left_out(tmp_path: Path) -> None:
    """Bybit /v5/market/kline (newest first) and Binance klines answer with the current,
    unclosed bar too: a dump taken now holds it. It is no closed candle (it stopped the run)."""
    import time

    hour = 3_600_000
    now_bar = int(time.time() * 1000) // hour * hour  # opened at most an hour ago
    bars = _bars(48, step=hour)
    rows = [
        [str(now_bar - (47 - i) * hour), str(o), str(h), str(lo), str(c), str(v), str(v * c)]
        for i, (_, o, h, lo, c, v) in enumerate(bars)
    ]
    body = {"retCode": 0, "result": {"category": "linear", "symbol": "BTCUSDT", "list": rows[::-1]}}
    path = tmp_path / "bybit-BTCUSDT-60.json"
    path.write_text(json.dumps(body))
    s = imp.read_candles(path)
    assert len(s) == 47 and s.open_ms[-1] == now_bar - hour


def test_cryptodatadownload_takes_the_epoch_column_not_its_date_text(tmp_path: Path) -> None:
    """CryptoDataDownload's files: a URL line, then `Unix Timestamp,Date,Symbol,...`, newest
    first; hourly files write Date as `2021-11-15 06-PM`, which no date parser reads."""
    bars = _bars(48, step=3_600_000)
    lines = ["https://www.CryptoDataDownload.com\n"]
    lines.append("Unix Timestamp,Date,Symbol,Open,High,Low,Close,Volume BTC,Volume USDT\n")
    for t, o, h, lo, c, v in reversed(bars):
        when = datetime.fromtimestamp(t / 1000, UTC).strftime("%Y-%m-%d %I-%p")
        lines.append(f"{int(t) // 1000},{when},BTC/USDT,{o},{h},{lo},{c},{v},{v * c}\n")
    path = tmp_path / "Binance_BTCUSDT_1h.csv"
    path.write_text("".join(lines))
    s = imp.read_candles(path)
    assert s.open_ms == [b[0] for b in bars] and s.timeframe == "1h"


def test_rows_without_a_header_may_start_with_a_date_text(tmp_path: Path) -> None:
    """`2021-11-15 18:00:00,100.1,...`: the first row was taken for a header (its first cell
    is no number) and the file refused for columns named by its values."""
    bars = _bars(30)
    path = tmp_path / "c.csv"
    path.write_text(
        "".join(
            f"{datetime.fromtimestamp(t / 1000, UTC):%Y-%m-%d %H:%M:%S},{o},{h},{lo},{c},{v}\n"
            for t, o, h, lo, c, v in bars
        )
    )
    s = imp.read_candles(path)
    assert s.open_ms == [b[0] for b in bars]


def test_a_recording_of_binance_force_order_stream_is_read(
    tmp_path: Path, shared_data: Path
) -> None:
    """JSON lines of `!forceOrder@arr` messages as Binance sends them: the order is nested
    under `o`, its side `S`, its symbol `s` (refused as 'liquidations without a side')."""
    doc = json.loads((shared_data / "api/binance_usdm/ws_forceOrder.doc_example.json").read_text())
    lines = []
    for k, (sym, side) in enumerate([("BTCUSDT", "SELL"), ("ETHUSDT", "SELL"), ("BTCUSDT", "BUY")]):
        msg = json.loads(json.dumps(doc))
        msg["E"] += k * 1000
        msg["o"].update(s=sym, S=side, T=msg["o"]["T"] + k * 1000)
        lines.append(json.dumps(msg))
    path = tmp_path / "forceOrder.jsonl"
    path.write_text("\n".join(lines) + "\n")
    orders = imp.read_liquidations(path, "BTCUSDT")
    assert [o.liquidated_side for o in orders] == ["LONG", "SHORT"]  # type: ignore[union-attr]
    assert orders[0].price == 9910.12345678 and orders[0].quantity == 0.014  # type: ignore[union-attr]


# --- pandas' JSON shapes -------------------------------------------------------------------------

_COLUMNS = ["open", "high", "low", "close", "volume", "date"]


def test_pandas_split_json_is_read_by_its_column_names(tmp_path: Path) -> None:
    """`df.to_json(orient="split")`: the names in `columns`, the rows in `data` (read by
    position as CCXT rows before: the open price taken for the time)."""
    bars = _bars(30)
    body = {
        "columns": _COLUMNS,
        "index": list(range(30)),
        "data": [[o, h, lo, c, v, t] for t, o, h, lo, c, v in bars],
    }
    path = tmp_path / "split.json"
    path.write_text(json.dumps(body))
    s = imp.read_candles(path)
    assert s.open_ms == [b[0] for b in bars] and s.close == [b[4] for b in bars]


def test_pandas_default_json_columns_of_index_to_value(tmp_path: Path) -> None:
    """`df.to_json()` (orient="columns"): {column: {index: value}}, the time in the index."""
    bars = _bars(30)
    body = {
        name: {str(int(b[0])): b[k] for b in bars}
        for k, name in enumerate(["time", "open", "high", "low", "close", "volume"])
        if name != "time"
    }
    path = tmp_path / "columns.json"
    path.write_text(json.dumps(body))
    s = imp.read_candles(path)
    assert s.open_ms == [b[0] for b in bars] and s.close == [b[4] for b in bars]


def test_pandas_csv_with_an_unnamed_time_index(tmp_path: Path) -> None:
    """`df.to_csv()` of a frame indexed by an unnamed DatetimeIndex: the first header cell is
    empty and holds the times."""
    bars = _bars(30)
    path = tmp_path / "c.csv"
    path.write_text(
        ",open,high,low,close,volume\n"
        + "".join(
            f"{datetime.fromtimestamp(t / 1000, UTC)},{o},{h},{lo},{c},{v}\n"
            for t, o, h, lo, c, v in bars
        )
    )
    s = imp.read_candles(path)
    assert s.open_ms == [b[0] for b in bars]


def test_bitget_account_long_short(tmp_path: Path) -> None:
    """Bitget /api/v2/mix/market/account-long-short: longAccountRatio is the longs' share of
    accounts, longShortAccountRatio their ratio (refused: no accepted name)."""
    body = {
        "code": "00000",
        "msg": "success",
        "requestTime": 1656589586807,
        "data": [
            {"longAccountRatio": "0.6", "shortAccountRatio": "0.4",
             "longShortAccountRatio": "1.5", "ts": "1714020600000"},
            {"longAccountRatio": "0.5", "shortAccountRatio": "0.5",
             "longShortAccountRatio": "1", "ts": "1714020900000"},
        ],
    }  # fmt: skip
    path = tmp_path / "bitget-BTCUSDT-account-long-short.json"
    path.write_text(json.dumps(body))
    ev = imp.read_long_short(path, "BTCUSDT")
    assert [(e.kind, e.long_share, e.ratio) for e in ev] == [
        ("global_account", 0.6, 1.5),
        ("global_account", 0.5, 1.0),
    ]


def test_excel_unicode_text_is_read(tmp_path: Path) -> None:
    """Excel's 'Unicode Text' export: UTF-16 with a BOM, tab-separated, CRLF."""
    bars = _bars(30)
    text = HEADER.replace(",", "\t") + "".join("\t".join(map(str, r)) + "\n" for r in bars)
    path = tmp_path / "candles.txt"
    path.write_bytes(text.replace("\n", "\r\n").encode("utf-16"))
    s = imp.read_candles(path)
    assert s.close == [b[4] for b in bars]


def test_a_header_without_rows_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """It used to end in `zip() argument 2 is longer than argument 1`."""
    assert _run(tmp_path, _csv(tmp_path / "BTCUSDT-1m.csv", [])) == 2
    _one_line_error(capsys, "BTCUSDT-1m.csv", "no candles")


def test_rows_that_give_no_bar_are_counted_in_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A line cut short mid-file, or one with empty prices, was dropped without a word."""
    rows: list[list[object]] = [*_bars()]
    rows[40] = rows[40][:2]  # a damaged line: time and open only
    rows[70] = [rows[70][0], "", "", "", "", 1.0]  # no prices
    with caplog.at_level("WARNING"):
        series = imp.read_candles(_csv(tmp_path / "BTCUSDT-1m.csv", rows))
    assert len(series) == 118
    said = [r.getMessage() for r in caplog.records if "give no bar" in r.getMessage()]
    assert len(said) == 1, caplog.text
    assert "2 rows give no bar" in said[0] and "1 with fewer columns" in said[0]
    assert "1 without prices" in said[0] and str(T0 + 40 * 60_000) in said[0]


@pytest.mark.parametrize("symbol", ["BTC<script>", "BTC USDT", "X" * 65])
def test_a_symbol_the_contract_refuses_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], symbol: str
) -> None:
    """It was refused at the first bar, mid-run, in a 40-line pydantic traceback."""
    candles = _csv(tmp_path / "c.csv", _bars())
    argv = ["--symbol", symbol, "--candles", str(candles), "--out", str(tmp_path / "out")]
    assert backtest.main([*argv, "--no-progress", "--quiet"]) == 2
    _one_line_error(capsys, "is not a symbol")
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("several", [False, True], ids=["one symbol", "a folder"])
def test_an_out_that_cannot_be_a_folder_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], several: bool
) -> None:
    """A file (/dev/null, a report of the same name) or a missing parent ended in a traceback."""
    (tmp_path / "data").mkdir()
    candles = _csv(tmp_path / "data" / "BTCUSDT-1m.csv", _bars())
    taken = tmp_path / "report"
    taken.write_text("a file\n")
    for out, why in ((taken, "not a folder"), (taken / "x", "Not a directory")):
        if several:
            argv = [str(candles.parent), "--out", str(out)]
        else:
            argv = ["--symbol", "BTCUSDT", "--candles", str(candles), "--out", str(out)]
        assert backtest.main([*argv, "--no-progress", "--quiet"]) == 2
        _one_line_error(capsys, f"cannot write to --out {out}: {why}")
    assert taken.read_text() == "a file\n"


def test_calibrate_says_the_same_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from perpsignal_cli import calibrate

    candles = _csv(tmp_path / "c.csv", _bars())
    taken = tmp_path / "taken"
    taken.write_text("a file\n")
    for symbol, out, said in (
        ("BTC<x>", tmp_path / "out", "is not a symbol"),
        ("BTCUSDT", taken, "cannot write to --out"),
    ):
        argv = ["--symbol", symbol, "--candles", str(candles), "--out", str(out)]
        assert calibrate.main(argv) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and "perpsignal calibrate: " in err and said in err, err


@pytest.mark.parametrize("horizons", ["1h", "1h,1h", "24h,1h"])
def test_the_equity_curves_take_a_measured_horizon(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], horizons: str
) -> None:
    """`--horizons 1h` (without 4h, the equity default) scored the whole history, then died on
    a KeyError while writing the report; a horizon given twice did the same."""
    candles = _csv(tmp_path / "c.csv", _bars())
    out = tmp_path / "out"
    argv = ["--symbol", "BTCUSDT", "--candles", str(candles), "--out", str(out)]
    assert backtest.main([*argv, "--horizons", horizons, "--no-progress", "--quiet"]) == 0
    report = json.loads((out / "report.json").read_text())
    wanted = horizons.split(",")
    assert report["equity"]["horizon"] == ("24h" if "24h" in wanted else "1h")


@pytest.mark.parametrize(
    ("extra", "said"),
    [
        (["--horizons", "1h", "--equity-horizon", "24h"], "--equity-horizon 24h is not among"),
        (["--horizons", ","], "--horizons names none of"),
        (["--seed", "-1"], "a seed is an integer >= 0, got -1"),
    ],
    ids=["equity horizon not measured", "no horizon", "negative seed"],
)
def test_horizons_and_seeds_that_cannot_run_are_one_line_before_the_run(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], extra: list[str], said: str
) -> None:
    """Each ran the whole backtest and then failed in a traceback (KeyError, numpy's
    'expected non-negative integer')."""
    candles = _csv(tmp_path / "c.csv", _bars())
    argv = ["--symbol", "BTCUSDT", "--candles", str(candles), "--out", str(tmp_path / "out")]
    try:
        rc = backtest.main([*argv, *extra, "--no-progress", "--quiet"])
    except SystemExit as exc:  # argparse's own one-line refusal
        rc = int(exc.code or 0)
    assert rc == 2
    _one_line_error(capsys, said)
    assert not (tmp_path / "out" / "report.json").exists()


def test_calibrate_refuses_a_negative_seed_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from perpsignal_cli import calibrate

    candles = _csv(tmp_path / "c.csv", _bars())
    argv = ["--symbol", "BTCUSDT", "--candles", str(candles), "--out", str(tmp_path / "o")]
    with pytest.raises(SystemExit) as exc:
        calibrate.main([*argv, "--seed", "-1"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err and "a seed is an integer >= 0, got -1" in err, err


def _with_market(rows: list[list[float]], market: str, scale: float = 1.0) -> list[list[object]]:
    return [[market, r[0], *(x * scale for x in r[1:5]), r[5]] for r in rows]


def test_a_file_of_several_markets_is_read_for_the_asked_one_only(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """An API dump of two markets (rows interleaved by time) was read as one series: each time
    kept the later row, so XRP's backtest ran on ETH's prices after a vague 'rows repeat a
    time' warning."""
    bars = _bars()
    rows: list[list[object]] = []
    for xrp, eth in zip(
        _with_market(bars, "XRP-USDT-SWAP"), _with_market(bars, "ETH-USDT-SWAP", 30.0), strict=True
    ):
        rows += [xrp, eth]
    path = tmp_path / "dump.csv"
    path.write_text(
        "instId,open_time,open,high,low,close,volume\n"
        + "".join(",".join(map(str, r)) + "\n" for r in rows)
    )
    with caplog.at_level("WARNING"):
        series = imp.read_candles(path, "XRPUSDT")
    assert series.close == [r[4] for r in bars]
    assert "only the rows of XRPUSDT are read; 120 rows of 1 other markets" in caplog.text
    # no row of the asked market, or none asked: refused, naming the markets seen
    with pytest.raises(imp.HistoryFormatError, match=r"2 markets .*no row of BTCUSDT"):
        imp.read_candles(path, "BTCUSDT")
    with pytest.raises(imp.HistoryFormatError, match="no symbol given"):
        imp.read_candles(path)
    assert _run(tmp_path, path) == 2  # the CLI asks for BTCUSDT: one line, exit 2
    _one_line_error(capsys, "no row of BTCUSDT", "XRP-USDT-SWAP")

    # the same for the positioning inputs: a funding dump of both markets
    funding = tmp_path / "funding.csv"
    funding.write_text(
        "symbol,fundingTime,fundingRate\n"
        + "".join(f"{m},{T0 + i * 28_800_000},{r}\n" for i in range(6) for m, r in
                  (("XRPUSDT", 0.0001), ("ETHUSDT", 0.0009)))
    )  # fmt: skip
    assert {e.rate for e in imp.read_funding(funding, "XRPUSDT")} == {0.0001}


def test_a_file_of_one_market_is_read_whatever_it_calls_it(tmp_path: Path) -> None:
    """dYdX calls it XRP-USD: a single-market file is not second-guessed by its name."""
    path = tmp_path / "dydx.csv"
    path.write_text(
        "ticker,open_time,open,high,low,close,volume\n"
        + "".join(",".join(map(str, r)) + "\n" for r in _with_market(_bars(), "XRP-USD"))
    )
    assert len(imp.read_candles(path, "XRPUSDT")) == 120


def test_a_decompression_bomb_is_refused_without_unpacking_it_all(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """gzip.decompress / zip.read unpacked a packed JSON file whole: kilobytes that unpack
    to terabytes took every byte of memory. Now past the cap it is refused by name."""
    import gzip
    import io
    import zipfile

    monkeypatch.setattr(archives, "MAX_UNPACKED_BYTES", 1 << 20)
    body = b"[" + b" " * (4 << 20) + b"]"  # 4 MiB of JSON, a few KiB packed
    bomb = tmp_path / "candles.json.gz"
    bomb.write_bytes(gzip.compress(body))
    too_big = r"more than 1 MiB to read whole"
    with pytest.raises(imp.HistoryFormatError, match=r"candles\.json\.gz: " + too_big):
        imp.read_candles(bomb)
    packed = io.BytesIO()
    with zipfile.ZipFile(packed, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("candles.json", body)
    zipped = tmp_path / "candles.zip"
    zipped.write_bytes(packed.getvalue())
    with pytest.raises(imp.HistoryFormatError, match=r"candles\.zip: " + too_big):
        imp.read_candles(zipped)


def test_a_gzipped_csv_is_read_as_it_goes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A gzipped CSV larger than the cap on packed files reads (it is never held whole)."""
    import gzip

    monkeypatch.setattr(archives, "MAX_UNPACKED_BYTES", 1 << 10)
    text = HEADER + "".join(",".join(map(str, r)) + "\n" for r in _bars(500))
    assert len(text) > 1 << 14
    path = tmp_path / "BTCUSDT-1m.csv.gz"
    path.write_bytes(gzip.compress(text.encode()))
    assert len(imp.read_candles(path)) == 500


def test_a_plain_json_file_past_the_cap_is_refused_unparsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """JSON is parsed whole (~10x its size in Python objects): a multi-gigabyte dump took
    the machine's memory before anything was said."""
    monkeypatch.setattr(archives, "MAX_UNPACKED_BYTES", 1 << 20)
    rows = [[T0 + i * 60_000, 1.0, 1.0, 1.0, 1.0, 1.0] for i in range(40_000)]
    path = tmp_path / "BTCUSDT-1m.json"
    path.write_text(json.dumps(rows))
    assert path.stat().st_size > 1 << 20
    with pytest.raises(imp.HistoryFormatError, match="more than 1 MiB to read whole"):
        imp.read_candles(path)


def test_binary_junk_is_called_binary_not_an_empty_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "candles.csv"
    path.write_bytes(b"\x00\x01\x02binary" * 100)
    assert _run(tmp_path, path) == 2
    _one_line_error(capsys, "candles.csv: binary data (NUL bytes)")


@pytest.mark.parametrize("jobs", ["0", "-2"])
def test_a_jobs_count_below_one_is_refused_before_the_history_is_read(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    jobs: str,
) -> None:
    """It was said only once every input had been imported (minutes, for a year of 1m)."""
    candles = _csv(tmp_path / "BTCUSDT-1m.csv", [list(r) for r in _bars()])
    with caplog.at_level("INFO"):
        assert _run(tmp_path, candles, "--jobs", jobs) == 2
    _one_line_error(capsys, "--jobs must be >= 1")
    assert "read as candles" not in caplog.text
