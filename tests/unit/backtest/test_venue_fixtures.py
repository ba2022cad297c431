"""Each venue's history shape, as a file in fixtures/venues (real recorded numbers in the
venue's documented envelope, names, order and units; see its README), read by the real
importers and, for a few, by the whole `perpsignal backtest` command."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from perpsignal_cli import backtest
from perpsignal_cli.backtesting import importers as imp
from perpsignal_cli.backtesting.pipeline import load_history

VENUES = Path(__file__).parent / "fixtures" / "venues"

# the 48 recorded XRPUSDT 1h bars every candle fixture holds
FIRST_OPEN = datetime(2021, 11, 17, 1, tzinfo=UTC)
LAST_OPEN = datetime(2021, 11, 19, 0, tzinfo=UTC)


@pytest.fixture(scope="module")
def bars(market: Path) -> imp.CandleSeries:
    return imp.read_candles(market / "XRP_USDT_USDT-1h-futures.csv").slice(0, 48)


def at(ms: int) -> datetime:
    return imp.ms_to_dt(ms)


@pytest.mark.parametrize(
    ("name", "quote"),
    [
        ("bybit_v5_kline_XRPUSDT_60.json", True),
        ("okx_v5_candles.json", True),
        ("deribit_get_tradingview_chart_data.json", True),
        ("bitget_v2_mix_candles.json", True),
        ("kraken_futures_charts_trade_1h.json", False),
        ("hyperliquid_candle_snapshot.json", False),
        ("coinbase_exchange_candles.json", False),
        ("coinbase_advanced_trade_candles.json", False),
        ("ccxt_fetch_ohlcv.json", False),
        ("XRP_USDT_USDT-1h-futures.json", False),
        ("XRP_USDT_USDT-1h-futures.json.gz", False),
        ("web_candles_time_utc8.csv", False),
    ],
)
def test_each_venues_candles_are_the_recorded_bars(
    name: str, quote: bool, bars: imp.CandleSeries
) -> None:
    """Seconds or ms, text or numbers, newest first or last, rows or column arrays: the
    same bars, opening at the same instants, with the recorded prices and volume."""
    s = imp.read_candles(VENUES / name)
    assert s.timeframe == "1h" and len(s) == 48
    assert (at(s.open_ms[0]), at(s.open_ms[-1])) == (FIRST_OPEN, LAST_OPEN)
    assert s.open_ms == bars.open_ms
    assert (s.open, s.high, s.low, s.close) == (bars.open, bars.high, bars.low, bars.close)
    assert s.close[0] == 1.07925 and s.volume == bars.volume
    if quote:  # turnover / cost / quote volume: base volume x close, in USD
        assert s.quote_volume[0] == pytest.approx(3153694.607359 * 1.07925)


def test_okx_mark_price_candles_carry_no_volume_and_drop_the_open_bar(
    bars: imp.CandleSeries, caplog: pytest.LogCaptureFixture
) -> None:
    """OKX's mark/index-price candles are six texts, the last its `confirm` flag. Read as
    CCXT's six values, every bar's volume was that flag (1.0) and the newest bar, still
    open when exported ("0"), was read as a finished one."""
    with caplog.at_level("INFO"):
        s = imp.read_candles(VENUES / "okx_v5_mark_price_candles.json")
    assert "OKX mark/index-price candles" in caplog.text
    assert len(s) == 47 and at(s.open_ms[-1]) == datetime(2021, 11, 18, 23, tzinfo=UTC)
    assert s.open_ms == bars.open_ms[:47] and s.close == bars.close[:47]
    assert set(s.volume) == {0.0}  # unknown, and the warning says so
    assert "no volume column" in caplog.text


def test_a_ccxt_volume_of_one_is_still_a_volume(tmp_path: Path) -> None:
    """The confirm flag is OKX's text "0"/"1": CCXT rows whose volume is the number 1 stay CCXT."""
    rows = [[1637110800000 + k * 3_600_000, 1.0, 2.0, 0.5, 1.5, 1] for k in range(3)]
    path = tmp_path / "ccxt.json"
    path.write_text(json.dumps(rows))
    s = imp.read_candles(path)
    assert len(s) == 3 and s.volume == [1.0, 1.0, 1.0]


