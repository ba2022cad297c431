"""Importers read history as each venue's API and the common exporters deliver it.

Where a real or documented body is recorded in ../shared/data/api it is read as is (Binance,
OKX, Coinglass v4); Bybit v5 and CCXT/freqtrade files are written here in the shapes their
documentation gives (`/v5/market/kline|funding/history|open-interest|account-ratio`,
`fetch_ohlcv` rows, freqtrade's JSON). Before the table of layouts, only Binance's CSV
column names were accepted and JSON not at all.
"""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.feather as feather
import pyarrow.parquet as parquet
import pytest

from perpsignal_cli import backtest
from perpsignal_cli.backtesting import importers as imp
from perpsignal_cli.backtesting.importing import archives
from perpsignal_cli.backtesting.pipeline import load_history


@pytest.fixture(scope="module")
def api(shared_data: Path) -> Path:
    return shared_data / "api"


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


def _write(tmp_path: Path, name: str, body: Any) -> Path:
    path = tmp_path / name
    path.write_text(body if isinstance(body, str) else json.dumps(body))
    return path


# --- Binance REST bodies, as recorded --------------------------------------------------


def test_binance_api_funding_oi_and_long_short_json(api: Path) -> None:
    raw = json.loads((api / "binance_usdm/fapi_v1_fundingRate.doc_current.json").read_text())
    f = imp.read_funding(api / "binance_usdm/fapi_v1_fundingRate.doc_current.json", "BTCUSDT")
    assert [e.rate for e in f] == [float(r["fundingRate"]) for r in raw]
    assert f[0].mark_price == float(raw[0]["markPrice"])
    oi = imp.read_open_interest(
        api / "binance_usdm/futures_data_openInterestHist.doc_current.json", "BTCUSDT"
    )
    assert oi[0].open_interest == 20403.637 and oi[0].open_interest_usd == pytest.approx(
        150570784.07809979
    )
    assert oi[0].observed_at == imp.ms_to_dt(1583127900000)
    ls = imp.read_long_short(
        api / "binance_usdm/futures_data_globalLongShortAccountRatio.doc_current.json", "BTCUSDT"
    )
    assert {e.kind for e in ls} == {"global_account"}


def test_binance_klines_json_rows(api: Path) -> None:
    s = imp.read_candles(api / "binance_usdm/fapi_v1_klines.recorded.json")
    raw = json.loads((api / "binance_usdm/fapi_v1_klines.recorded.json").read_text())
    assert len(s) == len(raw) and s.close[0] == float(raw[0][4])
    assert s.quote_volume[0] == float(raw[0][7])


# --- OKX v5, as recorded ---------------------------------------------------------------


def test_okx_funding_rate_history_takes_the_settled_rate(api: Path) -> None:
    path = api / "okx/api_v5_public_funding-rate-history.recorded.json"
    f = imp.read_funding(path, "BTCUSDT", "okx")
    raw = json.loads(path.read_text())["data"]
    # oldest first, and realizedRate (settled), not fundingRate (the forecast)
    assert [e.rate for e in f] == [float(r["realizedRate"]) for r in reversed(raw)]
    assert f[-1].observed_at == utc(2024, 1, 1)


def test_okx_candles_newest_first_with_confirm(api: Path) -> None:
    path = api / "okx/api_v5_market_candles.recorded.json"
    raw = json.loads(path.read_text())["data"]
    s = imp.read_candles(path)
    assert s.timeframe == "1m" and len(s) == sum(1 for r in raw if r[8] == "1")
    assert s.open_ms == sorted(int(r[0]) for r in raw if r[8] == "1")
    newest = max(raw, key=lambda r: int(r[0]))
    assert s.close[-1] == float(newest[4]) and s.volume[-1] == float(newest[6])  # volCcy


def test_okx_rubik_open_interest_and_long_short_arrays(tmp_path: Path) -> None:
    # /api/v5/rubik/stat/contracts/open-interest-history: [ts, oi, oiCcy, oiUsd]
    oi = _write(
        tmp_path,
        "okx_oi.json",
        {"code": "0", "msg": "", "data": [
            ["1701417600000", "2216113", "22161.13", "837570983.9"],
            ["1701414000000", "2215000", "22150.00", "830000000.0"],
        ]},
    )  # fmt: skip
    got = imp.read_open_interest(oi, "BTCUSDT")
    assert [(e.open_interest, e.open_interest_usd) for e in got] == [
        (22150.0, 830000000.0),
        (22161.13, 837570983.9),
    ]
    # /api/v5/rubik/stat/contracts/long-short-account-ratio: [ts, ratio]
    ls = _write(tmp_path, "okx_ls.json", {"code": "0", "data": [["1701417600000", "3"]]})
    e = imp.read_long_short(ls, "BTCUSDT")[0]
    assert e.kind == "global_account" and e.long_share == pytest.approx(0.75)


# --- Coinglass v4, as documented -------------------------------------------------------


def test_coinglass_long_short_percent_columns(api: Path) -> None:
    path = api / "coinglass/long-short-ratio__global-longshort-account-ratio.json"
    e = imp.read_long_short(path, "BTCUSDT", "coinglass")[0]
    assert e.kind == "global_account"
    assert e.long_share == pytest.approx(0.7388) and e.ratio == pytest.approx(2.83)
    top = imp.read_long_short(
        api / "coinglass/long-short-ratio__top-longshort-position-ratio.json", "BTCUSDT"
    )
    assert {x.kind for x in top} == {"top_position"}
    assert top[0].long_share == pytest.approx(0.6499)


