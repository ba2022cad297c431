"""Binance USD-M parsers on every recorded and documented body in ../shared/data/api."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from perpsignal_connectors.binance_usdm import parsing as p
from perpsignal_connectors.binance_usdm import schemas as s

FAR_FUTURE = datetime(2100, 1, 1, tzinfo=UTC)


def _files(api_dir: Path, prefix: str) -> list[str]:
    return sorted(f.name for f in (api_dir / "binance_usdm").glob(f"{prefix}*.json"))


def _ms(ms: int | str) -> datetime:
    return datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=int(ms))


@pytest.mark.parametrize(
    ("name", "timeframe"),
    [
        ("fapi_v1_klines.recorded.json", "1m"),
        ("fapi_v1_klines.thirdparty_doc.json", "5m"),
        ("fapi_v1_markPriceKlines.doc_example.json", "1m"),
    ],
)
def test_klines_become_closed_candles(load, name: str, timeframe) -> None:
    raw = load(f"binance_usdm/{name}")
    candles = p.parse_klines(s.KLINES.validate_python(raw), "BTCUSDT", timeframe, FAR_FUTURE)
    assert len(candles) == len(raw)
    for c, row in zip(candles, raw, strict=True):
        assert c.open_time == _ms(row[0])
        # closeTime is the candle's last millisecond; the fact is complete one ms later
        assert c.observed_at == _ms(row[6]) + timedelta(milliseconds=1)
        assert (c.open, c.high, c.low, c.close) == tuple(float(x) for x in row[1:5])
        assert c.volume == float(row[5]) and c.quote_volume == float(row[7])
        assert c.trades == int(row[8]) and c.taker_buy_volume == float(row[9])
        assert c.symbol == "BTCUSDT" and c.source == "binance"
    assert len({c.event_id for c in candles}) == len(candles)


def test_forming_candle_is_not_published(load) -> None:
    raw = load("binance_usdm/fapi_v1_klines.recorded.json")
    rows = s.KLINES.validate_python(raw)
    # "now" inside the last candle: it is still forming
    now = _ms(raw[-1][0]) + timedelta(seconds=10)
    candles = p.parse_klines(rows, "BTCUSDT", "1m", now)
    assert [c.open_time for c in candles] == [_ms(r[0]) for r in raw[:-1]]


def test_repolling_gives_the_same_event_ids(load) -> None:
    raw = load("binance_usdm/fapi_v1_klines.thirdparty_doc.json")
    first = p.parse_klines(s.KLINES.validate_python(raw), "BTCUSDT", "5m", FAR_FUTURE)
    again = p.parse_klines(s.KLINES.validate_python(raw), "BTCUSDT", "5m", FAR_FUTURE)
    assert [c.event_id for c in first] == [c.event_id for c in again]
    # the same rows as 15m candles (closing at the same times, 10 minutes longer)
    longer = [[r[0] - 600_000, *r[1:]] for r in raw]
    other_tf = p.parse_klines(s.KLINES.validate_python(longer), "BTCUSDT", "15m", FAR_FUTURE)
    assert not {c.event_id for c in first} & {c.event_id for c in other_tf}


@pytest.mark.parametrize(
    ("name", "timeframe"),
    [
        ("fapi_v1_klines.doc_current.json", "5m"),  # the documented row spans a week
        ("fapi_v1_klines.recorded.json", "5m"),  # 1m rows
        ("fapi_v1_klines.thirdparty_doc.json", "15m"),  # 5m rows
    ],
)
def test_klines_of_another_interval_are_refused(load, name: str, timeframe) -> None:
    """A row whose span is not the timeframe's is no candle of it (a cache ignoring the
    query serves another interval's rows): refused, never published under its ids."""
    rows = s.KLINES.validate_python(load(f"binance_usdm/{name}"))
    with pytest.raises(ValueError, match="spans"):
        p.parse_klines(rows, "BTCUSDT", timeframe, FAR_FUTURE)


