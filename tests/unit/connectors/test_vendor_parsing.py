"""Parsers of OKX, Coinglass, LunarCrush, CoinAPI, CoinGecko and Fear & Greed on every body
in ../shared/data/api for the endpoints the ingestor uses."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from perpsignal_common.events.registry import decode, encode
from perpsignal_common.events.values import configure_clock_skew, max_clock_skew_s
from perpsignal_connectors.alternative_me.parsing import parse_fng
from perpsignal_connectors.alternative_me.schemas import FNG
from perpsignal_connectors.coinapi import parsing as ca_p
from perpsignal_connectors.coinapi import schemas as ca_s
from perpsignal_connectors.coingecko.parsing import parse_coins_markets
from perpsignal_connectors.coingecko.schemas import COINS_MARKETS
from perpsignal_connectors.coinglass import parsing as cg_p
from perpsignal_connectors.coinglass import schemas as cg_s
from perpsignal_connectors.lunarcrush import parsing as lc_p
from perpsignal_connectors.lunarcrush import schemas as lc_s
from perpsignal_connectors.okx.parsing import parse_candles
from perpsignal_connectors.okx.schemas import CANDLES

FAR = datetime(2100, 1, 1, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def _ms(ms: int | str) -> datetime:
    return EPOCH + timedelta(milliseconds=int(ms))


@pytest.mark.parametrize(
    "name", ["api_v5_market_candles.recorded.json", "api_v5_market_candles.fixture2.json"]
)
def test_okx_candles_oldest_first_and_only_confirmed(load, name: str) -> None:
    raw = load(f"okx/{name}")
    candles = parse_candles(CANDLES.validate_python(raw).data, "BTCUSDT", "1m")
    confirmed = sorted((r for r in raw["data"] if r[8] == "1"), key=lambda r: int(r[0]))
    assert [c.open_time for c in candles] == [_ms(r[0]) for r in confirmed]
    for c, r in zip(candles, confirmed, strict=True):
        assert c.close == float(r[4]) and c.volume == float(r[6]) and c.venue == "okx"
        assert c.observed_at == _ms(r[0]) + timedelta(minutes=1)


def test_okx_fixture_without_confirmation_publishes_nothing(load) -> None:
    raw = load("okx/api_v5_market_candles.fixture2.json")
    assert all(r[8] != "1" for r in raw["data"])
    assert parse_candles(CANDLES.validate_python(raw).data, "BTCUSDT", "1m") == []


def test_coinglass_aggregated_liquidations(load) -> None:
    raw = load("coinglass/liquidation__aggregated-liquidation-history.json")["data"]
    events = cg_p.parse_liquidation_history(
        cg_s.LIQUIDATION_AGG.validate_python(raw), "BTC", "1d", FAR
    )
    assert [e.long_liquidations_usd for e in events] == [
        r["aggregated_long_liquidation_usd"] for r in raw
    ]
    assert [e.observed_at for e in events] == [_ms(r["time"]) + timedelta(days=1) for r in raw]
    assert all(e.symbol == "BTCUSDT" and e.window_s == 86400 for e in events)
    # Coinglass reports USD sums only: the order count is unknown, not zero (it was 0)
    assert events and all(e.count is None for e in events)
    assert all(decode(encode(e)).count is None for e in events)  # type: ignore[union-attr]
    # an interval that has not ended yet is not a fact yet
    first_end = _ms(raw[0]["time"]) + timedelta(days=1)
    assert (
        len(
            cg_p.parse_liquidation_history(
                cg_s.LIQUIDATION_AGG.validate_python(raw), "BTC", "1d", first_end
            )
        )
        == 1
    )


@pytest.mark.parametrize(
    "name",
    [
        "funding-rate__fr-ohlc-histroy.json",
        "funding-rate__oi-weight-ohlc-history.json",
        "funding-rate__vol-weight-ohlc-history.json",
    ],
)
def test_coinglass_funding_percent_becomes_fraction(load, name: str) -> None:
    raw = load(f"coinglass/{name}")["data"]
    events = cg_p.parse_funding_ohlc(cg_s.OHLC.validate_python(raw), "BTC", "1d", FAR)
    assert [e.rate for e in events] == pytest.approx([float(r["close"]) / 100 for r in raw])


@pytest.mark.parametrize(
    "name",
    [
        "open-interest__oi-ohlc-aggregated-history.json",
        "open-interest__oi-ohlc-histroy.json",
        "open-interest__oi-ohlc-aggregated-stablecoin-margin-history.json",
        "open-interest__oi-ohlc-aggregated-coin-margin-history.json",
    ],
)
def test_coinglass_open_interest(load, name: str) -> None:
    # these documented examples carry illustrative times up to 2053, which a real event
    # could never have: the parser is tested with the contract's clock check widened
    previous = max_clock_skew_s()
    configure_clock_skew(100 * 365 * 86400)
    try:
        _check_coinglass_open_interest(load, name)
    finally:
        configure_clock_skew(previous)


def _check_coinglass_open_interest(load, name: str) -> None:
    raw = load(f"coinglass/{name}")["data"]
    events = cg_p.parse_oi_ohlc(cg_s.OHLC.validate_python(raw), "BTC", "1h", FAR)
    assert [e.open_interest_usd for e in events] == [float(r["close"]) for r in raw]


@pytest.mark.parametrize(
    ("name", "adapter", "kind", "prefix"),
    [
        (
            "long-short-ratio__global-longshort-account-ratio.json",
            cg_s.GLOBAL_RATIO,
            "global_account",
            "global_account",
        ),
        (
            "long-short-ratio__top-longshort-account-ratio.json",
            cg_s.TOP_ACCOUNT,
            "top_account",
            "top_account",
        ),
        (
            "long-short-ratio__top-longshort-position-ratio.json",
            cg_s.TOP_POSITION,
            "top_position",
            "top_position",
        ),
    ],
)
def test_coinglass_ratios(load, name, adapter, kind, prefix) -> None:
    raw = load(f"coinglass/{name}")["data"]
    events = cg_p.parse_ratio(adapter.validate_python(raw), "BTCUSDT", kind, "1h", FAR)
    for e, r in zip(events, raw, strict=True):
        assert e.long_share == pytest.approx(r[f"{prefix}_long_percent"] / 100)
        assert e.ratio == pytest.approx(r[f"{prefix}_long_short_ratio"], abs=0.01)


def test_coinglass_taker_flow(load) -> None:
    raw = load("coinglass/taker-buysell__aggregated-taker-buysell-volume-history.json")["data"]
    events = cg_p.parse_taker(cg_s.TAKER_AGG.validate_python(raw), "BTC", "1h", FAR)
    assert [e.buy_volume for e in events] == [r["aggregated_buy_volume_usd"] for r in raw]
    assert all(e.unit == "usd" for e in events)


def test_coinglass_ws_liquidation_side_2_is_a_short(load) -> None:
    raw = load("coinglass/ws__liquidationOrders.json")
    msg = cg_s.WS_MESSAGE.validate_python(raw)
    events = [cg_p.parse_ws_liquidation(r) for r in msg.data]
    row = raw["data"][0]
    assert row["side"] == 2 and events[0] is not None
    assert events[0].liquidated_side == "SHORT" and events[0].notional_usd == row["volUsd"]
    assert events[0].venue == "binance" and events[0].source == "coinglass"


@pytest.mark.parametrize("name", ["coins_list_v2.json", "coins_list_v1.json"])
def test_lunarcrush_coins_list(load, name: str) -> None:
    raw = load(f"lunarcrush/{name}")
    social, profiles = lc_p.parse_coins_list(lc_s.COINS_LIST.validate_python(raw))
    row = raw["data"][0]
    assert social[0].symbol == f"{row['symbol']}USDT"
    assert social[0].galaxy_score == row["galaxy_score"] and social[0].alt_rank == row["alt_rank"]
    assert social[0].sentiment == row["sentiment"]
    assert social[0].observed_at == EPOCH + timedelta(seconds=raw["config"]["generated"])
    assert profiles[0].categories == tuple(row["categories"].split(","))


def test_lunarcrush_time_series(load) -> None:
    raw = load("lunarcrush/coins_coin_time-series_v2.json")
    events = lc_p.parse_coin_series(lc_s.COIN_SERIES.validate_python(raw))
    assert [e.galaxy_score for e in events] == [p["galaxy_score"] for p in raw["data"]]
    assert events[0].symbol == f"{raw['config']['symbol']}USDT"


def test_lunarcrush_topic(load) -> None:
    raw = load("lunarcrush/topic_topic_v1.json")
    topic = lc_s.TOPIC.validate_python(raw)
    assert topic.data.types_sentiment == raw["data"]["types_sentiment"]


def test_coinapi_ohlcv(load) -> None:
    raw = load("coinapi/v1_ohlcv_symbol_id_history.json")
    events = ca_p.parse_ohlcv(ca_s.OHLCV.validate_python(raw), "BTCUSDT", "1d", FAR)
    assert [e.close for e in events] == [r["price_close"] for r in raw]
    assert events[0].observed_at == datetime.fromisoformat(
        raw[0]["time_period_end"][:19] + "+00:00"
    )


def test_coinapi_whale_trades_threshold(load) -> None:
    raw = load("coinapi/v1_trades_symbol_id_latest.json")
    trades = ca_s.TRADES.validate_python(raw)
    notionals = sorted(r["price"] * r["size"] for r in raw)
    threshold = notionals[len(notionals) // 2]
    whales = ca_p.parse_whale_trades(trades, "BTCUSDT", threshold)
    expected = [
        r for r in raw if r["price"] * r["size"] >= threshold and r["taker_side"] in ("BUY", "SELL")
    ]
    assert sorted(w.trade_id for w in whales) == sorted(r["uuid"] for r in expected)
    assert ca_p.parse_whale_trades(trades, "BTCUSDT", notionals[-1] * 2) == []


def test_coinapi_exchange_rate(load) -> None:
    raw = load("coinapi/v1_specific_rate.json")
    assert ca_s.EXCHANGE_RATE.validate_python(raw).rate == raw["rate"]


def test_coingecko_markets(load) -> None:
    raw = load("coingecko/coins_markets.json")
    events = parse_coins_markets(COINS_MARKETS.validate_python(raw))
    with_time = [r for r in raw if r.get("last_updated")]
    assert [e.coin_id for e in events] == [r["id"] for r in with_time]
    assert events[0].fdv == with_time[0]["fully_diluted_valuation"]
    assert events[0].circulating_supply == with_time[0]["circulating_supply"]
    assert events[0].symbol == with_time[0]["symbol"].upper() + "USDT"


def test_fear_greed(load) -> None:
    raw = load("alternative_me/fng_limit2.json")
    events = parse_fng(FNG.validate_python(raw))
    rows = sorted(raw["data"], key=lambda r: int(r["timestamp"]))
    assert [e.value for e in events] == [int(r["value"]) for r in rows]
    assert [e.observed_at for e in events] == [
        EPOCH + timedelta(seconds=int(r["timestamp"])) for r in rows
    ]
    assert all(
        e.symbol == "fear_greed" and e.topic == "perpsignal.market.global.v1" for e in events
    )