def test_a_time_column_that_names_its_zone_is_read_in_that_zone(
    tmp_path: Path, bars: imp.CandleSeries
) -> None:
    """`Time(UTC+8)` was no time column (refused), and mapped by hand with --columns its
    local times were read as UTC: every bar 8 hours late. Now 09:00 there is 01:00 UTC;
    a time that gives its own offset or an epoch number keeps it."""
    s = imp.read_candles(VENUES / "web_candles_time_utc8.csv")
    assert s.open_ms == bars.open_ms
    with imp.column_overrides(imp.parse_column_map(["time=Time(UTC+8)"])):
        assert imp.read_candles(VENUES / "web_candles_time_utc8.csv").open_ms == bars.open_ms
    path = tmp_path / "mixed.csv"
    path.write_text(
        "Date (GMT-05:00),open,high,low,close\n"
        "2021-11-16 20:00:00,1,2,0.5,1.5\n"  # 01:00 UTC
        "2021-11-17T02:00:00Z,1,2,0.5,1.5\n"  # says UTC itself
        "1637118000000,1,2,0.5,1.5\n"  # epoch: no zone
    )
    got = [at(t).hour for t in imp.read_candles(path).open_ms]
    assert got == [1, 2, 3]
    for header, zone in [("Time(UTC)", "UTC"), ("time_utc", "UTC"), ("Time (UTC+05:30)", "+05:30")]:
        name, tz = imp.zone_note(header)
        assert imp.norm(name) == "time" and tz is not None and zone in str(tz)
    assert imp.zone_note("UTC") == ("UTC", None)  # a column called UTC is no note


@pytest.mark.parametrize("month", [1, 7])  # winter and summer: no daylight saving in either
def test_a_time_column_noted_with_a_fixed_zone_abbreviation_is_read_in_it(
    tmp_path: Path, month: int
) -> None:
    """`Time (JST)` was no time column (the file was refused); JST is UTC+9 all year."""
    path = tmp_path / "jst.csv"
    path.write_text(
        "Time (JST),open,high,low,close\n"
        f"2024-{month:02d}-01 09:00:00,1,2,0.5,1.5\n2024-{month:02d}-01 10:00:00,1,2,0.5,1.5\n"
    )
    assert at(imp.read_candles(path).open_ms[0]) == datetime(2024, month, 1, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("header", "hint"),
    [
        ("Time (EST)", "'Time(UTC-5)'"),
        ("Date(CET)", "'Time(UTC+1)'"),
        ("Open Time (CST)", "'Time(UTC-5)' or 'Time(UTC+1)'"),  # US Central or China
        ("timestamp_ist", "'Time(UTC-5)' or"),  # India, Israel or Ireland
    ],
)
@pytest.mark.parametrize("month", [1, 7])
def test_a_time_column_noted_with_an_ambiguous_zone_is_refused_saying_how_to_name_it(
    tmp_path: Path, header: str, hint: str, month: int
) -> None:
    """`Time (EST)` was refused as having no time column, saying nothing of its zone. EST,
    CET, CST, IST may be a local clock that changes with daylight saving (a July 'EST'
    export is often EDT) or name several zones: refused in winter and summer alike, never
    read as one offset, the message saying how to name the offset."""
    path = tmp_path / "local.csv"
    path.write_text(
        f"{header},open,high,low,close\n"
        f"2024-{month:02d}-01 09:00:00,1,2,0.5,1.5\n2024-{month:02d}-01 10:00:00,1,2,0.5,1.5\n"
    )
    with pytest.raises(imp.HistoryFormatError) as err:
        imp.read_candles(path)
    said = str(err.value)
    assert f"{header!r} names its zone" in said and hint in said and "convert" in said
    with (
        pytest.raises(imp.HistoryFormatError, match="names its zone"),
        imp.column_overrides(imp.parse_column_map([f"time={header}"])),
    ):
        imp.read_candles(path)
    assert imp.zone_note("Amount ET") == ("Amount ET", None)  # no time column: no note