def test_coinglass_open_interest_and_funding_ohlc(api: Path, tmp_path: Path) -> None:
    # Coinglass's documented example carries illustrative times (year 2053, i.e. the open value
    # times 1,000): such a file is refused by the event contract with the file named ...
    documented = api / "coinglass/open-interest__oi-ohlc-histroy.json"
    refused = r"open-interest__oi-ohlc-histroy\.json.*future"
    with pytest.raises(imp.HistoryFormatError, match=refused):
        imp.read_open_interest(documented, "BTCUSDT")
    # ... and the same shape with real hourly times is read (values as documented).
    body = json.loads(documented.read_text())
    for i, row in enumerate(body["data"]):
        row["time"] = 1_700_000_000_000 + i * 3_600_000
    oi = imp.read_open_interest(_write(tmp_path, "oi.json", body), "BTCUSDT")
    assert oi[-1].open_interest is None and oi[-1].open_interest_usd == 2340177420.0
    f = imp.read_funding(api / "coinglass/funding-rate__fr-ohlc-histroy.json", "BTCUSDT")
    assert f[0].rate == pytest.approx(0.009229 / 100)  # Coinglass publishes percent


# --- Bybit v5, documented shapes --------------------------------------------------------


def test_bybit_v5_market_endpoints(tmp_path: Path) -> None:
    def env(rows: list[Any]) -> dict[str, Any]:
        return {"retCode": 0, "retMsg": "OK", "result": {"category": "linear", "list": rows}}

    kline = _write(tmp_path, "kline.json", env([
        ["1670608800000", "17071", "17073", "17027", "17055.5", "268611", "15.74"],
        ["1670605200000", "17000", "17100", "16990", "17071", "100000", "5.9"],
    ]))  # fmt: skip
    s = imp.read_candles(kline)
    assert s.timeframe == "1h" and s.close == [17071.0, 17055.5]
    assert s.quote_volume == [5.9, 15.74]  # turnover
    funding = _write(tmp_path, "funding.json", env([
        {"symbol": "ETHPERP", "fundingRate": "0.0001", "fundingRateTimestamp": "1672041600000"},
    ]))  # fmt: skip
    assert imp.read_funding(funding, "ETHUSDT")[0].observed_at == utc(2022, 12, 26, 8)
    oi = _write(tmp_path, "oi.json", env([
        {"openInterest": "461134384.00000000", "timestamp": "1669571400000"},
    ]))  # fmt: skip
    assert imp.read_open_interest(oi, "BTCUSDT")[0].open_interest == 461134384.0
    ratio = _write(tmp_path, "ratio.json", env([
        {"symbol": "BTCUSDT", "buyRatio": "0.5707", "sellRatio": "0.4293", "timestamp": "1695772800000"},  # noqa: E501
    ]))  # fmt: skip
    e = imp.read_long_short(ratio, "BTCUSDT")[0]
    assert e.kind == "global_account" and e.long_share == pytest.approx(0.5707)


# --- CCXT and freqtrade ----------------------------------------------------------------


def test_ccxt_ohlcv_and_freqtrade_json_gz(tmp_path: Path, market: Path) -> None:
    rows = [
        [int(r.split(",")[0]), *map(float, r.split(",")[1:])]
        for r in (market / "XRP_USDT_USDT-5m-futures.csv").read_text().splitlines()[1:51]
    ]
    path = tmp_path / "XRP_USDT_USDT-5m-futures.json.gz"
    path.write_bytes(gzip.compress(json.dumps(rows).encode()))
    s = imp.read_candles(path)
    reference = imp.read_candles(market / "XRP_USDT_USDT-5m-futures.csv")
    assert s.timeframe == "5m" and s.close == reference.close[:50]
    # freqtrade's funding JSON: OHLCV-shaped rows with the rate in `open`
    fr = _write(
        tmp_path,
        "XRP_USDT_USDT-8h-funding_rate.json",
        [[1637193600000, 0.0001, 0.0001, 0.0001, 0.0001, 0.0]],
    )
    assert imp.read_funding(fr, "XRPUSDT")[0].rate == 0.0001


def _venue_rows(market: Path, n: int = 200) -> list[list[Any]]:
    """The recorded XRP 5m bars as [open time ms, open, high, low, close, volume]."""
    lines = (market / "XRP_USDT_USDT-5m-futures.csv").read_text().splitlines()[1 : n + 1]
    return [[int(r.split(",")[0]), *map(float, r.split(",")[1:])] for r in lines]


