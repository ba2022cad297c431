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