@pytest.mark.parametrize(
    ("name", "first", "last", "rate"),
    [
        ("bybit_v5_funding_history.json", (11, 18, 0), (11, 27, 16), None),
        ("okx_v5_funding_rate_history.json", (11, 18, 0), (11, 27, 16), None),
        ("bitget_v2_mix_history_fund_rate.json", (11, 18, 0), (11, 27, 16), None),
        ("kraken_futures_historicalfundingrates.json", (11, 18, 0), (11, 27, 16), None),
        ("hyperliquid_funding_history.json", (11, 18, 0), (11, 27, 16), None),
        ("bitmex_funding.json", (11, 18, 0), (11, 27, 16), None),
        ("ccxt_fetch_funding_rate_history.json", (11, 18, 0), (11, 27, 16), None),
        ("XRP_USDT_USDT-8h-funding_rate.json", (11, 18, 0), (11, 27, 16), None),
        ("binance_web_funding_history.csv", (11, 18, 0), (11, 27, 16), None),
        ("web_funding_history_time_utc.csv", (11, 18, 0), (11, 27, 16), None),
        # Deribit: hourly rows, the hour's rate (interest_1h), not interest_8h
        ("deribit_get_funding_rate_history.json", (11, 17, 1), (11, 19, 0), 0.0000125),
    ],
)
def test_each_venues_funding_history(
    name: str,
    first: tuple[int, int, int],
    last: tuple[int, int, int],
    rate: float | None,
    market: Path,
) -> None:
    """Settlement times oldest first (to the second; ms offsets kept where given), the
    rate as a fraction per interval (percent texts and Kraken's USD rate are not it)."""
    f = imp.read_funding(VENUES / name, "XRPUSDT")
    month, day, hour = first
    assert f[0].observed_at.replace(microsecond=0) == datetime(2021, month, day, hour, tzinfo=UTC)
    month, day, hour = last
    assert f[-1].observed_at.replace(microsecond=0) == datetime(2021, month, day, hour, tzinfo=UTC)
    recorded = (market / "XRP_USDT_USDT-8h-funding_rate.csv").read_text().splitlines()[1:31]
    want = [float(r.split(",")[1]) for r in recorded] if rate is None else [rate] * len(f)
    # a website's percent texts are rounded to 4 decimals of a percent (0.0130%)
    rounded = 5e-7 if name.endswith(".csv") else 1e-12
    assert [e.rate for e in f] == pytest.approx(want, rel=1e-9, abs=rounded)


def test_open_interest_and_long_short_of_bybit_okx_and_bitget() -> None:
    first, last = datetime(2024, 5, 9, 16, 10, tzinfo=UTC), datetime(2024, 5, 9, 18, 35, tzinfo=UTC)
    bybit = imp.read_open_interest(VENUES / "bybit_v5_open_interest.json", "BTCUSDT")
    okx = imp.read_open_interest(VENUES / "okx_rubik_open_interest_history.json", "BTCUSDT")
    for oi in (bybit, okx):
        assert (len(oi), oi[0].observed_at, oi[-1].observed_at) == (30, first, last)
        assert oi[0].open_interest == 70887.608  # base coin, not OKX's contracts
    assert bybit[0].open_interest_usd is None  # Bybit gives none: none invented
    assert okx[0].open_interest_usd == 4420877317.8768
    for name in (
        "bybit_v5_account_ratio.json",
        "okx_rubik_long_short_account_ratio.json",
        "bitget_v2_mix_account_long_short.json",
    ):
        ls = imp.read_long_short(VENUES / name, "BTCUSDT")
        assert (len(ls), ls[0].observed_at, ls[-1].observed_at) == (30, first, last), name
        assert ls[0].kind == "global_account" and ls[0].long_share == pytest.approx(
            0.6604, abs=1e-4
        )