@pytest.mark.parametrize(
    ("venue", "layout"),
    [
        ("kraken", "Kraken OHLC"),
        ("bitfinex", "Bitfinex candles"),
        ("kucoin", "KuCoin candles"),
    ],
)
def test_header_less_rows_in_each_venues_own_column_order(
    tmp_path: Path, market: Path, venue: str, layout: str, caplog: pytest.LogCaptureFixture
) -> None:
    """Kraken's eight values were refused; Bitfinex's (open, close, high, low) were read as
    CCXT's order and refused as impossible bars, KuCoin's as Bybit's; each now reads as the
    same bars as the recorded CSV, whatever its envelope."""
    rows = _venue_rows(market)
    if venue == "kraken":  # seconds, newest last, VWAP and a trade count around the volume
        body: Any = {
            "error": [],
            "result": {
                "XXRPZUSD": [
                    [t // 1000, str(o), str(h), str(lo), str(c), str(c), str(v), 12]
                    for t, o, h, lo, c, v in rows
                ],
                "last": rows[-1][0] // 1000,
            },
        }
    elif venue == "bitfinex":  # milliseconds, newest first
        body = [[t, o, c, h, lo, v] for t, o, h, lo, c, v in reversed(rows)]
    else:  # KuCoin: seconds as text, newest first, turnover last
        body = {
            "code": "200000",
            "data": [
                [str(t // 1000), str(o), str(c), str(h), str(lo), str(v), str(v * c)]
                for t, o, h, lo, c, v in reversed(rows)
            ],
        }
    with caplog.at_level("INFO"):
        got = imp.read_candles(_write(tmp_path, f"{venue}.json", body))
    assert f"read as candles ({layout}" in caplog.text
    ref = imp.read_candles(market / "XRP_USDT_USDT-5m-futures.csv")
    n = len(rows)
    assert got.open_ms == ref.open_ms[:n] and got.close == ref.close[:n]
    assert got.high == ref.high[:n] and got.low == ref.low[:n] and got.volume == ref.volume[:n]


def test_hyperliquid_candle_snapshot_takes_t_not_the_close_time_T(
    tmp_path: Path, market: Path
) -> None:
    """Hyperliquid's `candleSnapshot` names the open time `t` and the close time `T` (keys in
    the API's order: T first). Matched case-insensitively only, `T` was taken as the open
    time: every candle, and every signal, one bar late (and 1 ms off the bar grid)."""
    lines = (market / "XRP_USDT_USDT-5m-futures.csv").read_text().splitlines()[1:51]
    body = []
    for line in lines:
        t, o, h, lo, c, v = line.split(",")
        body.append(
            {"T": int(t) + 299_999, "c": c, "h": h, "i": "5m", "l": lo, "n": 10,
             "o": o, "s": "XRP", "t": int(t), "v": v}
        )  # fmt: skip
    s = imp.read_candles(_write(tmp_path, "hyperliquid_XRP_5m.json", body))
    reference = imp.read_candles(market / "XRP_USDT_USDT-5m-futures.csv")
    assert s.timeframe == "5m"
    assert s.open_ms == reference.open_ms[:50]
    assert s.close == reference.close[:50] and s.volume == reference.volume[:50]
    events = imp.candle_events(s, "XRPUSDT", "hyperliquid")
    assert events[0].observed_at == imp.ms_to_dt(reference.open_ms[0] + 300_000)


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_bitmex_bucketed_bars_are_stamped_at_their_close(
    tmp_path: Path, market: Path, fmt: str
) -> None:
    """BitMEX's `/trade/bucketed` stamps each bin with its END (`timestamp` 00:05 holds
    00:00-00:05), counts `volume` in contracts and `turnover` in satoshis (its documented
    fields, here around recorded XRP candles). Read as open times, every bar and signal was
    one bar late; `turnover` was taken as the quote volume, 10^8 off."""
    lines = (market / "XRP_USDT_USDT-5m-futures.csv").read_text().splitlines()[1:51]
    rows = []
    for line in lines:
        t, o, h, lo, c, v = line.split(",")
        end = imp.ms_to_dt(int(t) + 300_000).isoformat(timespec="milliseconds")
        rows.append(
            {"timestamp": end.replace("+00:00", "Z"), "symbol": "XRPUSD", "open": float(o),
             "high": float(h), "low": float(lo), "close": float(c), "trades": 12,
             "volume": round(float(v) * float(c)), "vwap": float(c), "lastSize": 1,
             "turnover": round(float(v) * 1e8), "homeNotional": float(v),
             "foreignNotional": float(v) * float(c)}
        )  # fmt: skip
    if fmt == "json":
        path = _write(tmp_path, "bitmex_XRPUSD_5m.json", rows)
    else:
        head = list(rows[0])
        text = ",".join(head) + "\n"
        text += "".join(",".join(str(r[k]) for k in head) + "\n" for r in rows)
        path = _write(tmp_path, "bitmex_XRPUSD_5m.csv", text)
    s = imp.read_candles(path)
    reference = imp.read_candles(market / "XRP_USDT_USDT-5m-futures.csv")
    assert s.timeframe == "5m"
    assert s.open_ms == reference.open_ms[:50]  # the bins' starts, not their ends
    assert s.close == reference.close[:50] and s.volume == reference.volume[:50]
    assert s.quote_volume == [r["foreignNotional"] for r in rows]
    events = imp.candle_events(s, "XRPUSDT", "bitmex")
    assert events[0].observed_at == imp.ms_to_dt(reference.open_ms[0] + 300_000)


def test_envelopes_by_another_name_and_column_arrays(tmp_path: Path, market: Path) -> None:
    """Kraken Futures' /api/charts (and Coinbase's) keep rows under `candles`; Deribit's
    public/get_tradingview_chart_data answers column arrays (`ticks`, `open`, ... and `cost`
    in USD) under `result`. Both were refused as 'JSON without a list of rows'."""
    rows = [
        r.split(",")
        for r in (market / "XRP_USDT_USDT-5m-futures.csv").read_text().splitlines()[1:41]
    ]
    reference = imp.read_candles(market / "XRP_USDT_USDT-5m-futures.csv").slice(0, 40)
    kraken = {
        "candles": [
            {"time": int(t), "open": o, "high": h, "low": lo, "close": c, "volume": v}
            for t, o, h, lo, c, v in rows
        ],
        "more_candles": False,
    }
    deribit = {
        "jsonrpc": "2.0",
        "result": {
            "volume": [float(r[5]) for r in rows],
            "ticks": [int(r[0]) for r in rows],
            "status": "ok",
            "open": [float(r[1]) for r in rows],
            "low": [float(r[3]) for r in rows],
            "high": [float(r[2]) for r in rows],
            "cost": [float(r[5]) * float(r[4]) for r in rows],
            "close": [float(r[4]) for r in rows],
        },
        "usIn": 1, "usOut": 2, "usDiff": 1, "testnet": False,
    }  # fmt: skip
    for name, body in (("kraken.json", kraken), ("deribit.json", deribit)):
        s = imp.read_candles(_write(tmp_path, name, body))
        assert s.open_ms == reference.open_ms and s.close == reference.close, name
        assert s.volume == reference.volume, name
    assert imp.read_candles(_write(tmp_path, "d.json", deribit)).quote_volume[0] == float(
        rows[0][5]
    ) * float(rows[0][4])
    # an object with no rows at all names what it holds
    with pytest.raises(imp.HistoryFormatError, match="keys seen: error, id"):
        imp.read_candles(_write(tmp_path, "e.json", {"error": {"code": 1}, "id": 3}))


def test_ccxt_unified_dicts(tmp_path: Path) -> None:
    info = {"symbol": "BTCUSDT"}
    funding = _write(tmp_path, "f.json", [
        {"info": info, "symbol": "BTC/USDT:USDT", "fundingRate": 0.0001,
         "timestamp": 1704067200000, "datetime": "2024-01-01T00:00:00.000Z"},
    ])  # fmt: skip
    assert imp.read_funding(funding, "BTCUSDT")[0].observed_at == utc(2024, 1, 1)
    oi = _write(tmp_path, "oi.json", [
        {"symbol": "BTC/USDT:USDT", "openInterestAmount": 80000.5, "openInterestValue": 3.4e9,
         "timestamp": 1704067200000, "info": info},
    ])  # fmt: skip
    assert imp.read_open_interest(oi, "BTCUSDT")[0].open_interest_usd == 3.4e9
    ls = _write(tmp_path, "ls.json", [
        {"symbol": "BTC/USDT:USDT", "longShortRatio": 1.5, "timestamp": 1704067200000},
    ])  # fmt: skip
    assert imp.read_long_short(ls, "BTCUSDT")[0].long_share == pytest.approx(0.6)


# --- freqtrade's feather and parquet files, written by pyarrow as freqtrade does --------

FREQTRADE_COLUMNS = ("date", "open", "high", "low", "close", "volume")


def freqtrade_table(columns: dict[str, list[Any]], unit: str = "ms") -> pa.Table:
    """Return OHLCV columns as freqtrade stores them: `date` timestamp[ms, UTC], float64 rest.

    `date` is given as epoch ms; older freqtrade (pandas < 2) wrote nanosecond timestamps.
    """
    date = pa.array(columns["date"], pa.timestamp("ms", tz="UTC"))
    arrays = [date.cast(pa.timestamp(unit, tz="UTC"))]
    arrays += [pa.array(columns[c], pa.float64()) for c in FREQTRADE_COLUMNS[1:]]
    return pa.table(arrays, names=list(FREQTRADE_COLUMNS))


def write_freqtrade(table: pa.Table, path: Path, fmt: str) -> Path:
    """Write `table` as freqtrade's `feather` (lz4 by default) or `parquet` data format."""
    if fmt == "parquet":
        parquet.write_table(table, path)
    else:
        compression = fmt.removeprefix("feather-")
        feather.write_feather(table, path, compression=compression)
    return path


def csv_columns(path: Path) -> dict[str, list[Any]]:
    """Return a freqtrade OHLCV CSV (`open_time,open,...`) as columns, parsed by hand."""
    rows = [r.split(",") for r in path.read_text().splitlines()[1:]]
    return {
        c: [int(r[0]) if c == "date" else float(r[i]) for r in rows]
        for i, c in enumerate(FREQTRADE_COLUMNS)
    }


FORMATS = ["feather-uncompressed", "feather-lz4", "feather-zstd", "parquet"]


@pytest.mark.parametrize("unit", ["ms", "ns"])
@pytest.mark.parametrize("fmt", FORMATS)
def test_freqtrade_file_round_trips_the_csv_candles(
    tmp_path: Path, market: Path, fmt: str, unit: str
) -> None:
    """A freqtrade data file built from the recorded 5m CSV imports as exactly those candles."""
    csv_path = market / "XRP_USDT_USDT-5m-futures.csv"
    want = csv_columns(csv_path)
    suffix = "parquet" if fmt == "parquet" else "feather"
    path = write_freqtrade(
        freqtrade_table(want, unit), tmp_path / f"XRP_USDT_USDT-5m-futures.{suffix}", fmt
    )
    got = imp.read_candles(path)
    assert got.timeframe == "5m" and len(got) == len(want["date"]) == 1999
    assert got.open_ms == want["date"]
    assert (got.open, got.high, got.low, got.close, got.volume) == (
        want["open"], want["high"], want["low"], want["close"], want["volume"],
    )  # fmt: skip
    events = imp.candle_events(got, "XRPUSDT")
    assert events == imp.candle_events(imp.read_candles(csv_path), "XRPUSDT")
    assert events[0].open_time == utc(2021, 11, 15)


@pytest.mark.parametrize("fmt", FORMATS)
def test_freqtrade_candles_with_nulls_and_funding(tmp_path: Path, market: Path, fmt: str) -> None:
    """freqtrade's mark candles have null volumes; its funding keeps the rate in `open`."""
    csv_path = market / "XRP_USDT_USDT-1h-futures.csv"
    data = csv_columns(csv_path)
    data["volume"][3] = None
    suffix = "parquet" if fmt == "parquet" else "feather"
    path = write_freqtrade(freqtrade_table(data), tmp_path / f"XRP-1h.{suffix}", fmt)
    s, ref = imp.read_candles(path), imp.read_candles(csv_path)
    assert (s.timeframe, s.open_ms, s.close) == (ref.timeframe, ref.open_ms, ref.close)
    assert s.volume[3] == 0.0 and s.volume[4] == ref.volume[4]
    fr = market / "XRP_USDT_USDT-8h-funding_rate.csv"
    pairs = [r.split(",") for r in fr.read_text().splitlines()[1:]]
    zeros = [0.0] * len(pairs)
    funding = {
        "date": [int(t) for t, _ in pairs],
        "open": [float(v) for _, v in pairs],
        "high": zeros, "low": zeros, "close": zeros, "volume": zeros,
    }  # fmt: skip
    fpath = write_freqtrade(freqtrade_table(funding), tmp_path / f"XRP-8h-fr.{suffix}", fmt)
    got, want = imp.read_funding(fpath, "XRPUSDT"), imp.read_funding(fr, "XRPUSDT")
    assert len(got) == len(pairs)
    assert [(e.observed_at, e.rate) for e in got] == [(e.observed_at, e.rate) for e in want]


def test_parquet_of_an_exporter_with_its_own_column_names(tmp_path: Path) -> None:
    """Research exporters' parquet: any accepted column names, naive microsecond timestamps."""
    times = [1704067200000 + k * 3_600_000 for k in range(3)]
    table = pa.table(
        {
            "timestamp": pa.array(times, pa.timestamp("us")),  # naive: taken as UTC
            "fundingRate": pa.array([0.0001, -0.0002, 0.0003], pa.float64()),
            "markPrice": pa.array([42000.5, None, 42100.0], pa.float64()),
        }
    )
    path = tmp_path / "funding.parquet"
    parquet.write_table(table, path, compression="zstd")
    got = imp.read_funding(path, "BTCUSDT")
    assert [e.observed_at for e in got] == [imp.ms_to_dt(t) for t in times]
    assert [e.rate for e in got] == [0.0001, -0.0002, 0.0003]
    assert [e.mark_price for e in got] == [42000.5, None, 42100.0]


@pytest.mark.parametrize(
    ("name", "body"),
    [("XRP-5m.parquet", b"PAR1" + b"\x00" * 64), ("XRP-5m.feather", b"ARROW1" + b"\x00" * 64)],
)
def test_a_damaged_arrow_file_is_reported_by_name(tmp_path: Path, name: str, body: bytes) -> None:
    path = tmp_path / name
    path.write_bytes(body)
    with pytest.raises(imp.HistoryFormatError, match=rf"{name}: not a readable"):
        imp.read_candles(path)


# --- times, unknown layouts, explicit mapping -------------------------------------------


@pytest.mark.parametrize(
    "stamp",
    ["1704067200", "1704067200000", "1704067200000000", "1704067200000000000",
     "2024-01-01T00:00:00Z", "2024-01-01 00:00:00"],
)  # fmt: skip
def test_time_units_are_detected(stamp: str) -> None:
    assert imp.ms_to_dt(imp.parse_time_ms(stamp)) == utc(2024, 1, 1)


@pytest.mark.parametrize(
    ("stamp", "at"),
    [("20240101", utc(2024, 1, 1)), (20240229, utc(2024, 2, 29)),
     ("202401011530", utc(2024, 1, 1, 15, 30)), ("20240101153045", utc(2024, 1, 1, 15, 30, 45))],
)  # fmt: skip
def test_the_digits_of_a_date_are_that_date(stamp: str | int, at: datetime) -> None:
    """Read by magnitude, 20240101 was 1970-08-23 in seconds: a daily export's bars became
    '1 s bars' (refused as no platform timeframe) and 14 digits a year-2611 time."""
    assert imp.ms_to_dt(imp.parse_time_ms(stamp)) == at


@pytest.mark.parametrize(
    ("stamp", "at"),
    [("15.11.2021 18:05", utc(2021, 11, 15, 18, 5)), ("1.2.2024", utc(2024, 2, 1)),
     ("15.11.2021 18:05:30", utc(2021, 11, 15, 18, 5, 30))],
)  # fmt: skip
def test_a_european_spreadsheet_date_is_day_month_year(stamp: str, at: datetime) -> None:
    """A semicolon export with decimal commas was read up to its first time, then refused."""
    assert imp.ms_to_dt(imp.parse_time_ms(stamp)) == at


@pytest.mark.parametrize("stamp", ["01/02/2024", "31.02.2024"])
def test_an_ambiguous_or_impossible_date_is_refused(stamp: str) -> None:
    with pytest.raises(imp.HistoryFormatError, match="unreadable time"):
        imp.parse_time_ms(stamp)


def test_a_daily_export_stamped_yyyymmdd_reads_as_daily_bars(tmp_path: Path) -> None:
    days = [f"202401{d:02d},{1 + d / 100},{1.1 + d / 100},{0.9 + d / 100},{1 + d / 100},5\n"
            for d in range(1, 31)]  # fmt: skip
    path = _write(tmp_path, "daily.csv", "date,open,high,low,close,volume\n" + "".join(days))
    s = imp.read_candles(path)
    assert s.timeframe == "1d" and len(s) == 30
    assert imp.ms_to_dt(s.open_ms[0]) == utc(2024, 1, 1)


def test_unknown_layout_names_the_columns_seen_and_accepted(tmp_path: Path) -> None:
    path = _write(tmp_path, "mystery.csv", "when,lsr\n1704067200000,1.2\n")
    with pytest.raises(imp.HistoryFormatError) as err:
        imp.read_long_short(path, "BTCUSDT")
    msg = str(err.value)
    assert "['when', 'lsr']" in msg  # seen
    assert "open_time" in msg and "globalLongShortRatio" in msg  # accepted
    assert "--columns" in msg


def test_explicit_mapping_reads_any_layout(tmp_path: Path) -> None:
    path = _write(tmp_path, "mystery.csv", "when,lsr\n1704067200000,1.5\n")
    with imp.column_overrides(imp.parse_column_map(["long_short.time=when,global_ratio=lsr"])):
        e = imp.read_long_short(path, "BTCUSDT")[0]
    assert e.long_share == pytest.approx(0.6)
    pct = _write(tmp_path, "pct.csv", "when,fr\n1704067200000,0.01\n")
    with imp.column_overrides(imp.parse_column_map(["funding.time=when", "funding.rate=fr*0.01"])):
        assert imp.read_funding(pct, "BTCUSDT")[0].rate == pytest.approx(0.0001)
    with pytest.raises(imp.HistoryFormatError, match="unknown field 'colse'"):
        imp.parse_column_map(["colse=c"])


def test_cli_columns_option(
    tmp_path: Path, xrp_small: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = xrp_small.read_text().splitlines()
    renamed = tmp_path / "renamed.csv"
    renamed.write_text("\n".join(["ts,o,hi,lo,last,qty", *lines[1:]]) + "\n")
    args = ["--symbol", "XRPUSDT", "--candles", str(renamed), "--out", str(tmp_path / "r")]
    args += ["--no-progress", "--quiet"]
    assert backtest.main(args) == 2
    assert "columns seen: ['ts', 'o', 'hi', 'lo', 'last', 'qty']" in capsys.readouterr().err
    mapped = [*args, "--columns", "time=ts,high=hi,low=lo,close=last", "--columns", "volume=qty"]
    assert backtest.main(mapped) == 0
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["run"]["signals"] > 0
    assert (tmp_path / "r" / "signals.jsonl").read_text().count("\n") == report["run"]["signals"]


def test_unprefixed_pairs_apply_only_where_the_column_exists(tmp_path: Path) -> None:
    candles = _write(
        tmp_path,
        "c.csv",
        "ts,open,high,low,close\n1704067200000,1,2,0.5,1.5\n1704067500000,1,2,0.5,1.6\n",
    )
    funding = _write(tmp_path, "f.csv", "fundingTime,fundingRate\n1704067200000,0.0001\n")
    with imp.column_overrides(imp.parse_column_map(["time=ts"])):
        assert len(imp.read_candles(candles)) == 2
        assert imp.read_funding(funding, "X")[0].rate == 0.0001  # its own time column
    with (
        imp.column_overrides(imp.parse_column_map(["funding.time=ts"])),
        pytest.raises(imp.HistoryFormatError, match="no such column"),
    ):
        imp.read_funding(funding, "X")


def test_a_columns_pair_no_input_has_is_refused_naming_the_columns(
    tmp_path: Path, xrp_small: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A typo (`close=clsoe`) was ignored: the run went on reading `close`, whatever column
    the user meant. Now it is one line naming the pair and the file's columns."""
    args = ["--symbol", "XRPUSDT", "--candles", str(xrp_small), "--out", str(tmp_path / "r")]
    args += ["--no-progress", "--quiet", "--jobs", "1", "--columns", "close=clsoe"]
    assert backtest.main(args) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.splitlines()[-1] == (
        "perpsignal backtest: --columns close=clsoe: no input file has the column 'clsoe' "
        "(xrp_5m_small.csv: open_time, open, high, low, close, volume)"
    )
    assert not (tmp_path / "r" / "report.json").exists()


def test_an_unprefixed_named_pair_skips_a_file_without_a_header(
    tmp_path: Path, xrp_small: Path, market: Path
) -> None:
    """`time=ts` is for the candles' header; a header-less funding file was refused for it
    ("no header, so --columns time needs a position") instead of read by position."""
    lines = xrp_small.read_text().splitlines()
    candles = _write(tmp_path, "c.csv", "\n".join(["ts,open,high,low,close,volume", *lines[1:]]))
    rows = (market / "XRP_USDT_USDT-8h-funding_rate.csv").read_text().splitlines()[1:]
    funding = _write(tmp_path, "f.csv", "\n".join(rows) + "\n")
    with imp.column_overrides(imp.parse_column_map(["time=ts"])):
        h = load_history("XRPUSDT", candles, funding=funding)
    read = next(s for s in h.sources if s.name == "funding")
    assert read.events == len(rows)


def test_an_investing_com_download_reads_as_its_bars(tmp_path: Path, market: Path) -> None:
    """Investing.com's historical-data CSV: quoted cells, the close called `Price`, month-first
    dates, thousands separators, volumes abbreviated (`1.15M`, `-` for none), a change column,
    newest first. It was refused for want of a close column, and with `--columns close=Price`
    at its first volume ('1.15M' is not a number)."""
    src = market / "XRP_USDT_USDT-1h-futures.csv"
    ref = imp.read_candles(src)
    rows = [line.split(",") for line in src.read_text().splitlines()[1:]]
    out = ['"Date","Price","Open","High","Low","Vol.","Change %"']
    for k, (ms, o, h, lo, c, v) in enumerate(reversed(rows)):
        at = datetime.fromtimestamp(int(ms) / 1000, UTC)
        vol = "-" if k == 0 else f"{float(v) / 1e6:.2f}M" if k % 2 else f"{float(v) / 1e3:.2f}K"
        prices = (f"{float(x) * 1000:,}" for x in (c, o, h, lo))  # past 1,000: separators
        out.append(",".join(f'"{x}"' for x in (f"{at:%m/%d/%Y %H:%M}", *prices, vol, "0.12%")))
    path = _write(tmp_path, "XRP_USD Historical Data.csv", "\n".join(out) + "\n")
    got = imp.read_candles(path)
    assert got.open_ms == ref.open_ms and got.timeframe == "1h"
    for column in ("open", "high", "low", "close"):
        assert getattr(got, column) == pytest.approx([x * 1000 for x in getattr(ref, column)])
    # as written: 2 decimals of millions or of thousands
    assert got.volume[:-1] == pytest.approx(ref.volume[:-1], abs=5_000)
    assert got.volume[-1] == 0.0  # `-`: no volume given


def test_a_coinmarketcap_download_is_stamped_at_each_bar_s_open(
    tmp_path: Path, market: Path
) -> None:
    """CoinMarketCap's CSV (`;`, quoted ISO times) ends with `timestamp`, the bar's last
    instant (`...T23:59:59.999Z`): read as the time, every bar opened a bar late."""
    src = market / "XRP_USDT_USDT-1h-futures.csv"
    ref = imp.read_candles(src)
    head = "timeOpen;timeClose;timeHigh;timeLow;name;open;high;low;close;volume;marketCap;timestamp"
    out = [head]
    for line in src.read_text().splitlines()[1:]:
        ms, o, h, lo, c, v = line.split(",")
        opened = datetime.fromtimestamp(int(ms) / 1000, UTC)
        last = opened + timedelta(hours=1, milliseconds=-1)
        times = [f'"{t.isoformat(timespec="milliseconds").replace("+00:00", "Z")}"'
                 for t in (opened, last, opened, opened)]  # fmt: skip
        out.append(";".join([*times, '"52"', o, h, lo, c, v, "1.0", times[1]]))
    got = imp.read_candles(_write(tmp_path, "XRP_1H_graph_coinmarketcap.csv", "\n".join(out)))
    assert got.open_ms == ref.open_ms and got.close == ref.close and got.timeframe == "1h"


def test_dydx_v4_candles(tmp_path: Path, market: Path) -> None:
    """dYdX v4's indexer `/v4/candles/perpetualMarkets/{ticker}`: newest first, ISO
    `startedAt`, base and USD volumes (`baseTokenVolume`, `usdVolume`). It was refused for
    want of a time column, and with `--columns time=startedAt` read without its volumes."""
    src = market / "XRP_USDT_USDT-1h-futures.csv"
    ref = imp.read_candles(src)
    candles = []
    for line in reversed(src.read_text().splitlines()[1:]):
        ms, o, h, lo, c, v = line.split(",")
        at = datetime.fromtimestamp(int(ms) / 1000, UTC).isoformat(timespec="milliseconds")
        candles.append({
            "startedAt": at.replace("+00:00", "Z"), "ticker": "XRP-USD", "resolution": "1HOUR",
            "low": lo, "high": h, "open": o, "close": c, "baseTokenVolume": v,
            "usdVolume": str(float(v) * float(c)), "trades": 7, "startingOpenInterest": "1.5",
            "orderbookMidPriceOpen": o, "orderbookMidPriceClose": c,
        })  # fmt: skip
    got = imp.read_candles(_write(tmp_path, "dydx-XRP-USD-1HOUR.json", {"candles": candles}))
    assert got.open_ms == ref.open_ms and got.close == ref.close and got.volume == ref.volume
    usd = [v * c for v, c in zip(ref.volume, ref.close, strict=True)]
    assert got.quote_volume == pytest.approx(usd)


@pytest.mark.parametrize(
    ("cell", "value"),
    [("68.97K", 68_970.0), ("1.2M", 1_200_000.0), ("3.4B", 3.4e9), ("-", None), (" - ", None)],
)
def test_abbreviated_and_absent_numbers(cell: str, value: float | None) -> None:
    assert imp.number(cell) == (value if value is None else pytest.approx(value))


@pytest.mark.parametrize("cell", ["K", "1.2X", "--", "1.2MM"])
def test_what_only_looks_abbreviated_is_no_number(cell: str) -> None:
    with pytest.raises(imp.HistoryFormatError, match="is not a number"):
        imp.number(cell)


def test_okx_download_csv_takes_base_volume_not_contracts(tmp_path: Path) -> None:
    # OKX's historical-data CSVs: `vol` counts contracts, `vol_ccy` is the base volume
    path = _write(
        tmp_path,
        "BTC-USDT-SWAP-candlesticks.csv",
        "https://www.okx.com/data-download\n"
        "instrument_name,open,high,low,close,vol,vol_ccy,vol_quote,open_time,confirm\n"
        "BTC-USDT-SWAP,42000,42100,41900,42050,1000,10,420500,1704067200000,1\n"
        "BTC-USDT-SWAP,42050,42200,42000,42100,2000,20,842000,1704067260000,1\n",
    )
    s = imp.read_candles(path)
    assert s.volume == [10.0, 20.0] and s.quote_volume == [420500.0, 842000.0]


def test_spreadsheet_style_headers(tmp_path: Path) -> None:
    path = _write(tmp_path, "oi.csv", "Time,Open Interest (USD)\n2024-01-01 00:00:00,3400000000\n")
    assert imp.read_open_interest(path, "BTCUSDT")[0].open_interest_usd == 3.4e9


def test_deribit_and_dydx_funding_histories(tmp_path: Path) -> None:
    """Deribit's hourly rows were refused (no `rate` column); read as `interest_8h` they would
    be scaled to 8 h again by the engine, eight times too large. dYdX's `effectiveAt` time
    was not known."""
    t0 = 1_637_193_600_000
    deribit = _write(
        tmp_path,
        "deribit.json",
        {
            "jsonrpc": "2.0",
            "result": [
                {
                    "timestamp": t0 + i * 3_600_000,
                    "index_price": 1.1,
                    "prev_index_price": 1.1,
                    "interest_8h": 0.0008,
                    "interest_1h": 0.0001,
                }
                for i in range(6)
            ],
        },
    )
    rates = imp.read_funding(deribit, "XRPUSDT")
    assert [e.rate for e in rates] == [0.0001] * 6
    assert rates[1].observed_at == imp.ms_to_dt(t0 + 3_600_000)
    dydx = _write(
        tmp_path,
        "dydx.json",
        {
            "historicalFunding": [
                {"ticker": "XRP-USD", "rate": "0.0000125", "price": "1.1",
                 "effectiveAt": f"2021-11-18T{h:02d}:00:00.000Z", "effectiveAtHeight": "1"}
                for h in range(6)
            ]
        },
    )  # fmt: skip
    got = imp.read_funding(dydx, "XRPUSDT")
    assert [e.rate for e in got] == [0.0000125] * 6
    assert got[0].observed_at == utc(2021, 11, 18)


def test_bybit_liquidations_name_the_position_not_the_order(tmp_path: Path) -> None:
    """Bybit's liquidation side is the position's (Buy: a long forced out), Binance's the
    liquidation order's (SELL: a long forced out). A Bybit recording was refused; its side
    mapped by hand would have been read the Binance way, every side inverted."""
    t0 = 1_637_193_600_000
    sides = ["Buy", "Sell", "Buy"]
    lines = [
        json.dumps({"topic": "allLiquidation.XRPUSDT", "type": "snapshot", "ts": t0 + i * 60_000,
                    "data": [{"T": t0 + i * 60_000, "s": "XRPUSDT", "S": side, "v": "1000",
                              "p": "1.1"}]})
        for i, side in enumerate(sides)
    ]  # fmt: skip
    recording = _write(tmp_path, "bybit_allLiquidation.jsonl", "\n".join(lines) + "\n")
    got = imp.read_liquidations(recording, "XRPUSDT")
    assert [e.liquidated_side for e in got] == ["LONG", "SHORT", "LONG"]
    assert [e.quantity for e in got] == [1000.0] * 3 and got[0].price == 1.1
    assert got[1].observed_at == imp.ms_to_dt(t0 + 60_000)
    older = _write(
        tmp_path,
        "bybit_liquidation.json",
        [{"updatedTime": t0 + i * 60_000, "symbol": "XRPUSDT", "side": side, "size": "5",
          "price": "1.1"} for i, side in enumerate(sides)],
    )  # fmt: skip
    assert [e.liquidated_side for e in imp.read_liquidations(older, "XRPUSDT")] == [
        "LONG",
        "SHORT",
        "LONG",
    ]


def test_coingecko_ohlc_and_cryptocompare_histo(
    tmp_path: Path, market: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """CoinGecko's five-value OHLC rows and CryptoCompare's `{"Data": {"Data": [...]}}` were
    refused. CoinGecko gives no volume: the bars carry 0, and a warning says so."""
    rows = _venue_rows(market)
    ref = imp.read_candles(market / "XRP_USDT_USDT-5m-futures.csv")
    n = len(rows)
    gecko = _write(tmp_path, "coingecko.json", [r[:5] for r in rows])
    with caplog.at_level("WARNING"):
        got = imp.read_candles(gecko)
    assert (
        got.close == ref.close[:n] and got.high == ref.high[:n] and got.open_ms == ref.open_ms[:n]
    )
    assert set(got.volume) == {0.0} and "no volume column" in caplog.text
    histo = {
        "Response": "Success",
        "Data": {
            "Aggregated": False,
            "TimeFrom": rows[0][0] // 1000,
            "Data": [
                {"time": t // 1000, "high": h, "low": lo, "open": o, "volumefrom": v,
                 "volumeto": v * c, "close": c}
                for t, o, h, lo, c, v in rows
            ],
        },
    }  # fmt: skip
    got = imp.read_candles(_write(tmp_path, "cryptocompare.json", histo))
    assert got.close == ref.close[:n] and got.volume == ref.volume[:n]


@pytest.mark.parametrize("fmt", ["parquet", "feather"])
def test_a_compressed_arrow_file_past_the_cap_is_refused_before_it_is_unpacked(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    """pyarrow unpacked a ZSTD/LZ4 file whole: a few KiB of repeated bars can unpack to
    gigabytes. Parquet's footer says the size first; an IPC file is summed batch by batch."""
    n = 200_000  # 6 columns x 8 bytes: ~9 MiB unpacked, much less packed
    t0 = 1_700_000_000_000
    table = pa.table({
        "date": pa.array([t0 + 60_000 * i for i in range(n)], pa.int64()),
        **{c: pa.array([1.0] * n) for c in ("open", "high", "low", "close", "volume")},
    })  # fmt: skip
    path = tmp_path / f"BTC_USDT-1m.{fmt}"
    if fmt == "parquet":
        parquet.write_table(table, path, compression="zstd")
    else:
        feather.write_feather(table, path, compression="lz4", chunksize=20_000)
    assert path.stat().st_size < 2 << 20
    assert len(imp.read_candles(path)) == n  # under the cap: read
    monkeypatch.setattr(archives, "MAX_UNPACKED_BYTES", 4 << 20)
    with pytest.raises(imp.HistoryFormatError, match="more than 4 MiB to read whole"):
        imp.read_candles(path)


@pytest.mark.filterwarnings("ignore:Feather V1 files are deprecated")  # old files still exist
def test_a_feather_v1_file_past_the_cap_is_refused(
    tmp_path: Path, market: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every other file read whole is refused past MAX_UNPACKED_BYTES; a feather v1 file
    (Arrow's first feather format, never compressed) was read whatever its size, then made
    into Python rows (~10x its size)."""
    ftx = market / "ftx-btc-perp-20211231-20220201_1m.csv"
    rows = [line.split(",") for line in ftx.read_text().splitlines()[1:]]
    table = pa.table({
        "date": pa.array([int(r[0]) for r in rows], pa.int64()),
        **{c: pa.array([float(r[i + 1]) for r in rows]) for i, c in enumerate(
            ("open", "high", "low", "close", "volume"))},
    })  # fmt: skip
    path = tmp_path / "BTC_USDT-1m.feather"
    feather.write_feather(table, path, version=1)
    assert path.read_bytes()[:4] == b"FEA1" and path.stat().st_size > 2 << 20
    assert len(imp.read_candles(path)) == len(rows)  # under the cap: read
    monkeypatch.setattr(archives, "MAX_UNPACKED_BYTES", 2 << 20)
    with pytest.raises(imp.HistoryFormatError, match=r"BTC_USDT-1m\.feather: more than 2 MiB"):
        imp.read_candles(path)
