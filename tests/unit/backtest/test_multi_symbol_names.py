"""Symbols read from the names venues and freqtrade give their files (multi-symbol runs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from perpsignal_cli.backtesting import multi


@pytest.mark.parametrize(
    ("name", "symbol"),
    [
        # freqtrade pairs and Binance symbols of coins whose name has digits (1000PEPE,
        # 1INCH): they were left out, or read as the settle currency (USDTUSDT)
        ("1000PEPE_USDT_USDT-5m-futures.feather", "1000PEPEUSDT"),
        ("1000SHIB_USDT_USDT-1h-futures.feather", "1000SHIBUSDT"),
        ("1000PEPEUSDT-1m-2024-01.csv", "1000PEPEUSDT"),
        ("1INCHUSDT-1m-2024-01.csv", "1INCHUSDT"),
        ("1INCH_USDT_USDT-5m-futures.json", "1INCHUSDT"),
        # a venue the list of names does not know, before a base/quote pair
        ("gateio_BTC_USDT_1m.csv", "BTCUSDT"),
        ("mexc-ETH_USDT-Min1.csv", "ETHUSDT"),
        ("kucoin-SOL-USDT-1hour.csv", "SOLUSDT"),
    ],
)
def test_symbols_are_read_from_venue_and_freqtrade_names(name: str, symbol: str) -> None:
    assert multi.symbol_from_name(Path(name)) == symbol


def test_a_list_file_saved_by_windows_notepad_with_spaces_in_paths(tmp_path: Path) -> None:
    """A BOM, CRLF line ends and folders named with spaces ("My Data") are ordinary."""
    folder = tmp_path / "My Data"
    folder.mkdir()
    (folder / "candles 1m.csv").write_text("x")
    listing = tmp_path / "inputs.txt"
    listing.write_bytes(
        b"\xef\xbb\xbf# inputs\r\n"
        b"My Data/candles 1m.csv symbol=BTCUSDT kind=candles\r\n"
        b'"My Data/candles 1m.csv"   symbol=ETHUSDT\r\n'
    )
    got = multi.read_list(listing)
    assert got == [
        (folder / "candles 1m.csv", "BTCUSDT", "candles"),
        (folder / "candles 1m.csv", "ETHUSDT", None),
    ]


def _candles(path: Path) -> Path:
    t0 = 1_636_999_200_000
    rows = "".join(
        f"{t0 + k * 60_000},{100 + k % 7},{101 + k % 7},{99 + k % 7},{100.5 + k % 7},10\n"
        for k in range(300)
    )
    path.write_text("open_time,open,high,low,close,volume\n" + rows)
    return path


def _taker_flow(path: Path) -> Path:
    """Binance /futures/data/takerlongshortRatio rows (5m)."""
    t0 = 1_636_999_200_000
    rows = "".join(f"{1.1 + k % 3 / 10},{100 + k},{90 + k},{t0 + k * 300_000}\n" for k in range(60))
    path.write_text("buySellRatio,buyVol,sellVol,timestamp\n" + rows)
    return path


def _inputs(out: Path) -> dict[str, dict[str, str]]:
    import json

    summary = json.loads((out / "summary.json").read_text())
    return {row["symbol"]: row["inputs"] for row in summary["symbols"]}


def test_a_taker_flow_file_goes_to_its_own_symbol_only(tmp_path: Path) -> None:
    """`--taker-flow` in a run of several symbols was passed to every symbol's command:
    BTCUSDT's taker flow scored ETHUSDT's momentum. In a folder it was no input at all."""
    from perpsignal_cli import backtest

    folder = tmp_path / "in"
    folder.mkdir()
    _candles(folder / "BTCUSDT-1m.csv")
    _candles(folder / "ETHUSDT-1m.csv")
    flag = _taker_flow(tmp_path / "BTCUSDT-takerlongshortRatio-5m.csv")
    out = tmp_path / "out"
    argv = [str(folder), "--taker-flow", str(flag), "--out", str(out), "--jobs", "1", "--quiet"]
    assert backtest.main(argv) == 0
    got = _inputs(out)
    assert "taker_flow" in got["BTCUSDT"] and "taker_flow" not in got["ETHUSDT"]

    _taker_flow(folder / "ETHUSDT-takerlongshortRatio-5m.csv")
    out2 = tmp_path / "out2"
    assert backtest.main([str(folder), "--out", str(out2), "--jobs", "1", "--quiet"]) == 0
    got = _inputs(out2)
    assert "taker_flow" in got["ETHUSDT"] and "taker_flow" not in got["BTCUSDT"]


def test_a_list_from_a_pipe_reads_paths_from_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`--list <(find data -name '*.csv')` is a pipe (/dev/fd/63): it was refused as 'no such
    file'; its relative paths are the working folder's, as `find` printed them."""
    import os

    (tmp_path / "data").mkdir()
    monkeypatch.chdir(tmp_path)
    read, write = os.pipe()
    os.write(write, b"data/BTCUSDT-1m.csv\ndata/ETHUSDT-1m.csv symbol=ETHUSDT\n")
    os.close(write)
    try:
        got = multi.read_list(Path(f"/dev/fd/{read}"))
    finally:
        os.close(read)
    assert got == [
        (Path("data/BTCUSDT-1m.csv").absolute(), None, None),
        (Path("data/ETHUSDT-1m.csv").absolute(), "ETHUSDT", None),
    ]
    with pytest.raises(multi.MultiInputError, match="a folder; give it as an input"):
        multi.read_list(tmp_path / "data")