@pytest.mark.parametrize(
    "name", ["fapi_v1_premiumIndex.doc_current.json", "fapi_v1_premiumIndex.doc_example.json"]
)
def test_premium_index_gives_predicted_funding_and_mark(load, name: str) -> None:
    raw = load(f"binance_usdm/{name}")
    ev = p.parse_premium_index(s.PREMIUM_INDEX_ONE.validate_python(raw))
    assert ev.rate == float(raw["lastFundingRate"])
    assert ev.mark_price == float(raw["markPrice"])
    assert ev.index_price == float(raw["indexPrice"])
    assert ev.next_funding_at == _ms(raw["nextFundingTime"])
    assert ev.observed_at == _ms(raw["time"]) and not ev.settled
    # the bulk (no symbol) answer is a list of the same items
    assert len(s.PREMIUM_INDEX_ALL.validate_python([raw, raw])) == 2


@pytest.mark.parametrize(
    "name", ["fapi_v1_fundingRate.doc_current.json", "fapi_v1_fundingRate.doc_example.json"]
)
def test_funding_history_is_settled(load, name: str) -> None:
    raw = load(f"binance_usdm/{name}")
    events = p.parse_funding_history(s.FUNDING_RATES.validate_python(raw))
    assert [e.rate for e in events] == [float(r["fundingRate"]) for r in raw]
    assert [e.observed_at for e in events] == [_ms(r["fundingTime"]) for r in raw]
    assert all(e.settled for e in events)
    assert [e.mark_price for e in events] == [
        float(r["markPrice"]) if "markPrice" in r else None for r in raw
    ]


@pytest.mark.parametrize(
    "name", ["fapi_v1_openInterest.doc_current.json", "fapi_v1_openInterest.doc_example.json"]
)
def test_open_interest(load, name: str) -> None:
    raw = load(f"binance_usdm/{name}")
    ev = p.parse_open_interest(s.OPEN_INTEREST.validate_python(raw))
    assert ev.open_interest == float(raw["openInterest"])
    assert ev.observed_at == _ms(raw["time"]) and ev.symbol == raw["symbol"]


@pytest.mark.parametrize(
    "name",
    [
        "futures_data_openInterestHist.doc_current.json",
        "futures_data_openInterestHist.doc_example.json",
    ],
)
def test_open_interest_history(load, name: str) -> None:
    raw = load(f"binance_usdm/{name}")
    events = p.parse_open_interest_hist(s.OPEN_INTEREST_HIST.validate_python(raw), "5m")
    assert [e.open_interest for e in events] == [float(r["sumOpenInterest"]) for r in raw]
    assert [e.open_interest_usd for e in events] == [float(r["sumOpenInterestValue"]) for r in raw]
    assert [e.observed_at for e in events] == [_ms(r["timestamp"]) for r in raw]


@pytest.mark.parametrize(
    ("prefix", "kind"),
    [
        ("futures_data_globalLongShortAccountRatio", "global_account"),
        ("futures_data_topLongShortAccountRatio", "top_account"),
        ("futures_data_topLongShortPositionRatio", "top_position"),
    ],
)
def test_long_short_ratios(api_dir: Path, load, prefix: str, kind: str) -> None:
    names = _files(api_dir, prefix)
    assert len(names) == 2  # doc_current and doc_example
    for name in names:
        raw = load(f"binance_usdm/{name}")
        events = p.parse_long_short(s.LONG_SHORT.validate_python(raw), "BTCUSDT", kind, "5m")
        for ev, row in zip(events, raw, strict=True):
            assert ev.kind == kind
            assert ev.long_share == float(row["longAccount"])
            assert ev.short_share == float(row["shortAccount"])
            # ratio = long/short of the shares (the docs' own ratio column has typos)
            assert ev.ratio == pytest.approx(float(row["longAccount"]) / float(row["shortAccount"]))
            assert ev.observed_at == _ms(row["timestamp"])


@pytest.mark.parametrize(
    "name",
    [
        "futures_data_takerlongshortRatio.doc_current.json",
        "futures_data_takerlongshortRatio.doc_example.json",
    ],
)
def test_taker_flow(load, name: str) -> None:
    raw = load(f"binance_usdm/{name}")
    events = p.parse_taker_ratio(s.TAKER_RATIO.validate_python(raw), "BTCUSDT", "5m")
    for ev, row in zip(events, raw, strict=True):
        assert ev.buy_volume == float(row["buyVol"]) and ev.sell_volume == float(row["sellVol"])
        assert ev.buy_sell_ratio == pytest.approx(float(row["buyVol"]) / float(row["sellVol"]))