def test_bybit_inverse_open_interest_is_read_as_usd_contracts() -> None:
    """Bybit counts an inverse contract's (BTCUSD) open interest in 1-USD contracts: it was
    read as 4.4 billion BTC. Now USD, no coin amount invented; linear stays in coins."""
    oi = imp.read_open_interest(VENUES / "bybit_v5_open_interest_inverse.json", "BTCUSD")
    assert len(oi) == 6 and oi[0].observed_at == datetime(2024, 5, 9, 16, 10, tzinfo=UTC)
    assert oi[0].open_interest is None and oi[0].open_interest_usd == 4420877317.0
    linear = imp.read_open_interest(VENUES / "bybit_v5_open_interest.json", "BTCUSDT")
    assert linear[0].open_interest == 70887.608 and linear[0].open_interest_usd is None


def test_a_market_named_only_by_the_envelope_is_checked() -> None:
    """Bybit's rows do not repeat the market its `result.symbol` names: BTCUSDT's open
    interest given for XRPUSDT was read as XRP's. Now refused naming both."""
    with pytest.raises(imp.HistoryFormatError, match="rows are of BTCUSDT, not XRPUSDT"):
        imp.read_open_interest(VENUES / "bybit_v5_open_interest.json", "XRPUSDT")
    with pytest.raises(imp.HistoryFormatError, match="rows are of XRPUSDT, not BTCUSDT"):
        imp.read_candles(VENUES / "bybit_v5_kline_XRPUSDT_60.json", "BTCUSDT")


def _cli(tmp_path: Path, *args: str) -> dict[str, dict[str, object]]:
    out = tmp_path / "out"
    argv = ["--symbol", "XRPUSDT", *args, "--out", str(out), "--no-progress", "--quiet"]
    assert backtest.main([*argv, "--jobs", "1"]) == 0
    report = json.loads((out / "report.json").read_text())
    return {s["name"]: s for s in report["sources"]}


@pytest.mark.parametrize(
    ("candles", "funding"),
    [
        ("bybit_v5_kline_XRPUSDT_60.json", "bybit_v5_funding_history.json"),
        ("okx_v5_candles.json", "okx_v5_funding_rate_history.json"),
        ("hyperliquid_candle_snapshot.json", "hyperliquid_funding_history.json"),
        ("web_candles_time_utc8.csv", "web_funding_history_time_utc.csv"),
    ],
)
def test_the_backtest_command_reads_a_venues_candles_and_funding(
    tmp_path: Path, candles: str, funding: str
) -> None:
    """The whole command: each bar observed at its close (the first at 02:00 UTC), the
    funding settlements at their times."""
    sources = _cli(tmp_path, "--candles", str(VENUES / candles), "--funding", str(VENUES / funding))
    assert sources["candles"]["events"] == 48
    assert sources["candles"]["first"] == "2021-11-17T02:00:00+00:00"
    assert sources["candles"]["last"] == "2021-11-19T01:00:00+00:00"
    assert sources["funding"]["events"] == 30
    assert str(sources["funding"]["first"]).startswith("2021-11-18T00:00:00")


def test_the_backtest_command_on_okx_mark_price_candles(tmp_path: Path) -> None:
    sources = _cli(tmp_path, "--candles", str(VENUES / "okx_v5_mark_price_candles.json"))
    assert sources["candles"]["events"] == 47
    assert sources["candles"]["last"] == "2021-11-19T00:00:00+00:00"


