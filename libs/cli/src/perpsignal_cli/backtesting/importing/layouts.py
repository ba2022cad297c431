"""The table of accepted shapes: per input kind its canonical fields, every column name that
means each, and the whole-file and header-less layouts (see `importers` for the list)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from perpsignal_cli.backtesting.importing.base import norm


@dataclass(frozen=True)
class Field:
    """A canonical field and the column names that mean it, first match wins.

    An alias written `name*0.01` is scaled (a percent column becomes a fraction).
    """

    name: str
    aliases: tuple[str, ...]
    required: bool = False

    def names(self) -> list[tuple[str, float]]:
        """Return (normalised alias, scale) pairs."""
        out = []
        for alias in self.aliases:
            base, _, scale = alias.partition("*")
            out.append((norm(base), float(scale) if scale else 1.0))
        return out


@dataclass(frozen=True)
class Layout:
    """A whole-file shape that the per-field aliases alone would misread.

    `when` (normalised column names) must all be present; `columns` then fixes the fields
    listed (`"rate": "open"`, `"rate": "close*0.01"`); the other fields use the aliases.
    For header-less rows (`width` set), `columns` maps fields to positions instead.
    """

    name: str
    columns: Mapping[str, str | int]
    when: frozenset[str] = frozenset()
    width: int | None = None
    # its candle times are the bars' close (BitMEX): read_candles moves them to the open
    close_stamped: bool = False


@dataclass(frozen=True)
class Kind:
    """One input kind: its fields, whole-file layouts and header-less layouts."""

    fields: tuple[Field, ...]
    layouts: tuple[Layout, ...] = ()

    def field_names(self) -> list[str]:
        """Return the canonical field names."""
        return [f.name for f in self.fields]


# the market a row belongs to, in files that hold several (API dumps of every symbol, CCXT
# dicts, BitMEX buckets): such a file is read for the asked symbol's rows only (`_load`)
_SYMBOL = Field("symbol", ("symbol", "instId", "instrument_name", "pair", "coin", "ticker"))


_TIME = Field(
    "time",
    (
        "open_time",
        "timeOpen",  # CoinMarketCap's download, whose `timestamp` is the bar's last instant
        "time",
        "timestamp",
        # an epoch column before a date text beside it (CryptoDataDownload's `Unix
        # Timestamp` and `Date`, the latter written `2021-11-15 06-PM` in hourly files)
        "unix",
        "unix_timestamp",
        "date",
        "datetime",
        "ts",
        "t",
        "start_time",
        "startTime",
        "create_time",
        "calc_time",
        "fundingTime",
        "funding_time",
        "fundingRateTimestamp",
        "ticks",  # Deribit chart data
        "start",  # Coinbase Advanced Trade candles
        "startedAt",  # dYdX v4 indexer candles
        "time_ms",
        "index",  # pandas' JSON keyed by a DatetimeIndex
    ),
    required=True,
)


# Column positions of header-less candle rows, by width: Binance klines (REST and the
# data.binance.vision files), OKX /api/v5/market/(history-)candles, Bybit /v5/market/kline,
# CCXT fetch_ohlcv and freqtrade's JSON.
_BINANCE_KLINE = {
    "time": 0,
    "open": 1,
    "high": 2,
    "low": 3,
    "close": 4,
    "volume": 5,
    "quote_volume": 7,
}


_OKX_CANDLE = {
    "time": 0,
    "open": 1,
    "high": 2,
    "low": 3,
    "close": 4,
    "volume": 6,
    "quote_volume": 7,
    "confirm": 8,
}


_BYBIT_KLINE = {
    "time": 0,
    "open": 1,
    "high": 2,
    "low": 3,
    "close": 4,
    "volume": 5,
    "quote_volume": 6,
}


_CCXT_OHLCV = {"time": 0, "open": 1, "high": 2, "low": 3, "close": 4, "volume": 5}


# Coinbase Exchange /products/{id}/candles: six values too, low and high before open and close
_COINBASE_CANDLE = {"time": 0, "low": 1, "high": 2, "open": 3, "close": 4, "volume": 5}


# Bitfinex /v2/candles: six values, the close before the high and the low
_BITFINEX_CANDLE = {"time": 0, "open": 1, "close": 2, "high": 3, "low": 4, "volume": 5}


# KuCoin spot /api/v1/market/candles: seven, open-close-high-low, then volume and turnover
_KUCOIN_CANDLE = {
    "time": 0,
    "open": 1,
    "close": 2,
    "high": 3,
    "low": 4,
    "volume": 5,
    "quote_volume": 6,
}


# Kraken /0/public/OHLC: eight, the VWAP between the close and the volume, a trade count last
_KRAKEN_OHLC = {"time": 0, "open": 1, "high": 2, "low": 3, "close": 4, "volume": 6}


# MetaTrader 4's history export: the date and the time of day in two columns, then OHLCV
_METATRADER4 = {
    "day": 0,
    "time": 1,
    "open": 2,
    "high": 3,
    "low": 4,
    "close": 5,
    "volume": 6,
}

KINDS: dict[str, Kind] = {
    "candles": Kind(
        fields=(
            _TIME,
            # the date when the time column holds only a time of day (MetaTrader 5's
            # `<DATE>`, `<TIME>`; `Date,Time,...` of many tools): they are read together
            Field("day", ("date", "day")),
            Field("open", ("open", "o", "open_price", "openPrice"), required=True),
            Field("high", ("high", "h", "high_price", "highPrice"), required=True),
            Field("low", ("low", "l", "low_price", "lowPrice"), required=True),
            # Investing.com calls the close `Price`
            Field("close", ("close", "c", "close_price", "closePrice", "price"), required=True),
            # OKX names base volume volCcy / vol_ccy; its `vol` counts contracts
            Field(
                "volume",
                (
                    "volume",
                    "volCcy",
                    "base_volume",
                    "volume_base",
                    "vol",
                    "v",
                    "volumefrom",
                    "baseTokenVolume",  # dYdX v4
                ),
            ),
            Field(
                "quote_volume",
                (
                    "quote_volume",
                    "quote_asset_volume",
                    "quoteVolume",
                    "volume_usd",
                    "volume_quote",
                    "turnover",
                    "cost",  # Deribit chart data (USD)
                    "volCcyQuote",
                    "vol_quote",
                    "quote_vol",
                    "volumeto",  # CryptoCompare histo* (the quote currency)
                    "usdVolume",  # dYdX v4
                ),
            ),
            Field("confirm", ("confirm",)),  # OKX: "0" = the bar is still open
            # Hyperliquid's candleSnapshot (and Binance's kline stream) name the coin `s`:
            # unread, another coin's candles were taken for --symbol's
            Field("symbol", (*_SYMBOL.aliases, "s")),
        ),
        layouts=(
            Layout("Binance klines (12 columns)", _BINANCE_KLINE, width=12),
            Layout("OKX candles (9 columns)", _OKX_CANDLE, width=9),
            Layout("Bybit kline (7 columns)", _BYBIT_KLINE, width=7),
            Layout("KuCoin candles (7 columns, open-close-high-low)", _KUCOIN_CANDLE, width=7),
            Layout("MetaTrader 4 history (7 columns: date, time, OHLCV)", _METATRADER4, width=7),
            Layout("Kraken OHLC (8 columns)", _KRAKEN_OHLC, width=8),
            # CoinGecko /coins/{id}/ohlc: no volume (none is invented: 0, and the notes say so)
            Layout(
                "CoinGecko OHLC (5 columns)",
                {"time": 0, "open": 1, "high": 2, "low": 3, "close": 4},
                width=5,
            ),
            # OKX /api/v5/market/(history-)mark-price-candles and index-candles: no volume,
            # the `confirm` flag last (text "0"/"1"); read as CCXT's rows, every bar's volume
            # was 1 and the bar still open was kept
            Layout(
                "OKX mark/index-price candles (6 columns, confirm last)",
                {"time": 0, "open": 1, "high": 2, "low": 3, "close": 4, "confirm": 5},
                width=6,
            ),
            # same width, other orders: the first under which every head row is a possible bar
            Layout("CCXT / freqtrade OHLCV (6 columns)", _CCXT_OHLCV, width=6),
            Layout("Coinbase Exchange candles (6 columns)", _COINBASE_CANDLE, width=6),
            Layout("Bitfinex candles (6 columns, open-close-high-low)", _BITFINEX_CANDLE, width=6),
            # BitMEX /trade/bucketed (its API answer and the CSVs made from it): `timestamp`
            # is the bin's END, `volume` counts contracts and `turnover` is in satoshis, so
            # the base and quote volumes are its home and foreign notionals
            Layout(
                "BitMEX trade/bucketed (stamped at the bar's close)",
                {"volume": "homeNotional", "quote_volume": "foreignNotional"},
                frozenset({"timestamp", "symbol", "homenotional", "foreignnotional"}),
                close_stamped=True,
            ),
        ),
    ),
    "funding": Kind(
        fields=(
            # the settlement's time first: a ticker recording's rows carry the predicted
            # rate of the next settlement, one per settlement once repeats are dropped
            Field(
                "time",
                (
                    "fundingTime",
                    "funding_time",
                    "fundingRateTimestamp",
                    "funding_timestamp",
                    "next_funding_time",
                    "nextFundingTime",
                    "effectiveAt",  # dYdX v4 historicalFunding (hourly)
                    *_TIME.aliases,
                ),
                required=True,
            ),
            # OKX history: realizedRate is the settled rate, fundingRate the forecast;
            # Kraken Futures: relativeFundingRate is the rate, fundingRate USD per contract
            Field(
                "rate",
                (
                    "realizedRate",
                    "relativeFundingRate",
                    "real_funding_rate",
                    "rate",
                    "fundingRate",
                    "funding_rate",
                    "last_funding_rate",
                ),
                required=True,
            ),
            Field("mark_price", ("markPrice", "mark_price")),
            Field("interval_h", ("funding_interval_hours", "interval_h", "fundingIntervalHour")),
            _SYMBOL,
        ),
        layouts=(
            # freqtrade stores funding as OHLCV candles with the rate in `open`
            Layout(
                "freqtrade funding (rate in open)",
                {"rate": "open"},
                frozenset({"date", "open", "volume"}),
            ),
            # Coinglass v4 /api/futures/funding-rate/(oi-weight-)history: OHLC in percent
            Layout(
                "Coinglass funding OHLC (percent)",
                {"rate": "close*0.01"},
                frozenset({"time", "open", "close"}),
            ),
            # Deribit get_funding_rate_history: a row per hour; interest_1h is that hour's
            # rate, interest_8h the same scaled to 8 h (the engine scales by the interval it
            # sees between rows: reading interest_8h would count it eight times over)
            Layout(
                "Deribit funding history (interest_1h)",
                {"rate": "interest_1h"},
                frozenset({"timestamp", "interest1h", "interest8h"}),
            ),
            Layout("[time, rate] rows", {"time": 0, "rate": 1}, width=2),
            Layout("freqtrade funding JSON (rate in open)", {"time": 0, "rate": 1}, width=6),
        ),
    ),
    "open_interest": Kind(
        fields=(
            _TIME,
            Field(
                "open_interest",
                (
                    "sumOpenInterest",
                    "sum_open_interest",
                    "open_interest",
                    "openInterest",
                    "openInterestAmount",
                    "oiCcy",
                    "oi_base",
                ),
            ),
            Field(
                "open_interest_usd",
                (
                    "sumOpenInterestValue",
                    "sum_open_interest_value",
                    "open_interest_usd",
                    "openInterestValue",
                    "oi_usd",
                    "oiUsd",
                    "open_interest_value",
                    "close",  # Coinglass v4 open-interest OHLC history (USD)
                ),
            ),
            _SYMBOL,
        ),
        layouts=(
            # OKX /api/v5/rubik/stat/contracts/open-interest-history: [ts, oi, oiCcy, oiUsd]
            Layout(
                "OKX open-interest-history",
                {"time": 0, "open_interest": 2, "open_interest_usd": 3},
                width=4,
            ),
            # OKX /api/v5/rubik/stat/contracts/open-interest-volume: [ts, oi (USD), vol (USD)]
            Layout("OKX open-interest-volume", {"time": 0, "open_interest_usd": 1}, width=3),
        ),
    ),
    "long_short": Kind(
        fields=(
            _TIME,
            Field(
                "global_long_share",
                (
                    "globalLongAccount",
                    "global_long_account",
                    "longAccount",
                    "long_account",
                    "buyRatio",
                    "longAccountRatio",  # Bitget account-long-short
                    "global_account_long_percent*0.01",
                ),
            ),
            Field(
                "global_ratio",
                (
                    "globalLongShortRatio",
                    "count_long_short_ratio",
                    "global_long_short_ratio",
                    "global_account_long_short_ratio",
                    "longShortRatio",
                    "long_short_ratio",
                    "longShortAcctRatio",
                    "longShortAccountRatio",  # Bitget
                    "ratio",
                ),
            ),
            Field(
                "top_account_long_share",
                ("topLongAccount", "top_long_account", "top_account_long_percent*0.01"),
            ),
            Field(
                "top_account_ratio",
                (
                    "topAccLongShortRatio",
                    "count_toptrader_long_short_ratio",
                    "top_account_ratio",
                    "top_account_long_short_ratio",
                ),
            ),
            Field(
                "top_position_long_share",
                (
                    "longPosition",
                    "long_position",
                    "top_long_position",
                    "top_position_long_percent*0.01",
                ),
            ),
            Field(
                "top_position_ratio",
                (
                    "topPosLongShortRatio",
                    "sum_toptrader_long_short_ratio",
                    "top_position_ratio",
                    "top_position_long_short_ratio",
                    "longShortPosRatio",
                ),
            ),
            _SYMBOL,
        ),
        layouts=(
            # OKX /api/v5/rubik/stat/contracts/long-short-account-ratio: [ts, ratio]
            Layout("[time, long/short ratio] rows", {"time": 0, "global_ratio": 1}, width=2),
        ),
    ),
    "fear_greed": Kind(
        fields=(
            _TIME,
            Field("value", ("value", "fng_value", "fear_greed"), required=True),
            Field("classification", ("value_classification", "classification")),
        ),
        layouts=(Layout("[time, value] rows", {"time": 0, "value": 1}, width=2),),
    ),
    # Liquidations: single orders (Binance forceOrder fields and its liquidationSnapshot
    # files, Coinglass liquidation-order / liquidationOrders) or per-interval totals
    # (Coinglass liquidation history, aggregated too). A file needs a time and either the
    # side of each order or long/short totals: a list without sides (Hyperliquid's public
    # liquidations.csv) cannot say which side was forced out, and is refused
    "liquidations": Kind(
        fields=(
            Field("time", ("T", *_TIME.aliases, "E"), required=True),
            Field(
                "side",
                ("liquidated_side", "position_side", "side", "direction"),
            ),
            Field("price", ("average_price", "ap", "avg_price", "avgPrice", "price", "p")),
            Field(
                "quantity",
                (
                    "accumulated_fill_quantity",
                    "z",
                    "executed_qty",
                    "executedQty",
                    "quantity",
                    "qty",
                    "original_quantity",
                    "q",
                    "size",
                    "sz",
                    "amount",
                ),
            ),
            Field(
                "notional_usd",
                (
                    "usd_value",
                    "volUsd",
                    "vol_usd",
                    "notional_usd",
                    "notional",
                    "value_usd",
                    "usd",
                    "liquidated_ntl_pos",
                ),
            ),
            Field(
                "long_usd",
                (
                    "long_liquidation_usd",
                    "aggregated_long_liquidation_usd",
                    "longLiquidationUsd",
                    "long_liquidations_usd",
                    "longVolUsd",
                    "long_usd",
                ),
            ),
            Field(
                "short_usd",
                (
                    "short_liquidation_usd",
                    "aggregated_short_liquidation_usd",
                    "shortLiquidationUsd",
                    "short_liquidations_usd",
                    "shortVolUsd",
                    "short_usd",
                ),
            ),
            Field("window_s", ("window_s", "interval_s")),
            Field("symbol", ("symbol", "instId", "pair")),
            Field("exchange", ("exchange_name", "exName", "exchange", "venue")),
        ),
    ),
    # Social: LunarCrush coin time series (v1/v2 `coins/<coin>/time-series`)
    "social": Kind(
        fields=(
            _TIME,
            Field("galaxy_score", ("galaxy_score", "galaxyScore")),
            Field("sentiment", ("sentiment", "average_sentiment", "sentiment_pct")),
            Field("alt_rank", ("alt_rank", "altRank")),
            Field("social_dominance", ("social_dominance", "socialDominance")),
            Field("interactions_24h", ("interactions", "interactions_24h")),
            Field("social_volume_24h", ("social_volume_24h", "social_volume", "posts_active")),
            Field("social_volume_change_pct", ("social_volume_change_pct",)),
        ),
    ),
    # Taker buy/sell volume: Binance USD-M /futures/data/takerlongshortRatio (base units),
    # Coinglass taker buy/sell volume history (USD; aggregated or per exchange), OKX
    # rubik taker-volume rows [ts, sellVol, buyVol]
    "taker_flow": Kind(
        fields=(
            _TIME,
            Field(
                "buy_volume",
                ("buyVol", "buy_vol", "buy_volume", "taker_buy_volume", "takerBuyVolume"),
            ),
            Field(
                "sell_volume",
                ("sellVol", "sell_vol", "sell_volume", "taker_sell_volume", "takerSellVolume"),
            ),
            Field(
                "buy_volume_usd",
                (
                    "aggregated_buy_volume_usd",
                    "taker_buy_volume_usd",
                    "buy_volume_usd",
                    "buyVolUsd",
                    "buy_usd",
                ),
            ),
            Field(
                "sell_volume_usd",
                (
                    "aggregated_sell_volume_usd",
                    "taker_sell_volume_usd",
                    "sell_volume_usd",
                    "sellVolUsd",
                    "sell_usd",
                ),
            ),
            _SYMBOL,
        ),
        layouts=(
            Layout(
                "OKX taker-volume [ts, sellVol, buyVol]",
                {"time": 0, "sell_volume": 1, "buy_volume": 2},
                width=3,
            ),
        ),
    ),
}


# long/short kind -> (share-of-longs field, ratio field)
LS_KINDS = {
    "global_account": ("global_long_share", "global_ratio"),
    "top_account": ("top_account_long_share", "top_account_ratio"),
    "top_position": ("top_position_long_share", "top_position_ratio"),
}