@pytest.mark.parametrize(
    "name", ["fapi_v1_ticker_24hr.doc_current.json", "fapi_v1_ticker_24hr.doc_example.json"]
)
def test_ticker(load, name: str) -> None:
    raw = load(f"binance_usdm/{name}")
    ev = p.parse_ticker(s.TICKER_ONE.validate_python(raw))
    assert ev.last_price == float(raw["lastPrice"])
    assert ev.quote_volume == float(raw["quoteVolume"]) and ev.trades == raw["count"]
    assert ev.observed_at == _ms(raw["closeTime"])


def test_exchange_info_universe_and_onboard_dates(load) -> None:
    raw = load("binance_usdm/fapi_v1_exchangeInfo.recorded_trimmed.json")
    info = s.EXCHANGE_INFO.validate_python(raw)
    perps = sorted(x.symbol for x in info.symbols if p.is_usdt_perpetual(x))
    expected = sorted(
        x["symbol"]
        for x in raw["symbols"]
        if x["contractType"] == "PERPETUAL" and x["quoteAsset"] == "USDT"
    )
    assert perps == expected and "BTCUSDT_220325" not in perps
    assert {x.symbol: x.onboard_date_ms for x in info.symbols} == {
        x["symbol"]: x["onboardDate"] for x in raw["symbols"]
    }


def test_force_order_sell_is_a_long_liquidation(load) -> None:
    raw = load("binance_usdm/ws_forceOrder.doc_example.json")
    ev = p.parse_force_order(s.FORCE_ORDER.validate_python(raw))
    o = raw["o"]
    assert o["S"] == "SELL" and ev.liquidated_side == "LONG"
    assert ev.price == float(o["ap"]) and ev.quantity == float(o["z"])
    assert ev.notional_usd == pytest.approx(float(o["ap"]) * float(o["z"]))
    assert ev.observed_at == _ms(o["T"]) and ev.symbol == o["s"]
    flipped = {**raw, "o": {**o, "S": "BUY"}}
    assert p.parse_force_order(s.FORCE_ORDER.validate_python(flipped)).liquidated_side == "SHORT"


@pytest.mark.parametrize("side", ["", "UNKNOWN", "LIQUIDATION", None])
def test_a_force_order_without_a_known_side_is_refused(load, side) -> None:
    """Only a SELL order liquidates a long and only a BUY order a short: any other side was
    read as a short liquidation, a side Binance never said."""
    raw = load("binance_usdm/ws_forceOrder.doc_example.json")
    odd = {**raw, "o": {**raw["o"], "S": side}}
    with pytest.raises(ValueError):
        p.parse_force_order(s.FORCE_ORDER.validate_python(odd))


def test_kline_stream_only_closed(load) -> None:
    raw = load("binance_usdm/ws_kline.doc_example.json")
    closed = p.parse_kline_stream(s.KLINE_STREAM.validate_python(raw))
    assert closed is not None and closed.close == float(raw["k"]["c"])
    assert closed.observed_at == _ms(raw["k"]["T"]) + timedelta(milliseconds=1)
    forming = {**raw, "k": {**raw["k"], "x": False}}
    assert p.parse_kline_stream(s.KLINE_STREAM.validate_python(forming)) is None


def test_a_kline_stream_message_spanning_another_interval_is_refused(load) -> None:
    raw = load("binance_usdm/ws_kline.doc_example.json")
    longer = {**raw, "k": {**raw["k"], "t": raw["k"]["t"] - 60_000}}  # one minute more
    with pytest.raises(ValueError, match="spans"):
        p.parse_kline_stream(s.KLINE_STREAM.validate_python(longer))


@pytest.mark.parametrize(
    ("adapter", "body"),
    [
        (s.KLINES, [[1, "x"]]),
        (s.PREMIUM_INDEX_ALL, [{"symbol": "BTCUSDT", "markPrice": {}}]),
        (
            s.LONG_SHORT,
            [
                {
                    "longAccount": "1.7",
                    "shortAccount": "0.3",
                    "longShortRatio": "1",
                    "timestamp": "1",
                }
            ],
        ),
        (s.EXCHANGE_INFO, {"serverTime": 1}),
    ],
)
def test_wrong_shapes_are_rejected(adapter, body) -> None:
    from pydantic import ValidationError

    with pytest.raises(ValidationError):
        adapter.validate_python(body)