@pytest.mark.parametrize(
    ("body", "said"),
    [
        ({"retCode": 10001, "retMsg": "params error", "result": {}, "time": 1}, "params error"),
        ({"code": "51001", "msg": "Instrument ID does not exist", "data": []}, "51001"),
        ({"code": "40034", "msg": "Parameter does not exist", "data": None}, "40034"),
        ({"jsonrpc": "2.0", "error": {"message": "Invalid params", "code": -32602}}, "Invalid"),
        (
            {"error": {"statusCode": 400, "name": "HTTPError", "message": "Invalid symbol"}},
            "symbol",
        ),
        ({"result": "error", "error": "apiLimitExceeded", "serverTime": "2023"}, "apiLimit"),
        ({"error": ["EQuery:Unknown asset pair"]}, "Unknown asset pair"),
        ({"message": "NotFound"}, "NotFound"),
    ],
)
def test_an_api_error_saved_as_history_is_refused_with_the_venues_message(
    tmp_path: Path, body: dict[str, object], said: str
) -> None:
    """A venue's error answer saved as the file was 'JSON without a list of rows' (and
    'keys seen: ' with nothing after it for Bybit): now its own message, in one line."""
    path = tmp_path / "answer.json"
    path.write_text(json.dumps(body))
    with pytest.raises(imp.HistoryFormatError, match="error answer of the venue's API") as err:
        imp.read_candles(path)
    assert said in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize(
    "body",
    [
        [],
        {"retCode": 0, "retMsg": "OK", "result": {"category": "linear", "list": []}},
        {"code": "0", "msg": "", "data": []},
        {"jsonrpc": "2.0", "result": {"ticks": [], "open": [], "status": "no_data"}},
        {"error": [], "result": {"XXRPZUSD": [], "last": 0}},
    ],
)
def test_an_empty_answer_says_it_has_no_rows(tmp_path: Path, body: object) -> None:
    path = tmp_path / "answer.json"
    path.write_text(json.dumps(body))
    with pytest.raises(imp.HistoryFormatError, match="no rows: the answer is empty"):
        imp.read_candles(path)


def test_the_backtest_command_names_an_error_answer_in_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "bybit_kline.json"
    path.write_text(json.dumps({"retCode": 10001, "retMsg": "params error", "result": {}}))
    argv = ["--symbol", "XRPUSDT", "--candles", str(path), "--out", str(tmp_path / "o")]
    assert backtest.main([*argv, "--no-progress", "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].endswith(
        "error answer of the venue's API, not history: params error (retCode 10001); fetch it again"
    )
    assert "Traceback" not in "\n".join(err)


def test_a_file_of_another_market_is_refused_naming_both(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hyperliquid's XRP funding given for BTCUSDT was read as BTC's funding (a file of one
    market was read whatever market it named): now refused, naming both markets."""
    hl = VENUES / "hyperliquid_funding_history.json"
    with pytest.raises(imp.HistoryFormatError, match="rows are of XRP, not BTCUSDT"):
        imp.read_funding(hl, "BTCUSDT")
    spot = tmp_path / "ETHBTC-1h.json"  # ETH priced in BTC is no ETHUSDT history
    spot.write_text(json.dumps([{"symbol": "ETHBTC", "t": 1637110800000, "o": 0.07, "h": 0.071,
                                 "l": 0.069, "c": 0.07, "v": 10}]))  # fmt: skip
    with pytest.raises(imp.HistoryFormatError, match="rows are of ETHBTC, not ETHUSDT"):
        imp.read_candles(spot, "ETHUSDT")
    argv = ["--symbol", "BTCUSDT", "--candles", str(VENUES / "okx_v5_candles.json")]
    argv += ["--funding", str(hl), "--out", str(tmp_path / "o"), "--no-progress", "--quiet"]
    assert backtest.main(argv) == 2
    assert "rows are of XRP, not BTCUSDT" in capsys.readouterr().err


def test_hyperliquid_candles_of_another_coin_are_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Hyperliquid's candleSnapshot names its coin in `s`, which was not read: its XRP
    candles backtested as BTCUSDT. Now refused naming both; read for XRPUSDT as before."""
    hl = VENUES / "hyperliquid_candle_snapshot.json"
    with pytest.raises(imp.HistoryFormatError, match="rows are of XRP, not BTCUSDT"):
        imp.read_candles(hl, "BTCUSDT")
    assert len(imp.read_candles(hl, "XRPUSDT")) == 48
    argv = ["--symbol", "BTCUSDT", "--candles", str(hl)]
    argv += ["--out", str(tmp_path / "o"), "--no-progress", "--quiet"]
    assert backtest.main(argv) == 2
    assert "rows are of XRP, not BTCUSDT" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("market", "symbol"),
    [
        ("XRP", "XRPUSDT"),  # Hyperliquid's coin
        ("XRPUSD", "XRPUSDT"),  # BitMEX's quanto
        ("PF_XBTUSD", "BTCUSDT"),  # Kraken Futures
        ("XBTUSD", "BTCUSDT"),  # BitMEX
        ("BTC-PERPETUAL", "BTCUSDT"),  # Deribit
        ("BTC-USD", "BTCUSDT"),  # Coinbase
        ("kPEPE", "1000PEPEUSDT"),  # Hyperliquid's thousands
        ("XRP-USDT-SWAP", "XRPUSDT"),  # OKX
    ],
)
def test_each_venues_name_of_the_same_market_is_read(
    tmp_path: Path, market: str, symbol: str
) -> None:
    rows = [{"coin": market, "fundingRate": "0.0001", "time": 1637193600000 + k * 28_800_000}
            for k in range(3)]  # fmt: skip
    path = tmp_path / "f.json"
    path.write_text(json.dumps(rows))
    assert len(imp.read_funding(path, symbol)) == 3


def test_open_interest_or_ratios_of_another_period_are_refused_naming_both_spans(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """May 2024's open interest and long/short beside November 2021's candles were read
    without a word: every signal had those factors missing. Now refused, naming both."""
    candles = VENUES / "okx_v5_candles.json"
    for kind, name in [
        ("open_interest", "bybit_v5_open_interest.json"),
        ("long_short", "bybit_v5_account_ratio.json"),
    ]:
        with pytest.raises(imp.HistoryFormatError) as err:
            load_history("BTCUSDT", candles, **{kind: VENUES / name})
        said = str(err.value)
        assert "row falls in the candles' period" in said and name in said
        assert "2024-05-09 16:10 UTC" in said and "2021-11-17 02:00 UTC" in said
    empty = tmp_path / "oi.csv"  # every value blank: it fed nothing, without a word
    empty.write_text("timestamp,openInterest\n1637110800000,\n1637114400000,\n")
    with pytest.raises(imp.HistoryFormatError, match="it has no row with a value"):
        load_history("BTCUSDT", candles, open_interest=empty)
    argv = ["--symbol", "BTCUSDT", "--candles", str(candles), "--open-interest"]
    argv += [str(VENUES / "bybit_v5_open_interest.json"), "--out", str(tmp_path / "o")]
    assert backtest.main([*argv, "--no-progress", "--quiet"]) == 2
    assert "no open interest row falls in the candles' period" in capsys.readouterr().err


def test_the_candles_an_input_does_not_cover_are_counted_in_the_notes(tmp_path: Path) -> None:
    """Open interest for 13 of the candles' 48 hours: the other candles' factor was missing
    without a word. Now the notes count them: 22 close before its first row, 12 over an
    hour after its last. Funding of another period is said, not refused."""
    oi = tmp_path / "oi.csv"
    oi.write_text(
        "timestamp,openInterest\n"
        + "".join(f"2021-11-18T{h:02d}:00:00Z,{1000 + h}\n" for h in range(13))
    )
    h = load_history("XRPUSDT", VENUES / "okx_v5_candles.json", open_interest=oi)
    assert any(
        n.startswith("open interest: 34 of 48 1h candles have no open interest value (22 close "
                     "before its first row, 12 over one row interval after its last")
        for n in h.notes
    )  # fmt: skip
    funding = tmp_path / "funding.csv"
    funding.write_text("fundingTime,fundingRate\n2024-05-09T00:00:00Z,0.0001\n")
    h = load_history("XRPUSDT", VENUES / "okx_v5_candles.json", funding=funding)
    assert any("no funding row falls in the candles' period" in n for n in h.notes)
