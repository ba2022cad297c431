"""Importers: history files as venues and exporters publish them -> typed market events.

What a file may look like is declared as data, once, in `KINDS`: per input kind (candles,
funding, open interest, long/short, fear & greed, liquidations, social, taker flow) the canonical
fields, every column name that means each field (Binance, OKX, Bybit, Coinglass v4, CCXT,
freqtrade, Binance's public data files, LunarCrush), the percent columns to scale, and the
header-less row layouts (arrays by position). Names are compared normalised (lower case,
letters and digits only), so `open_time`, `openTime` and `Open Time` are one name, and
`Open Interest (USD)` is `open_interest_usd`; a column spelled exactly like a name wins over
one that only normalises to it (Hyperliquid's `t` is the open time, its `T` the close time).
Files may be:

* CSV, with or without a header;
* JSON: a list of objects, a list of arrays, or a venue envelope (`{"data": [...]}` of
  Binance/OKX/Coinglass, `{"result": {"list": [...]}}` of Bybit, any object holding one list
  of rows such as Kraken Futures' `candles`), or column arrays (Deribit); gzip-compressed JSON too
  (freqtrade's `.json.gz`), and JSON lines;
* feather (Arrow IPC v1/v2, LZ4/ZSTD compressed too; freqtrade's default) and parquet
  (freqtrade's other format, and most research exporters'), read with pyarrow.

Times may be epoch s/ms/us/ns (per value, by magnitude), ISO strings or spreadsheet dates
(slash dates day or month first as each file proves, or `--date-order` says: see
`_with_date_order`); everything becomes aware UTC. Anything else is covered by an explicit
mapping (`perpsignal backtest --columns close=c,time=ts`), and a file that matches no layout
fails naming the columns it has and the names accepted for each missing field. Event ids are
deterministic (`deterministic_id`); `observed_at` is when the value became known: a candle's
close time, a point's own time.
"""

from __future__ import annotations

import collections
import contextlib
import contextvars
import csv
import dataclasses
import email.utils
import functools
import gzip
import io
import itertools
import json
import logging
import re
import time
import zipfile
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, ParamSpec, TypeVar

import numpy as np
import pydantic

from perpsignal_common.events.base import deterministic_id
from perpsignal_common.events.market import (
    TIMEFRAME_SECONDS,
    CandleClosedV1,
    FearGreedV1,
    FundingRateV1,
    LiquidationBucketV1,
    LiquidationOrderV1,
    LongShortRatioV1,
    OpenInterestV1,
    SocialMetricsV1,
    TakerFlowV1,
)
from perpsignal_common.events.values import (
    MAX_AMOUNT,
    MAX_PRICE,
    MIN_EVENT_TIME,
    MIN_PRICE,
    max_clock_skew_s,
)
from perpsignal_domain.trusted import trusted

log = logging.getLogger(__name__)

SOURCE = "history"


class HistoryFormatError(ValueError):
    """A history file cannot be read as the shape it was given as."""


_P = ParamSpec("_P")
_R = TypeVar("_R")


def _contract_errors_named(fn: Callable[_P, _R]) -> Callable[_P, _R]:
    """Turn a row that breaks the event contract into a HistoryFormatError naming the file.

    The events' value rules (finite numbers, price bounds, times between 2009 and now) are the
    same as on the bus, so an export with such a row fails here with the reason, not a traceback.
    """

    @functools.wraps(fn)
    def wrapped(*args: _P.args, **kwargs: _P.kwargs) -> _R:
        try:
            return fn(*args, **kwargs)
        except HistoryFormatError as exc:
            path = args[0] if args else kwargs.get("path")
            if str(path) in str(exc):
                raise
            raise HistoryFormatError(f"{path}: {exc}") from None
        except pydantic.ValidationError as exc:
            path = args[0] if args else kwargs.get("path")
            first = exc.errors()[0]
            where = ".".join(str(x) for x in first.get("loc", ())) or exc.title
            raise HistoryFormatError(
                f"{path}: a row breaks the event contract ({exc.title}.{where}: {first['msg']})"
            ) from exc

    return wrapped


def norm(name: str) -> str:
    """Return a column name normalised for matching (`Open Time (UTC)` -> `opentimeutc`)."""
    return re.sub(r"[^a-z0-9]+", "", name.strip().lower())


# ---------------------------------------------------------------------------------------
# The table of accepted shapes
# ---------------------------------------------------------------------------------------


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

KINDS: dict[str, Kind] = {
    "candles": Kind(
        fields=(
            _TIME,
            Field("open", ("open", "o", "open_price", "openPrice"), required=True),
            Field("high", ("high", "h", "high_price", "highPrice"), required=True),
            Field("low", ("low", "l", "low_price", "lowPrice"), required=True),
            Field("close", ("close", "c", "close_price", "closePrice"), required=True),
            # OKX names base volume volCcy / vol_ccy; its `vol` counts contracts
            Field(
                "volume",
                ("volume", "volCcy", "base_volume", "volume_base", "vol", "v", "volumefrom"),
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
                ),
            ),
            Field("confirm", ("confirm",)),  # OKX: "0" = the bar is still open
            _SYMBOL,
        ),
        layouts=(
            Layout("Binance klines (12 columns)", _BINANCE_KLINE, width=12),
            Layout("OKX candles (9 columns)", _OKX_CANDLE, width=9),
            Layout("Bybit kline (7 columns)", _BYBIT_KLINE, width=7),
            Layout("KuCoin candles (7 columns, open-close-high-low)", _KUCOIN_CANDLE, width=7),
            Layout("Kraken OHLC (8 columns)", _KRAKEN_OHLC, width=8),
            # CoinGecko /coins/{id}/ohlc: no volume (none is invented: 0, and the notes say so)
            Layout(
                "CoinGecko OHLC (5 columns)",
                {"time": 0, "open": 1, "high": 2, "low": 3, "close": 4},
                width=5,
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


# ---------------------------------------------------------------------------------------
# Explicit column mapping (`--columns`)
# ---------------------------------------------------------------------------------------

ColumnMap = dict[str, dict[str, str]]  # kind ("*" = every kind) -> field -> column spec
_OVERRIDES: contextvars.ContextVar[ColumnMap | None] = contextvars.ContextVar(
    "columns", default=None
)


def parse_column_map(specs: Iterable[str]) -> ColumnMap:
    """Parse `field=column` pairs (comma-separated, repeatable) into a column map.

    `kind.field=column` limits a pair to one input kind (`funding.rate=fr`); a column may be
    a header name or a 0-based position (`close=4`) and may carry a scale (`rate=fr*0.01`).
    """
    out: ColumnMap = {}
    every = {f for k in KINDS.values() for f in k.field_names()}
    for spec in specs:
        for pair in filter(None, (p.strip() for p in spec.split(","))):
            key, sep, column = pair.partition("=")
            if not sep or not key.strip() or not column.strip():
                raise HistoryFormatError(f"--columns: {pair!r} is not field=column")
            kind, _, name = key.strip().rpartition(".")
            kind = kind or "*"
            known = set(KINDS[kind].field_names()) if kind in KINDS else every
            if kind != "*" and kind not in KINDS:
                raise HistoryFormatError(f"--columns: unknown kind {kind!r} ({', '.join(KINDS)})")
            if name not in known:
                raise HistoryFormatError(
                    f"--columns: unknown field {name!r}; fields: {', '.join(sorted(known))}"
                )
            out.setdefault(kind, {})[name] = column.strip()
    return out


@dataclass
class _ColumnUse:
    """Which unprefixed `--columns` pairs a file had, and the columns of those that had not."""

    found: set[str] = field(default_factory=set)  # fields
    lacking: dict[str, dict[str, str]] = field(default_factory=dict)  # field -> file -> columns

    def note(self, name: str, path: Path, header: list[str] | None, found: bool) -> None:
        if found:
            self.found.add(name)
            return
        columns = ", ".join(header) if header is not None else "rows without a header"
        self.lacking.setdefault(name, {})[path.name] = columns


_COLUMN_USE: contextvars.ContextVar[_ColumnUse | None] = contextvars.ContextVar(
    "column_use", default=None
)
_CHECK_UNUSED: contextvars.ContextVar[bool] = contextvars.ContextVar("check_unused", default=True)


@contextlib.contextmanager
def column_overrides(mapping: ColumnMap) -> Iterator[None]:
    """Apply an explicit column map to every read inside the block (the CLI's `--columns`).

    An unprefixed pair applies to every file that has its column (`time=ts` may be meant for
    the candles only); one that no file read inside the block had (a typo, `close=clsoe`)
    is refused when the block ends, naming the columns the files have: it was ignored, and
    the field read from another column. `columns_checked_elsewhere` turns the check off.
    """
    use = _ColumnUse()
    token, use_token = _OVERRIDES.set(mapping), _COLUMN_USE.set(use)
    try:
        yield
    finally:
        _OVERRIDES.reset(token)
        _COLUMN_USE.reset(use_token)
    # reached only when the block ended without an exception
    unused = [(n, c) for n, c in mapping.get("*", {}).items() if n not in use.found]
    if unused and _CHECK_UNUSED.get():
        name, column = unused[0]
        files = "; ".join(f"{f}: {cols}" for f, cols in use.lacking.get(name, {}).items())
        raise HistoryFormatError(
            f"--columns {name}={column}: no input file has the column {_spec(column)[0]!r} "
            f"({files or f'no input is read for {name}'})"
        )


@contextlib.contextmanager
def columns_checked_elsewhere() -> Iterator[None]:
    """Read with `--columns` pairs a file may not use without refusing them: one symbol's
    run of a many-symbol backtest, whose plan checked them against every input."""
    token = _CHECK_UNUSED.set(False)
    try:
        yield
    finally:
        _CHECK_UNUSED.reset(token)


DATE_ORDERS = ("dmy", "mdy")
_DATE_ORDER: contextvars.ContextVar[str | None] = contextvars.ContextVar("date_order", default=None)


@contextlib.contextmanager
def date_order(order: str | None) -> Iterator[None]:
    """Read slash dates (`01/02/2024`) of every file inside the block day first (`dmy`) or
    month first (`mdy`): the CLI's `--date-order`, for files whose rows do not tell."""
    if order is not None and order not in DATE_ORDERS:
        raise HistoryFormatError(f"--date-order: {order!r} is none of {', '.join(DATE_ORDERS)}")
    token = _DATE_ORDER.set(order)
    try:
        yield
    finally:
        _DATE_ORDER.reset(token)


# ---------------------------------------------------------------------------------------
# Reading files into rows
# ---------------------------------------------------------------------------------------


@dataclass
class Table:
    """A file as a header (None when rows are positional) and its rows."""

    header: list[str] | None
    rows: Iterable[Sequence[Any]]
    what: str  # "CSV", "JSON", ...
    # a streamed CSV: the line number of the row last read (for errors naming the line)
    line: Callable[[], int] | None = None


def _csv_rows(reader: Iterator[list[str]], where: str, comma: bool) -> Iterator[list[str]]:
    """The non-empty rows of `reader`; a line the csv module refuses (a field past its
    128 KiB limit: a binary blob, a 2 GB line) or bytes that are no text further down
    the file are a HistoryFormatError, not a traceback.
    `comma`: numbers have a decimal comma (`1,5`, `1.234,5`), made `1.5`, `1234.5`."""
    try:
        if comma:
            for row in reader:
                if row:
                    yield [_point(c) if _DECIMAL_COMMA.fullmatch(c) else c for c in row]
        else:
            yield from filter(None, reader)
    except csv.Error as exc:
        line = getattr(reader, "line_num", "?")
        raise HistoryFormatError(f"{where}line {line} is not a CSV row ({exc})") from None
    except UnicodeDecodeError as exc:
        line = getattr(reader, "line_num", "?")
        raise HistoryFormatError(f"{where}not text after line {line} ({exc})") from None


_DECIMAL_COMMA = re.compile(r"\s*[+-]?\d{1,3}(\.\d{3})*,\d+\s*|\s*[+-]?\d+,\d+\s*")


def _point(cell: str) -> str:
    return cell.replace(".", "").replace(",", ".")


def _delimiter(lines: Sequence[str]) -> str:
    """The cell separator of a CSV's first lines: `,`, or `;` (a spreadsheet saved where the
    comma is the decimal mark), tab or `|` when a line has more of those than commas."""
    best = ","
    for line in lines:
        counts = {d: line.count(d) for d in (";", "\t", "|")}
        other = max(counts, key=counts.__getitem__)
        if counts[other] and counts[other] >= line.count(","):
            return other
        if line.count(","):
            return best
    return best


def _csv_table(text: Iterable[str], path: Path | None = None) -> Table:
    where = f"{path}: " if path is not None else ""
    lines = iter(text)
    head = list(itertools.islice(lines, 5))
    delimiter = _delimiter([ln for ln in head if ln.strip()])
    reader = csv.reader(itertools.chain(head, lines), delimiter=delimiter)
    rows = _csv_rows(reader, where, comma=delimiter == ";")
    # skip a banner line some exporters put above the header (a URL, a title)
    first = next((row for row in rows if len(row) > 1), None)
    if first is None:
        raise HistoryFormatError("empty file")
    rest = rows
    if not _is_data_row(first):
        header = [c.strip() for c in first]
        if not header[0]:  # pandas writes its index unnamed: often the times
            header[0] = "index"
        return Table(header, rest, "CSV", lambda: reader.line_num)
    return Table(None, itertools.chain([first], rest), "CSV", lambda: reader.line_num)


def _is_data_row(row: Sequence[str]) -> bool:
    """Return True when a CSV's first row is data: it starts with a number, or with a date
    text followed by numbers (a header names its columns)."""
    try:
        float(row[0])
        return True
    except ValueError:
        pass
    if _date_text(row[0].strip()) is None and not _SLASH_DATE.match(row[0]):
        return False
    numbers = 0
    for cell in row[1:]:
        with contextlib.suppress(ValueError):
            float(cell)
            numbers += 1
    return numbers * 2 >= len(row) - 1


def _unwrap(body: Any) -> Any:
    """Return the rows of a venue envelope (Binance/OKX/Coinglass `data`, Bybit `result`).

    Also the one list of rows an envelope holds under another name (Kraken Futures' and
    Coinbase's `candles`), and rows zipped from column arrays of one length (Deribit's chart
    data: `ticks`, `open`, ... side by side).
    """
    for _ in range(3):
        if not isinstance(body, dict):
            return body
        columns, data = body.get("columns"), body.get("data")
        if isinstance(columns, list) and isinstance(data, list):  # pandas orient="split"
            return [dict(zip(columns, r, strict=False)) for r in data if isinstance(r, list)]
        inner = list(body.values())
        if len(inner) >= 2 and all(isinstance(v, dict) and v for v in inner):
            # pandas' default orient="columns": {column: {index: value}}, the index kept
            keys = list(inner[0])
            if all(list(v) == keys for v in inner):
                return [{"index": k, **{c: body[c][k] for c in body}} for k in keys]
        # any spelling: CryptoCompare's `{"Data": {"Data": [...]}}`
        named = {str(k).lower(): v for k, v in body.items()}
        for key in ("data", "result", "list", "rows"):
            if key in named and isinstance(named[key], list | dict):
                body = named[key]
                break
        else:
            lists = {k: v for k, v in body.items() if isinstance(v, list) and v}
            rows = [v for v in lists.values() if isinstance(v[0], dict | list)]
            if len(rows) == 1:
                body = rows[0]
                continue
            if len(lists) >= 2 and not rows and len({len(v) for v in lists.values()}) == 1:
                columns = list(lists.values())  # one length (checked): strict holds
                return [dict(zip(lists, vs, strict=True)) for vs in zip(*columns, strict=True)]
            return body
    return body


_BINANCE_ORDER_KEYS: dict[str, str] = {
    "s": "symbol",
    "S": "side",
    "o": "order_type",
    "q": "original_quantity",
}


def _event_payload(row: dict[str, Any]) -> dict[str, Any]:
    """Return a Binance stream event's payload beside its header fields: `forceOrder`
    messages (`{"e": "forceOrder", "E": ..., "o": {...}}`) as recorded from the stream.

    Bybit's liquidations (`allLiquidation` items `{T, s, S, v, p}`, the older `liquidation`
    topic's `{updatedTime, symbol, side, size, price}`) name the liquidated *position*'s
    side: Buy is a long forced out, where Binance's SELL order is. Their side is given here
    as the position (`liquidated_side`), so it is never read with Binance's meaning.
    """
    inner = row.get("o")
    if "e" in row and isinstance(inner, dict):
        # its one-letter `s` and `S` would read alike once normalised: named here
        named = {_BINANCE_ORDER_KEYS.get(str(k), str(k)): v for k, v in inner.items()}
        return {**{k: v for k, v in row.items() if k != "o"}, **named}
    if {"T", "s", "S", "v", "p"} <= row.keys():  # Bybit allLiquidation
        return {
            "time": row["T"],
            "symbol": row["s"],
            "liquidated_side": _BYBIT_POSITION.get(str(row["S"]).lower(), row["S"]),
            "quantity": row["v"],
            "price": row["p"],
        }
    if {"updatedTime", "symbol", "side", "size", "price"} <= row.keys():  # Bybit liquidation
        rest = {k: v for k, v in row.items() if k not in ("updatedTime", "side")}
        side = _BYBIT_POSITION.get(str(row["side"]).lower(), row["side"])
        return {"time": row["updatedTime"], "liquidated_side": side, **rest}
    return row


_BYBIT_POSITION = {"buy": "LONG", "sell": "SHORT"}


def _stream_items(body: list[Any]) -> list[Any]:
    """Return the items of recorded stream messages (`{"topic": ..., "data": [...]}` per
    line, Bybit's and OKX's shape), or `body` when it is not such a recording."""
    if not all(isinstance(m, dict) and ("topic" in m or "arg" in m) for m in body):
        return body
    items: list[Any] = []
    for m in body:
        data = m.get("data")
        items += data if isinstance(data, list) else [data] if isinstance(data, dict) else []
    return items or body


def _json_table(body: Any) -> Table:
    body = _unwrap(body)
    if not isinstance(body, list) or not body:
        seen = f" (keys seen: {', '.join(map(str, body))})" if isinstance(body, dict) else ""
        raise HistoryFormatError(
            f"JSON without a list of rows, an envelope holding one or column arrays{seen}"
        )
    body = _stream_items(body)
    if all(isinstance(r, dict) for r in body):
        body = [_event_payload(r) for r in body]
        header: list[str] = []
        for r in body:
            header += [k for k in r if k not in header]
        return Table(header, [[r.get(k) for k in header] for r in body], "JSON")
    if all(isinstance(r, list) for r in body):
        return Table(None, body, "JSON")
    raise HistoryFormatError("JSON rows are neither all objects nor all arrays")


_ARROW_SUFFIXES = (".feather", ".arrow", ".parquet")


def read_table(path: Path) -> Table:
    """Return the rows of a CSV, JSON (gzip too), JSON-lines, feather or parquet file.

    A damaged gzip stream, JSON nested past the parser's depth or a file that cannot be
    opened is a HistoryFormatError naming the file (they were tracebacks).
    """
    try:
        return _read_table(path)
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:
        raise HistoryFormatError(f"{path}: a damaged gzip file ({exc})") from None
    except RecursionError:
        raise HistoryFormatError(f"{path}: JSON nested too deep to be rows") from None
    except OSError as exc:  # permission denied, a folder, a vanished file
        raise HistoryFormatError(f"{path}: cannot be read ({exc.strerror or exc})") from None


# a CSV line longer than this is no export row (a kline row is ~150 bytes): refused unread
MAX_LINE_CHARS = 1 << 20


def _encoding(start: bytes) -> str:
    """UTF-16 when the bytes open with its BOM (Excel's 'Unicode Text'), else UTF-8."""
    return "utf-16" if start[:2] in (b"\xff\xfe", b"\xfe\xff") else "utf-8-sig"


# what a packed (gzip, zip) JSON or Arrow file may unpack to: they are read whole, so a
# decompression bomb (kilobytes that unpack to terabytes) would take every byte of memory
MAX_UNPACKED_BYTES = 256 << 20  # API dumps are megabytes; a symbol-year of 1m as JSON ~40 MB


def _text_lines(path: Path, encoding: str = "utf-8-sig", *, gzipped: bool = False) -> Iterator[str]:
    """The lines of a text file (or of a gzipped one), read as the rows are consumed (not
    the file at once: the text, its copy in a StringIO and the rows took ~8x the file's
    size), each at most MAX_LINE_CHARS long (a 2 GB line is refused having read 1 MiB of
    it; so is a gzip bomb of one endless line)."""
    opened: IO[str] = (
        gzip.open(path, "rt", encoding=encoding, newline="")  # noqa: SIM115 (closed below)
        if gzipped
        else path.open(encoding=encoding, newline="")
    )
    try:
        with opened as fh:
            while line := fh.readline(MAX_LINE_CHARS):
                if len(line) >= MAX_LINE_CHARS and not line.endswith(("\n", "\r")):
                    raise HistoryFormatError(
                        f"{path}: a line longer than {MAX_LINE_CHARS:,} characters: not an export"
                    )
                yield line
    except (EOFError, zlib.error, gzip.BadGzipFile) as exc:  # found as the rows are read
        raise HistoryFormatError(f"{path}: a damaged gzip file ({exc})") from None


def _read_table(path: Path) -> Table:
    with path.open("rb") as fh:
        start = fh.read(4096)
    encoding = _encoding(start)
    text_start = start.decode(encoding, errors="ignore").lstrip()[:1]
    packed = start[:2] == b"\x1f\x8b" or start[:4] in (b"PK\x03\x04", b"PAR1", b"FEA1")
    arrow = start[:6] == b"ARROW1" or path.suffix in _ARROW_SUFFIXES
    if not packed and not arrow and encoding != "utf-16" and b"\x00" in start:
        # NUL is valid UTF-8, so such bytes decoded "fine" and were called an empty file
        raise HistoryFormatError(f"{path}: binary data (NUL bytes), not CSV, JSON or Arrow")
    if not packed and not arrow and text_start not in ("[", "{"):  # CSV: read as it goes
        return _csv_table(_text_lines(path, encoding), path)
    suffix = path.suffix
    if start[:2] == b"\x1f\x8b":
        with gzip.open(path, "rb") as gz:
            inner = gz.read(4096)
        inner_text = inner.decode(_encoding(inner), errors="ignore").lstrip()[:1]
        inner_arrow = (
            inner[:6] == b"ARROW1"
            or inner[:4] in (b"PAR1", b"FEA1", b"PK\x03\x04")
            or Path(path.stem).suffix in _ARROW_SUFFIXES
        )
        if not inner_arrow and inner_text not in ("[", "{"):  # a gzipped CSV: read as it goes
            return _csv_table(_text_lines(path, _encoding(inner), gzipped=True), path)
        with gzip.open(path, "rb") as gz:
            raw = _capped(path, gz)
    else:  # read whole: a file past the cap is refused before a byte of it is read
        _cap(path, path.stat().st_size)
        raw = path.read_bytes()
    if raw[:4] == b"PK\x03\x04":  # a zip of one file (data.binance.vision serves them so)
        raw, suffix = _unzip(path, raw)
    if raw[:6] == b"ARROW1" or raw[:4] in (b"PAR1", b"FEA1") or suffix in _ARROW_SUFFIXES:
        return _arrow_table(path, raw)
    _cap(path, len(raw))  # JSON is parsed whole: ~10x its size in Python objects
    text = raw.decode(_encoding(raw))
    head = text.lstrip()[:1]
    if head in ("[", "{"):
        try:
            return _json_table(json.loads(text))
        except json.JSONDecodeError:
            lines = [json.loads(x) for x in text.splitlines() if x.strip()]  # JSON lines
            return _json_table(lines)
    return _csv_table(io.StringIO(text, newline=""), path)


def _cap(path: Path, size: int) -> None:
    """Refuse a file read whole (JSON, Arrow, parquet; packed too) past MAX_UNPACKED_BYTES."""
    if size > MAX_UNPACKED_BYTES:
        raise HistoryFormatError(
            f"{path}: more than {MAX_UNPACKED_BYTES >> 20} MiB to read whole (JSON, and any "
            "packed file but a gzipped CSV, is read whole; a CSV is read as it goes): not read"
        )


def _capped(path: Path, fh: IO[bytes] | gzip.GzipFile) -> bytes:
    """Read a decompressing stream whole, refusing it past MAX_UNPACKED_BYTES."""
    out = bytearray()
    while chunk := fh.read(1 << 20):
        out += chunk
        _cap(path, len(out))
    return bytes(out)


def _unzip(path: Path, raw: bytes) -> tuple[bytes, str]:
    """Return the one data file of a zip archive and its suffix."""
    try:
        with zipfile.ZipFile(io.BytesIO(raw)) as zf:
            members = [
                m
                for m in zf.infolist()
                if not m.is_dir() and not m.filename.startswith(("__MACOSX/", "."))
            ]
            if len(members) != 1:
                names = ", ".join(m.filename for m in members) or "nothing"
                raise HistoryFormatError(f"{path}: a zip of one export expected, it holds {names}")
            with zf.open(members[0]) as member:
                return _capped(path, member), Path(members[0].filename).suffix
    except (zipfile.BadZipFile, zipfile.LargeZipFile, NotImplementedError) as exc:
        raise HistoryFormatError(f"{path}: a damaged zip file ({exc})") from None


def _arrow_table(path: Path, raw: bytes) -> Table:
    """Read a feather (Arrow IPC, v1 or v2) or parquet file with pyarrow.

    Timestamp and date columns become epoch ms (freqtrade's `date` is timestamp[ms, UTC]),
    so times are exact whatever the unit; other columns become Python values.
    """
    import pyarrow as pa  # imported here: only these files need it (~80 ms)
    import pyarrow.feather as feather
    import pyarrow.parquet as parquet

    is_parquet = raw[:4] == b"PAR1" or (raw[:6] != b"ARROW1" and path.suffix == ".parquet")
    what = "Parquet" if is_parquet else "Arrow"
    try:
        source = pa.BufferReader(raw)  # already gunzipped when the file was compressed
        if is_parquet:
            # compressed and run-length encoded pages: what they decode to is bounded by the
            # footer's row and column counts (8 bytes a value at least), checked before any
            # is read (a few KiB of one repeated bar can decode to gigabytes)
            pf = parquet.ParquetFile(source)
            meta = pf.metadata
            encoded = sum(meta.row_group(i).total_byte_size for i in range(meta.num_row_groups))
            _cap(path, max(encoded, meta.num_rows * meta.num_columns * 8))
            tbl = pf.read()
        elif raw[:6] == b"ARROW1":  # Arrow IPC (feather v2), its batches maybe LZ4/ZSTD
            reader = pa.ipc.open_file(source)
            batches, size = [], 0
            for i in range(reader.num_record_batches):
                batches.append(reader.get_batch(i))
                size += batches[-1].nbytes
                _cap(path, size)
            tbl = pa.Table.from_batches(batches, schema=reader.schema)
        else:  # feather v1: never compressed, so its columns are about the file's size
            tbl = feather.read_table(source)
            _cap(path, tbl.nbytes)
        cols = [_epoch_ms(col).to_pylist() for col in tbl.columns]
    except (pa.ArrowException, ValueError) as exc:
        raise HistoryFormatError(f"{path}: not a readable {what.lower()} file ({exc})") from None
    return Table(list(tbl.column_names), list(zip(*cols, strict=True)), what)


def _epoch_ms(col: Any) -> Any:
    """Return a timestamp or date column as int64 epoch ms (sub-ms truncated), else as is."""
    import pyarrow as pa

    if not (pa.types.is_timestamp(col.type) or pa.types.is_date(col.type)):
        return col
    at_ms = col.cast(pa.timestamp("ms", getattr(col.type, "tz", None)), safe=False)
    return at_ms.cast(pa.int64())


# ---------------------------------------------------------------------------------------
# Resolving columns
# ---------------------------------------------------------------------------------------


# 1,234.5 or 1,234,567.25: a spreadsheet's thousands separators, unambiguous with the decimal
# point (a bare 1,234 may be a decimal comma, so it is not guessed)
_THOUSANDS = re.compile(r"[+-]?\d{1,3}(,\d{3})+\.\d*")


def number(value: Any) -> float | None:
    """Return a cell as a float, None when empty; raise naming a cell that is no number."""
    if value is None:
        return None
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return None
        try:
            return float(text)
        except ValueError:
            if _THOUSANDS.fullmatch(text):
                return float(text.replace(",", ""))
            if text.endswith("%"):  # `0.0100%` (a venue's website download): a fraction
                with contextlib.suppress(ValueError):
                    return float(text[:-1]) / 100
            raise HistoryFormatError(f"{value!r} is not a number") from None
    return float(value)


@dataclass(frozen=True)
class Resolved:
    """Where each field is in the rows, with its scale; `layout` names what matched."""

    index: dict[str, int]
    scale: dict[str, float]
    layout: str
    close_stamped: bool = False  # the layout's times are the bars' close
    date_order: str | None = None  # how its slash dates read (`_with_date_order`)

    def get(self, row: Sequence[Any], name: str) -> float | None:
        """Return field `name` of `row` as a float (scaled), or None when absent/empty."""
        i = self.index.get(name)
        if i is None or i >= len(row):
            return None
        value = number(row[i])
        return None if value is None else value * self.scale.get(name, 1.0)

    def raw(self, row: Sequence[Any], name: str) -> Any:
        """Return field `name` of `row` unconverted, or None."""
        i = self.index.get(name)
        return None if i is None or i >= len(row) else row[i]


def _bars_fit(layout: Layout, rows: Sequence[Sequence[Any]]) -> bool:
    """Return True unless `layout` reads a row of `rows` as an impossible bar."""
    cols = layout.columns
    if not {"open", "high", "low", "close"} <= set(cols):
        return True
    at = [int(cols[n]) for n in ("open", "high", "low", "close")]
    for row in rows:
        try:
            o, h, lo, c = (float(row[i]) for i in at)
        except (TypeError, ValueError, IndexError):
            continue
        if lo > min(o, c) or h < max(o, c):
            return False
    return True


def _spec(spec: str | int) -> tuple[str | int, float]:
    if isinstance(spec, int):
        return spec, 1.0
    base, _, scale = spec.partition("*")
    target: str | int = int(base) if base.strip().isdigit() else base
    return target, float(scale) if scale else 1.0


def resolve(kind: str, table: Table, path: Path) -> Resolved:
    """Return where each field of `kind` is in `table`, or fail saying what was seen."""
    spec = KINDS[kind]
    overrides = _OVERRIDES.get() or {}
    explicit = {**overrides.get("*", {}), **overrides.get(kind, {})}
    explicit = {k: v for k, v in explicit.items() if k in spec.field_names()}
    prefixed = overrides.get(kind, {})
    use = _COLUMN_USE.get() or _ColumnUse()
    index: dict[str, int] = {}
    scale: dict[str, float] = {}
    layout = "explicit --columns" if explicit else "column names"
    close_stamped = False
    header = table.header
    if header is None:
        rows = iter(table.rows)
        first = next(rows, None)
        if first is None:
            raise HistoryFormatError(f"{path}: no rows")
        head = [first, *itertools.islice(rows, 199)]
        table.rows = itertools.chain(head, rows)
        width = len(first)
        fitting = [lo for lo in spec.layouts if lo.width == width]
        # layouts of one width (CCXT's and Coinbase's candles): the first whose every head
        # row is a possible bar (low <= open, close <= high)
        chosen = next(
            (lo for lo in fitting if _bars_fit(lo, head)), fitting[0] if fitting else None
        )
        # an unprefixed pair naming a column (not a position) is for files with a header
        for name in [n for n in explicit if n not in prefixed]:
            named = not isinstance(_spec(explicit[name])[0], int)
            use.note(name, path, None, found=not named)
            if named:
                del explicit[name]
        if chosen is None and not explicit:
            widths = ", ".join(f"{lo.width} ({lo.name})" for lo in spec.layouts if lo.width)
            raise HistoryFormatError(
                f"{path}: {table.what} rows without a header have {width} values; as {kind} "
                f"they are read by position when {widths or 'never'}; give a header or map "
                f"positions with --columns (e.g. close=4)"
            )
        positions = dict(chosen.columns) if chosen else {}
        layout = chosen.name if chosen else layout
        for name, col in {**positions, **explicit}.items():
            target, factor = _spec(col)
            if not isinstance(target, int):
                raise HistoryFormatError(f"{path}: no header, so --columns {name} needs a position")
            index[name], scale[name] = target, factor
    else:
        normed = [norm(h) for h in header]
        claimed: set[int] = set()

        def find(target: str | int) -> int | None:
            """Return the unclaimed column named `target`: spelled exactly first, then by
            normalised name (Hyperliquid's `t` is the open time, its `T` the close time)."""
            if isinstance(target, int):
                return target
            spelled = [i for i, h in enumerate(header) if h.strip() == target.strip()]
            n = norm(target)
            same = spelled + [i for i, h in enumerate(normed) if h == n]
            return next((i for i in same if i not in claimed), same[0] if same else None)

        for name, col in explicit.items():
            target, factor = _spec(col)
            i = find(target)
            if name not in prefixed:
                use.note(name, path, header, found=i is not None)
            if i is None and name not in prefixed:
                continue  # an unprefixed pair meant for another input file
            if i is None:
                raise HistoryFormatError(
                    f"{path}: --columns {kind}.{name}={col}: no such column; columns: {header}"
                )
            index[name], scale[name] = i, factor
            claimed.add(i)
        present = set(normed)
        for lo in spec.layouts:
            if lo.width is None and lo.when <= present:
                layout = lo.name
                close_stamped = lo.close_stamped
                for name, col in lo.columns.items():
                    target, factor = _spec(col)
                    i = find(target)
                    if name not in index and i is not None:
                        index[name], scale[name] = i, factor
                        claimed.add(i)
                break
        for f in spec.fields:
            if f.name in index:
                continue
            for raw, (alias, factor) in zip(f.aliases, f.names(), strict=True):
                i = find(raw.partition("*")[0]) if alias in present else None
                if i is not None and i not in claimed:
                    index[f.name], scale[f.name] = i, factor
                    claimed.add(i)
                    break
    missing = [f for f in spec.fields if f.required and f.name not in index]
    if kind in ("open_interest", "long_short") and set(index) <= {"time"}:
        missing += [f for f in spec.fields if f.name != "time"]
    if missing:
        accepted = "; ".join(f"{f.name}: {', '.join(f.aliases)}" for f in missing)
        seen = header if header is not None else f"{table.what} rows by position"
        raise HistoryFormatError(
            f"{path}: cannot read as {kind.replace('_', ' ')}: columns seen: {seen}; "
            f"missing {', '.join(f.name for f in missing)} (accepted names - {accepted}); "
            f"or name the columns with --columns {missing[0].name}=<column>"
        )
    return Resolved(index, scale, layout, close_stamped)


def _read(path: Path) -> Table:
    try:
        return read_table(path)
    except HistoryFormatError as exc:
        if str(path) in str(exc):
            raise
        raise HistoryFormatError(f"{path}: {exc}") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise HistoryFormatError(f"{path}: not CSV or JSON ({exc})") from exc


def _load(
    kind: str, path: Path, symbol: str | None = None
) -> tuple[Resolved, Iterable[Sequence[Any]]]:
    """Open `path` as `kind`: its resolved columns and its rows (of `symbol` only, see below).

    A file whose symbol column holds several markets (an API dump of every symbol, CCXT or
    BitMEX rows) is read for `symbol`'s rows only, the others counted in a warning; without
    a matching row, or without `symbol`, it is refused. Its rows were read as one series
    before: a time given by two markets kept the later row, so one market's backtest ran
    on another's prices. A single-market file is read whatever it calls the market.
    """
    table = _read(path)
    res = _with_date_order(resolve(kind, table, path), table, path)
    log.info("%s: read as %s (%s)", path.name, kind, res.layout)
    if "symbol" not in res.index or kind == "liquidations":  # liquidations filter their own
        return res, table.rows
    # a first pass over the symbol column: the rows themselves when already in memory (JSON,
    # Arrow), a second read of a CSV, which is read as it goes (files with a market column
    # are API dumps, not the bulk 1m exports, which never name their market in every row)
    seen: Counter[str] = Counter()
    for row in table.rows if isinstance(table.rows, list) else _read(path).rows:
        name = res.raw(row, "symbol")
        if name not in (None, ""):
            seen[str(name)] += 1
    if len(seen) <= 1:
        return res, table.rows
    listed = ", ".join(f"{name} ({n} rows)" for name, n in seen.most_common(5))
    more = f" and {len(seen) - 5} more" if len(seen) > 5 else ""
    keep = {name for name in seen if symbol is not None and same_symbol(name, symbol)}
    if not keep:
        want = f"no row of {symbol}" if symbol else "no symbol given to choose one"
        raise HistoryFormatError(
            f"{path}: rows of {len(seen)} markets ({listed}{more}) and {want}; give the rows "
            "of one market"
        )
    left = sum(n for name, n in seen.items() if name not in keep)
    log.warning(
        "%s: only the rows of %s are read; %d rows of %d other markets are left out (%s%s)",
        path.name,
        symbol,
        left,
        len(seen) - len(keep),
        ", ".join(f"{name} ({n})" for name, n in seen.most_common(6) if name not in keep),
        " ..." if len(seen) - len(keep) > 5 else "",
    )
    at = res.index["symbol"]
    rows = (r for r in table.rows if at >= len(r) or r[at] in (None, "") or str(r[at]) in keep)
    return res, rows


# how many rows of a streamed file are looked at for a day or month above 12 (a 1m file
# has one by row 17,281 in either order, whatever day it starts on)
DATE_SCAN_ROWS = 50_000


def _slash_fields(row: Sequence[Any], at: int) -> tuple[int, int, str] | None:
    """The first two numbers of a row's slash date and its text, or None when it has none."""
    cell = row[at] if at < len(row) else None
    if not isinstance(cell, str):
        return None
    m = _SLASH_DATE.match(cell)
    return None if m is None else (int(m[1]), int(m[2]), cell.strip())


def _with_date_order(res: Resolved, table: Table, path: Path) -> Resolved:
    """Decide how the slash dates of a file read (day or month first), or refuse it.

    A first number above 12 proves day first, a second above 12 month first; `--date-order`
    decides a file whose rows prove neither. The proof is sought in a streamed file's first
    DATE_SCAN_ROWS rows (read again from disk, so the rows are not held), in all the rows of
    a file read whole; without one (and without the option) the file is refused, not
    guessed. Every row is then checked as it is read: a date of the other order (a file
    that mixes both, or a later row the prefix did not see contradicting the option) is
    refused naming its line, never read as another day.
    """
    at = res.index.get("time")
    if at is None:
        return res
    rows = table.rows
    if not isinstance(rows, list):
        it = iter(rows)
        head = next(it, None)
        table.rows = rows = it if head is None else itertools.chain([head], it)
    else:
        head = rows[0] if rows else None
    example = None if head is None else _slash_fields(head, at)
    if example is None:
        return res  # the common case: no slash dates, nothing more is done
    given = _DATE_ORDER.get()
    whole = isinstance(rows, list)  # read whole: every row is looked at, here and now
    proof = None
    if whole:
        proof = _date_proof(rows, at, None, path, whole=True)
    elif given is None:
        again = _read(path)  # streamed: its prefix read again, not kept
        proof = _date_proof(again.rows, at, again.line, path, whole=False)
    if proof is not None and given is not None and proof[0] != given:
        raise HistoryFormatError(
            f"{path}: {proof[1]}: {proof[2]!r} is {_ORDER_WORDS[proof[0]]}, not "
            f"{_ORDER_WORDS[given]} as --date-order {given} says"
        )
    order = given or (proof[0] if proof else None)
    if order is None:
        seen = "its rows" if whole else f"its first {DATE_SCAN_ROWS:,} rows"
        raise HistoryFormatError(
            f"{path}: dates such as {example[2]!r} read day/month/year or month/day/year, "
            f"and no date in {seen} has a number above 12 to tell which: say which with "
            "--date-order dmy (day first) or --date-order mdy (month first)"
        )
    if not whole:  # the rows the prefix did not reach are checked as they are read
        because = f"--date-order {given} says {_ORDER_WORDS[order]}"
        if proof is not None:
            because = f"{proof[1]}: {proof[2]!r} is {_ORDER_WORDS[order]}"
        table.rows = _checked_dates(rows, at, order, table.line, path, because)
    return dataclasses.replace(res, date_order=order)


_ORDER_WORDS = {"dmy": "day first", "mdy": "month first"}


def rows_date_order(res: Resolved, rows: Sequence[Sequence[Any]], path: Path) -> str | None:
    """How the slash dates of a file's first `rows` read: `--date-order`, else what they
    prove, else None (planning a run looks at a few rows; the read itself decides)."""
    given = _DATE_ORDER.get()
    at = res.index.get("time")
    if given is not None or at is None:
        return given
    proof = _date_proof(rows, at, None, path, whole=True)
    return None if proof is None else proof[0]


def _where(k: int, line: Callable[[], int] | None) -> str:
    return f"line {line()}" if line is not None else f"row {k}"


def _date_proof(
    rows: Iterable[Sequence[Any]],
    at: int,
    line: Callable[[], int] | None,
    path: Path,
    *,
    whole: bool,
) -> tuple[str, str, str] | None:
    """Return (order, where, date) of the first date that proves an order, or None.

    `whole`: every row is looked at and rows proving both orders are refused; else the
    first DATE_SCAN_ROWS at most, up to the first proof (later rows are checked as read).
    """
    proof: tuple[str, str, str] | None = None
    for k, row in enumerate(itertools.islice(rows, None if whole else DATE_SCAN_ROWS), 1):
        fields = _slash_fields(row, at)
        if fields is None:
            continue
        first, second, text = fields
        order = "dmy" if first > 12 else "mdy" if second > 12 else None
        if order is None:
            continue
        if proof is None:
            proof = (order, _where(k, line), text)
            if not whole:
                break
        elif proof[0] != order:
            raise HistoryFormatError(
                f"{path}: {_where(k, line)}: {text!r} is {_ORDER_WORDS[order]}, but "
                f"{proof[1]}: {proof[2]!r} is {_ORDER_WORDS[proof[0]]}: the file mixes both"
            )
    return proof


def _checked_dates(
    rows: Iterable[Sequence[Any]],
    at: int,
    order: str,
    line: Callable[[], int] | None,
    path: Path,
    because: str,
) -> Iterator[Sequence[Any]]:
    """Yield `rows`, refusing the first whose slash date cannot be read in `order` (its
    month above 12): it proves the other order, so the file is not what `because` says."""
    day_first = order == "dmy"
    other = "mdy" if day_first else "dmy"
    for k, row in enumerate(rows, 1):
        fields = _slash_fields(row, at)
        if fields is not None and (fields[1] if day_first else fields[0]) > 12:
            raise HistoryFormatError(
                f"{path}: {_where(k, line)}: {fields[2]!r} is {_ORDER_WORDS[other]}, but "
                f"{because}: the dates of one file must read one way"
            )
        yield row


# ---------------------------------------------------------------------------------------
# Times
# ---------------------------------------------------------------------------------------


def parse_time_ms(raw: Any, order: str | None = None) -> int:
    """Return epoch ms from epoch s/ms/us/ns (by magnitude), an ISO string or a datetime.

    `order` (`dmy`, `mdy`): how a slash date (`01/02/2024`) reads; without it such a date
    is refused, never guessed (the file decides it: `_with_date_order`).
    """
    if isinstance(raw, datetime):
        dt = raw if raw.tzinfo is not None else raw.replace(tzinfo=UTC)
        return round(dt.timestamp() * 1000)
    if isinstance(raw, int | float) and not isinstance(raw, bool):
        value = float(raw)
    else:
        text = str(raw).strip()
        if order is not None:  # a file of slash dates: each row is one, read first
            slash = _slash_date(_ZONE_WORD.sub("", text), order)
            if slash is not None:
                slash = slash if slash.tzinfo is not None else slash.replace(tzinfo=UTC)
                return round(slash.timestamp() * 1000)
        try:
            value = float(text)
        except ValueError:
            parsed = _date_text(text, order)
            if parsed is None:
                if order is None and _SLASH_DATE.match(text):
                    raise HistoryFormatError(
                        f"unreadable time {raw!r}: day/month/year or month/day/year? "
                        "(--date-order dmy or mdy)"
                    ) from None
                raise HistoryFormatError(f"unreadable time {raw!r}") from None
            if parsed.tzinfo is None:
                parsed = parsed.replace(tzinfo=UTC)
            return round(parsed.timestamp() * 1000)
    # NaN, infinities, negatives and years past 9999 are no time (they overflowed datetime)
    if not 0 <= value < 1e20:
        raise HistoryFormatError(f"unreadable time {raw!r}")
    for lo, hi, fmt in _COMPACT_DATES:
        if lo <= value <= hi:
            compact = _compact_date(value, fmt)
            if compact is not None:
                return compact
    if value >= 1e17:  # nanoseconds (pandas / Arrow timestamps)
        return int(value // 1_000_000)
    if value >= 1e14:  # microseconds (Binance spot files since 2025)
        return int(value // 1000)
    if value < 1e11:  # seconds (alternative.me, many exporters)
        return int(value * 1000)
    return int(value)


# digits of a date (20220101, 202201011530, 20220101153000: daily exports, MetaTrader, Stooq):
# read by magnitude they were 1970s or 2600s times, no market's, and a daily file was "1 s
# bars". No epoch time of 2000-2099 in s, ms, us or ns has 8, 12 or 14 digits starting 20.
_COMPACT_DATES = (
    (20_000_101, 20_991_231, "%Y%m%d"),
    (200_001_010_000, 209_912_312_359, "%Y%m%d%H%M"),
    (20_000_101_000_000, 20_991_231_235_959, "%Y%m%d%H%M%S"),
)


def _compact_date(value: float, fmt: str) -> int | None:
    """Return epoch ms of `value` read as the digits of a UTC date in `fmt`, or None."""
    if not value.is_integer():
        return None
    try:
        at = datetime.strptime(str(int(value)), fmt).replace(tzinfo=UTC)
    except ValueError:
        return None
    return round(at.timestamp() * 1000)


_ZONE_WORD = re.compile(r"\s*(UTC|GMT|Z)$", re.IGNORECASE)


_DOTTED_DATE = re.compile(r"(\d\d?)\.(\d\d?)\.(\d{4})(\s.*)?$")


# a slash date with the year last, as Excel (day or month first, by the machine's locale),
# Investing.com and many venues' downloads write it: `01/02/2024 00:00`, `2/1/2024 13:05:00`,
# `1/2/24 1:05 PM`; a time, when given, after a space or a T
_SLASH_DATE = re.compile(
    r"\s*(\d{1,2})/(\d{1,2})/(\d{4}|\d\d)"
    r"(?:(?:\s+|T)(\d{1,2}):(\d\d)(?::(\d\d)(\.\d{1,9})?)?(?:\s*([AaPp])\.?[Mm]\.?)?)?"
    r"(?=\s|$|[+-]\d)"
)


def _slash_date(text: str, order: str) -> datetime | None:
    """Return a slash date read in `order` (`dmy` or `mdy`), or None when it is none.

    A two-digit year is 20yy (no market data predates 2009); 12 AM is midnight, 12 PM noon.
    """
    m = _SLASH_DATE.match(text)
    if m is None:
        return None
    first, second, year_s, hour_s, minute, sec, frac, half = m.groups()
    day, month = (int(first), int(second)) if order == "dmy" else (int(second), int(first))
    year = int(year_s) + 2000 if len(year_s) == 2 else int(year_s)
    hour = int(hour_s or 0)
    if half is not None:
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if half in "Pp" else 0)
    tail = text[m.end() :].strip()
    try:
        if not tail:  # the common case: built directly (a file of them is read per row)
            micro = int((frac[1:] + "00000")[:6]) if frac else 0
            return datetime(year, month, day, hour, int(minute or 0), int(sec or 0), micro, UTC)
        iso = f"{year:04d}-{month:02d}-{day:02d}T{hour:02d}:{minute or '00'}:{sec or '00'}"
        return datetime.fromisoformat(f"{iso}{frac or ''}{tail}")  # with its UTC offset
    except ValueError:  # no such day (31/02), hour or offset
        return None


def _date_text(text: str, order: str | None = None) -> datetime | None:
    """Return an ISO 8601 time, or one as databases and HTTP print them: BigQuery's and
    Dune's `2021-11-15 18:00:00 UTC`, Go's `... +0000 UTC`, `2021/11/15 ...`, RFC 1123;
    with `order`, a slash date with the year last (`_slash_date`)."""
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    bare = _ZONE_WORD.sub("", text)
    if re.match(r"\d{4}/\d\d?/\d\d?", bare):
        bare = bare.replace("/", "-", 2)
    elif order is not None and _SLASH_DATE.match(bare):
        return _slash_date(bare, order)
    # day.month.year: how European spreadsheets write a date (never month first)
    dotted = _DOTTED_DATE.match(bare)
    if dotted:
        day, month, year, rest = dotted.groups()
        bare = f"{year}-{int(month):02d}-{int(day):02d}{rest or ''}"
    with contextlib.suppress(ValueError):
        return datetime.fromisoformat(bare)  # naive: UTC, as the caller takes it
    with contextlib.suppress(TypeError, ValueError, IndexError):
        return email.utils.parsedate_to_datetime(text)
    return None


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def ms_to_dt(ms: int) -> datetime:
    """Return the aware UTC datetime of epoch milliseconds."""
    return _EPOCH + timedelta(milliseconds=ms)


def timeframe_of(seconds: int) -> str:
    """Return the timeframe label of a bar length; raise when the platform has none."""
    for name, secs in TIMEFRAME_SECONDS.items():
        if secs == seconds:
            return name
    raise HistoryFormatError(f"bar length {seconds}s is not a platform timeframe")


@dataclass(slots=True)
class CandleSeries:
    """Closed candles of one symbol and timeframe, oldest first, as parallel lists (fast)."""

    timeframe: str
    open_ms: list[int] = field(default_factory=list)
    open: list[float] = field(default_factory=list)
    high: list[float] = field(default_factory=list)
    low: list[float] = field(default_factory=list)
    close: list[float] = field(default_factory=list)
    volume: list[float] = field(default_factory=list)
    quote_volume: list[float | None] = field(default_factory=list)
    partial_buckets: int = 0  # aggregated candles built from fewer bars than the bucket holds
    # the file had no volume column: every volume is 0, unknown rather than no trading
    volume_missing: bool = False

    @property
    def step_ms(self) -> int:
        """Return the bar length in milliseconds."""
        return TIMEFRAME_SECONDS[self.timeframe] * 1000

    def __len__(self) -> int:
        return len(self.open_ms)

    def slice(self, start: int, stop: int) -> CandleSeries:
        """Return bars [start, stop) as a new series."""
        return CandleSeries(
            self.timeframe,
            self.open_ms[start:stop],
            self.open[start:stop],
            self.high[start:stop],
            self.low[start:stop],
            self.close[start:stop],
            self.volume[start:stop],
            self.quote_volume[start:stop],
            volume_missing=self.volume_missing,
        )

    def gaps(self) -> int:
        """Return how many bars are missing between the first and the last."""
        if not self.open_ms:
            return 0
        return (self.open_ms[-1] - self.open_ms[0]) // self.step_ms + 1 - len(self.open_ms)


def _num(row: Sequence[Any], i: int | None) -> float | None:
    if i is None or i >= len(row):
        return None
    try:  # the common case, fast
        return float(row[i])
    except (TypeError, ValueError):
        return number(row[i])


def _time(res: Resolved, row: Sequence[Any], path: Path) -> int:
    try:
        return parse_time_ms(res.raw(row, "time"), res.date_order)
    except HistoryFormatError as exc:
        raise HistoryFormatError(f"{path}: {exc}") from None


@_contract_errors_named
def read_candles(path: Path, symbol: str | None = None) -> CandleSeries:
    """Read candles (any shape in `KINDS["candles"]`) into a series, oldest first.

    `symbol`: the market to read from a file that holds several (see `_load`).
    """
    res, rows = _load("candles", path, symbol)
    times: list[int] = []
    opens: list[float] = []
    highs: list[float] = []
    lows: list[float] = []
    closes: list[float] = []
    vols: list[float] = []
    quotes: list[float | None] = []
    ti, oi, hi, li, ci = (res.index[n] for n in ("time", "open", "high", "low", "close"))
    vi, qi, confirm = (res.index.get(n) for n in ("volume", "quote_volume", "confirm"))
    need = max(ti, oi, hi, li, ci)
    if vi is None and qi is None:
        log.warning(
            "%s: no volume column (%s): every bar's volume is 0 (unknown, not zero; no factor "
            "reads candle volume)",
            path.name,
            res.layout,
        )
    scaled = any(f != 1.0 for f in res.scale.values())
    short = blank = 0  # rows that give no bar: said in one warning, never dropped silently
    first_skipped: Sequence[Any] | None = None
    for row in rows:
        if len(row) <= need:
            short += 1  # a truncated line (a cut download's last one, or damage mid-file)
            first_skipped = first_skipped or row
            continue
        if confirm is not None and str(row[confirm]) == "0":
            continue  # OKX: a bar that had not closed when exported
        p: list[float | None]
        try:
            if scaled:
                p = [res.get(row, n) for n in ("open", "high", "low", "close")]
            else:
                try:  # the common case, fast
                    p = [float(row[oi]), float(row[hi]), float(row[li]), float(row[ci])]
                except (TypeError, ValueError):
                    p = [number(row[oi]), number(row[hi]), number(row[li]), number(row[ci])]
        except HistoryFormatError as exc:  # a price that is no number is not a missing bar
            at = ms_to_dt(_time(res, row, path)).isoformat().replace("+00:00", "Z")
            raise HistoryFormatError(f"{path}: the bar at {at}: {exc}") from None
        o, h, lo, close = p
        if (o is None or h is None or lo is None or close is None) or (
            o != o and h != h and lo != lo and close != close  # NaN in every price
        ):  # an empty price, or how numeric exports write a missing bar: no bar
            blank += 1
            first_skipped = first_skipped or row
            continue
        times.append(_time(res, row, path))
        opens.append(o)
        highs.append(h)
        lows.append(lo)
        closes.append(close)
        q = _num(row, qi)
        quotes.append(q if q is None or not scaled else q * res.scale.get("quote_volume", 1.0))
        v = _num(row, vi)
        if v is not None and scaled:
            v *= res.scale.get("volume", 1.0)
        # only a quote (USD) volume is published: base volume estimated at the close
        vols.append(v if v is not None else q / close if q is not None and close > 0 else 0.0)
    if short or blank:
        log.warning(
            "%s: %d rows give no bar and are skipped (%d with fewer columns than the header, "
            "%d without prices); the first: %.120s",
            path.name,
            short + blank,
            short,
            blank,
            ",".join(map(str, first_skipped or ())),
        )
    if not times:
        raise HistoryFormatError(f"{path}: no candles (no row holds a bar)")
    # newest first (OKX, Bybit) is sorted; a time given twice (the overlapping pages of an
    # API dump) is one bar, its last row in the file (a bar re-fetched once it had closed)
    order = sorted(range(len(times)), key=times.__getitem__)
    after = [*order[1:], -1]
    order = [i for i, j in zip(order, after, strict=True) if j < 0 or times[j] != times[i]]
    if len(order) < len(times):
        log.warning(
            "%s: %d rows repeat a time; the last of each is kept",
            path.name,
            len(times) - len(order),
        )
    if len(order) < 2:
        raise HistoryFormatError(f"{path}: fewer than two candles")
    if order != list(range(len(times))):
        times = [times[i] for i in order]
        opens, highs, lows, closes, vols = (
            [col[i] for i in order] for col in (opens, highs, lows, closes, vols)
        )
        quotes = [quotes[i] for i in order]
    step = _bar_step(times, path)
    if res.close_stamped:  # each bar under its open time, as every other venue stamps it
        times = [t - step for t in times]
    tf = timeframe_of(step // 1000)
    series = CandleSeries(tf, times, opens, highs, lows, closes, vols, quotes)
    series.volume_missing = vi is None and qi is None
    if times[-1] <= time.time() * 1000 < times[-1] + step:
        # Binance and Bybit answer with the bar still open too: a fresh dump holds it (a bar
        # opening in the future is no such bar: it is refused below)
        log.info("%s: the last bar had not closed when exported; left out", path.name)
        series = series.slice(0, len(series) - 1)
        if len(series) < 2:
            raise HistoryFormatError(f"{path}: fewer than two closed candles")
    _check_bars(series, path)
    return series


def _bar_step(times: Sequence[int], path: Path) -> int:
    """Return the bar length of sorted, distinct open times: the smallest step between rows
    that is not a stray (at least 1 % of the steps; bars missing make the others longer).

    Taking the smallest step of all, two rows a minute apart in an hourly file made every
    bar a 1m bar, observed 59 minutes before it closed: look-ahead in every signal. Rows
    closer than the bar length are refused, naming them.
    """
    steps = [b - a for a, b in itertools.pairwise(times)]
    counts = collections.Counter(steps)
    common = sorted(d for d, n in counts.items() if n * 100 >= len(steps))
    step = common[0] if common else min(steps)
    k = next((k for k, d in enumerate(steps) if d < step), None)
    if k is not None:
        a, b = (ms_to_dt(times[i]).isoformat().replace("+00:00", "Z") for i in (k, k + 1))
        raise HistoryFormatError(
            f"{path}: rows at {a} and {b} are {steps[k] / 1000:g}s apart, less than the "
            f"file's bar length {timeframe_label(step)}: a stray row, or two timeframes in "
            "one file"
        )
    return step


def timeframe_label(step_ms: int) -> str:
    """Return the platform timeframe of a bar length, or the length in seconds."""
    secs = step_ms // 1000
    return next((n for n, s in TIMEFRAME_SECONDS.items() if s == secs), f"{secs:g}s")


def _check_bars(series: CandleSeries, path: Path) -> None:
    """Refuse the first bar the candle contract would refuse, naming it.

    The candle events are built while the run goes (and a bucket's aggregate can hide a bar
    the outcome path still reads), so without this a NaN, zero or negative price, a high
    below the low or a year typed wrong stopped the run with a traceback, or went unseen.
    """
    o, h, lo, c, v = (
        np.asarray(col, dtype=np.float64)
        for col in (series.open, series.high, series.low, series.close, series.volume)
    )
    q = np.asarray([np.nan if x is None else x for x in series.quote_volume], dtype=np.float64)
    t = np.asarray(series.open_ms, dtype=np.float64)
    newest_ms = (time.time() + max_clock_skew_s()) * 1000 - series.step_ms
    checks = (
        (~np.isfinite(o + h + lo + c), "a price is not a finite number"),
        ((lo < MIN_PRICE) | (h > MAX_PRICE), f"a price outside [{MIN_PRICE:g}, {MAX_PRICE:g}]"),
        ((lo > np.minimum(o, c)) | (h < np.maximum(o, c)), "high/low do not hold open and close"),
        (~((v >= 0.0) & (v <= MAX_AMOUNT)), "volume negative, too large or not a number"),
        ((q < 0.0) | (q > MAX_AMOUNT), "quote volume negative or too large"),
        (t < MIN_EVENT_TIME.timestamp() * 1000, f"before {MIN_EVENT_TIME:%Y}"),
        (t > newest_ms, "in the future"),
    )
    for bad, why in checks:
        if bad.any():
            k = int(np.argmax(bad))
            at = ms_to_dt(series.open_ms[k]).isoformat().replace("+00:00", "Z")
            raise HistoryFormatError(
                f"{path}: the bar at {at} is refused ({why}: open {series.open[k]}, "
                f"high {series.high[k]}, low {series.low[k]}, close {series.close[k]}, "
                f"volume {series.volume[k]})"
            )


_E = TypeVar("_E", bound=Any)


def _unique(events: Iterable[_E]) -> list[_E]:
    """Return `events` in time order, one per event id (the last row of a time given twice:
    overlapping pages of an API dump would otherwise count a value twice, e.g. charge a
    funding rate twice in net P&L)."""
    return sorted({e.event_id: e for e in events}.values(), key=lambda e: e.observed_at)


@_contract_errors_named
def read_funding(path: Path, symbol: str, venue: str = SOURCE) -> list[FundingRateV1]:
    """Read settled funding rates (any shape in `KINDS["funding"]`)."""
    res, rows = _load("funding", path, symbol)
    out = []
    for row in rows:
        rate = res.get(row, "rate")
        if rate is None:
            continue
        at = ms_to_dt(_time(res, row, path))
        out.append(
            FundingRateV1(
                event_id=deterministic_id(SOURCE, "market.funding", symbol, at),
                source=SOURCE,
                venue=venue,
                symbol=symbol,
                observed_at=at,
                produced_at=at,
                rate=rate,
                mark_price=res.get(row, "mark_price"),
                interval_h=res.get(row, "interval_h"),
                settled=True,
            )
        )
    out = _unique(out)
    _refuse_snapshots(out, path)
    return out


def _refuse_snapshots(rates: Sequence[FundingRateV1], path: Path) -> None:
    """Refuse a funding file whose rows come faster than any venue settles (every 1-8 h).

    Such rows are ticker snapshots of the predicted rate; read as settlements, every one was
    charged in net P&L (a recording every 10 minutes charged 48 'settlements' per 8 h).
    """
    if len(rates) < 3:
        return
    steps = sorted(
        (b.observed_at - a.observed_at).total_seconds() for a, b in itertools.pairwise(rates)
    )
    median = steps[len(steps) // 2]
    if median < 3600:
        raise HistoryFormatError(
            f"{path}: funding rows come every {median / 60:g} min, faster than any venue "
            "settles (every 1-8 h): ticker snapshots of the predicted rate, not a settled "
            "history. Give the venue's funding-rate history, or a column with each row's "
            "settlement time (next_funding_time / funding_timestamp; --columns "
            "funding.time=<column>)"
        )


@_contract_errors_named
def read_open_interest(path: Path, symbol: str, venue: str = SOURCE) -> list[OpenInterestV1]:
    """Read open interest in base units and/or USD (any shape in `KINDS["open_interest"]`)."""
    res, rows = _load("open_interest", path, symbol)
    out = []
    for row in rows:
        oi, oi_usd = res.get(row, "open_interest"), res.get(row, "open_interest_usd")
        if oi is None and oi_usd is None:
            continue
        at = ms_to_dt(_time(res, row, path))
        out.append(
            OpenInterestV1(
                event_id=deterministic_id(SOURCE, "market.open_interest", symbol, at),
                source=SOURCE,
                venue=venue,
                symbol=symbol,
                observed_at=at,
                produced_at=at,
                open_interest=oi,
                open_interest_usd=oi_usd,
            )
        )
    return _unique(out)


@_contract_errors_named
def read_long_short(path: Path, symbol: str, venue: str = SOURCE) -> list[LongShortRatioV1]:
    """Read long/short positioning, every kind the file has (`KINDS["long_short"]`)."""
    res, rows = _load("long_short", path, symbol)
    kinds = {k: v for k, v in LS_KINDS.items() if v[0] in res.index or v[1] in res.index}
    out = []
    for row in rows:
        at: datetime | None = None
        for kind, (share_f, ratio_f) in kinds.items():
            share, ratio = res.get(row, share_f), res.get(row, ratio_f)
            if share is None and ratio is None:
                continue
            if share is None:
                assert ratio is not None
                share = ratio / (1.0 + ratio)
            if ratio is None:
                ratio = share / (1.0 - share) if share < 1 else 0.0
            at = at or ms_to_dt(_time(res, row, path))
            out.append(
                LongShortRatioV1(
                    event_id=deterministic_id(SOURCE, "market.long_short_ratio", symbol, at, kind),
                    source=SOURCE,
                    venue=venue,
                    symbol=symbol,
                    observed_at=at,
                    produced_at=at,
                    kind=kind,
                    long_share=share,
                    short_share=1.0 - share,
                    ratio=ratio,
                )
            )
    return _unique(out)


@_contract_errors_named
def read_fear_greed(path: Path) -> list[FearGreedV1]:
    """Read the Fear & Greed history (`time,value[,value_classification]`, alternative.me)."""
    res, rows = _load("fear_greed", path)
    out = []
    for row in rows:
        value = res.get(row, "value")
        if value is None:
            continue
        at = ms_to_dt(_time(res, row, path))
        cls = res.raw(row, "classification")
        out.append(
            FearGreedV1(
                event_id=deterministic_id("alternative_me", "global.fear_greed", "fear_greed", at),
                source="alternative_me",
                symbol="fear_greed",
                observed_at=at,
                produced_at=at,
                value=round(value),
                classification=str(cls) if cls not in (None, "") else None,
            )
        )
    return _unique(out)


# Liquidated side: Binance order side (a SELL liquidates a LONG), Coinglass 1/2, words
_LIQUIDATED = {
    "sell": "LONG",
    "long": "LONG",
    "1": "LONG",
    "1.0": "LONG",
    "buy": "SHORT",
    "short": "SHORT",
    "2": "SHORT",
    "2.0": "SHORT",
}


# what venues put after a perpetual's pair: OKX -SWAP, Bitget v1 _UMCBL/_DMCBL/_CMCBL, -PERP
_CONTRACT_SUFFIX = re.compile(r"(swap|perpetual|perp|umcbl|dmcbl|cmcbl)$")


def same_symbol(name: str, symbol: str) -> bool:
    """Return True when `name` names `symbol`: BTCUSDT, BTC-USDT-SWAP (OKX), BTC/USDT:USDT
    (CCXT: the settle currency after the colon), BTCUSDT_UMCBL (Bitget), BTC (its USDT pair)."""
    n = _CONTRACT_SUFFIX.sub("", norm(name.split(":")[0]))
    want = _CONTRACT_SUFFIX.sub("", norm(symbol.split(":")[0]))
    return n == want or n + "usdt" == want or want + "usdt" == n


def _same_symbol(raw: Any, symbol: str) -> bool:
    """Return True when a file's symbol cell names `symbol` (or is empty)."""
    return raw in (None, "") or same_symbol(str(raw), symbol)


@_contract_errors_named
def read_liquidations(
    path: Path, symbol: str, venue: str = SOURCE
) -> list[LiquidationOrderV1 | LiquidationBucketV1]:
    """Read liquidations (`KINDS["liquidations"]`): one `LiquidationOrderV1` per order, or
    one `LiquidationBucketV1` per interval of long/short totals, as the live ingestor
    produces them. Rows of another symbol (a `symbol` column) are left out.

    A bucket's `time` is its start (Coinglass); it is observed at its end, the interval
    being the `window_s` column or else the smallest step between rows.
    """
    res, rows = _load("liquidations", path)
    idx = res.index
    bucketed = "long_usd" in idx or "short_usd" in idx
    if not bucketed and "side" not in idx:
        raise HistoryFormatError(_sideless_message(path))
    if not bucketed and "notional_usd" not in idx and not {"price", "quantity"} <= set(idx):
        raise HistoryFormatError(f"{path}: liquidation orders need a USD value or price and size")
    kept = [r for r in rows if _same_symbol(res.raw(r, "symbol"), symbol)]
    if bucketed:
        return _liquidation_buckets(res, kept, path, symbol, venue)
    orders: list[LiquidationOrderV1 | LiquidationBucketV1] = []
    for row in kept:
        side = _LIQUIDATED.get(str(res.raw(row, "side")).strip().lower())
        if side is None:
            raise HistoryFormatError(
                f"{path}: liquidation side {res.raw(row, 'side')!r} is none of "
                "BUY/SELL, LONG/SHORT, 1/2"
            )
        price, qty, usd = (res.get(row, n) for n in ("price", "quantity", "notional_usd"))
        if usd is None and price is not None and qty is not None:
            usd = price * qty
        if usd is None or usd <= 0:
            continue
        if price is None or price <= 0:
            price = usd / qty if qty else usd
        qty = qty if qty else usd / price
        at = ms_to_dt(_time(res, row, path))
        exchange = res.raw(row, "exchange")
        order_venue = str(exchange).lower() if exchange not in (None, "") else venue
        orders.append(
            LiquidationOrderV1(
                event_id=deterministic_id(
                    SOURCE, "liquidation.order", symbol, at, order_venue, side, price, qty
                ),
                source=SOURCE,
                venue=order_venue,
                symbol=symbol,
                observed_at=at,
                produced_at=at,
                liquidated_side=side,
                price=price,
                quantity=qty,
                notional_usd=usd,
            )
        )
    return sorted(orders, key=lambda e: e.observed_at)


# Hyperliquid's public historical_data liquidations.csv: one row per liquidated *account*
_HYPERLIQUID_ACCOUNTS = frozenset({"user", "liquidatedntlpos", "liquidatedaccountvalue"})


def _sideless_message(path: Path) -> str:
    """Say why a liquidation list without sides is refused and what would be accepted."""
    header = read_table(path).header or []
    seen = ", ".join(header) if header else "rows without a header"
    what = (
        "it is Hyperliquid's account-level list (historical_data liquidations.csv): a row is "
        "one account's liquidation, `liquidated_ntl_pos` its unsigned notional over every "
        "position closed (a cross-margin account's positions in any coins, long and short "
        "together), so neither the coin nor the side can be derived from it"
        if {norm(h) for h in header} >= _HYPERLIQUID_ACCOUNTS
        else "no column says which side each liquidation forced out"
    )
    return (
        f"{path}: liquidations without a side (columns: {seen}); {what}. The liquidation "
        "factor weighs longs against shorts liquidated, so it needs either a side per order "
        "(BUY/SELL of the liquidation order, LONG/SHORT or 1/2 of the position: name the "
        "column with --columns liquidations.side=<column>) or long/short USD totals per "
        "interval (--columns liquidations.long_usd=<column>,liquidations.short_usd=<column>), "
        "and a symbol column (--columns liquidations.symbol=<column>) when the file mixes coins"
    )


def _liquidation_buckets(
    res: Resolved, rows: Iterable[Sequence[Any]], path: Path, symbol: str, venue: str
) -> list[LiquidationOrderV1 | LiquidationBucketV1]:
    parsed = [(_time(res, r, path), r) for r in rows]
    parsed.sort(key=lambda x: x[0])
    steps = [b - a for (a, _), (b, _) in itertools.pairwise(parsed) if b > a]
    step_s = min(steps) // 1000 if steps else None
    out: list[LiquidationOrderV1 | LiquidationBucketV1] = []
    for t_ms, row in parsed:
        window = res.get(row, "window_s")
        window_s = int(window) if window else step_s
        if not window_s:
            raise HistoryFormatError(
                f"{path}: one liquidation total and no window_s column: interval unknown"
            )
        end = ms_to_dt(t_ms + window_s * 1000)
        long_usd, short_usd = res.get(row, "long_usd") or 0.0, res.get(row, "short_usd") or 0.0
        out.append(
            LiquidationBucketV1(
                event_id=deterministic_id(SOURCE, "market.liquidation_bucket", symbol, end),
                source=SOURCE,
                venue=venue,
                symbol=symbol,
                observed_at=end,
                produced_at=end,
                window_s=window_s,
                long_liquidations_usd=long_usd,
                short_liquidations_usd=short_usd,
                count=None,
            )
        )
    return _unique(out)


@_contract_errors_named
def read_social(path: Path, symbol: str) -> list[SocialMetricsV1]:
    """Read a LunarCrush coin time series (`KINDS["social"]`) as the live ingestor's
    `SocialMetricsV1` (vendor `lunarcrush`), each observed at its own time."""
    res, rows = _load("social", path)
    metrics = ("galaxy_score", "sentiment", "social_volume_change_pct")
    if not any(m in res.index for m in metrics):
        raise HistoryFormatError(
            f"{path}: no sentiment, galaxy_score or social_volume_change_pct column: "
            "nothing the social factor scores"
        )
    out = []
    for row in rows:
        values = {m: res.get(row, m) for m in metrics}
        if all(v is None for v in values.values()):
            continue
        at = ms_to_dt(_time(res, row, path))
        rank = res.get(row, "alt_rank")
        out.append(
            SocialMetricsV1(
                event_id=deterministic_id("lunarcrush", "market.social", symbol, at),
                source="lunarcrush",
                venue="lunarcrush",
                symbol=symbol,
                observed_at=at,
                produced_at=at,
                galaxy_score=values["galaxy_score"],
                sentiment=values["sentiment"],
                social_volume_change_pct=values["social_volume_change_pct"],
                alt_rank=None if rank is None else round(rank),
                social_dominance=res.get(row, "social_dominance"),
                interactions_24h=res.get(row, "interactions_24h"),
                social_volume_24h=res.get(row, "social_volume_24h"),
            )
        )
    return _unique(out)


@_contract_errors_named
def read_taker_flow(path: Path, symbol: str, venue: str = SOURCE) -> list[TakerFlowV1]:
    """Read taker buy/sell volumes (`KINDS["taker_flow"]`) as the live ingestor's
    `TakerFlowV1`, in base units or USD as the file has them.

    A row's volume is known once its period closes: it is observed one period after its
    time (the smallest step between rows; a lone row at its time). Coinglass stamps a period
    with its start; a venue stamping the end is then read one period late, never early.
    """
    res, rows = _load("taker_flow", path, symbol)
    idx = res.index
    usd = {"buy_volume_usd", "sell_volume_usd"} <= set(idx)
    if not usd and not {"buy_volume", "sell_volume"} <= set(idx):
        raise HistoryFormatError(
            f"{path}: cannot read as taker flow: need taker buy and sell volumes (columns "
            f"found: {', '.join(sorted(idx))}; accepted: buyVol/sellVol, "
            "aggregated_buy_volume_usd/aggregated_sell_volume_usd, taker_buy_volume_usd/"
            "taker_sell_volume_usd, or --columns buy_volume=<col>,sell_volume=<col>)"
        )
    buy_f, sell_f = ("buy_volume_usd", "sell_volume_usd") if usd else ("buy_volume", "sell_volume")
    parsed = sorted(((_time(res, r, path), r) for r in rows), key=lambda x: x[0])
    steps = [b - a for (a, _), (b, _) in itertools.pairwise(parsed) if b > a]
    step_ms = min(steps) if steps else 0
    period = next((n for n, sec in TIMEFRAME_SECONDS.items() if sec * 1000 == step_ms), None)
    out = []
    for t_ms, row in parsed:
        buy, sell = res.get(row, buy_f), res.get(row, sell_f)
        if buy is None or sell is None or buy < 0 or sell < 0 or buy + sell <= 0:
            continue
        at = ms_to_dt(t_ms + step_ms)
        out.append(
            TakerFlowV1(
                event_id=deterministic_id(SOURCE, "market.taker_flow", symbol, at),
                source=SOURCE,
                venue=venue,
                symbol=symbol,
                observed_at=at,
                produced_at=at,
                buy_volume=buy,
                sell_volume=sell,
                buy_sell_ratio=buy / sell if sell > 0 else 0.0,
                unit="usd" if usd else "base",
                period=period,
            )
        )
    return _unique(out)


def aggregate(series: CandleSeries, timeframe: str) -> CandleSeries:
    """Aggregate `series` into `timeframe` buckets (UTC-aligned), closed buckets only.

    A bucket with missing sub-bars is still built from the bars present: venues such as FTX
    publish no bar for a minute without trades, so an absent bar is no trading, not lost
    data. The last bucket is kept only when its final sub-bar is present (it had closed).
    """
    step = TIMEFRAME_SECONDS[timeframe] * 1000
    base = series.step_ms
    if step == base:
        return series
    if step % base:
        raise HistoryFormatError(
            f"{timeframe} is not a multiple of the candles' {series.timeframe}"
        )
    per = step // base
    out = CandleSeries(timeframe, volume_missing=series.volume_missing)
    n = len(series)
    i = 0
    while i < n:
        bucket = series.open_ms[i] // step * step
        j = i
        while j < n and series.open_ms[j] < bucket + step:
            j += 1
        last_closes_bucket = series.open_ms[j - 1] + base == bucket + step
        if j < n or last_closes_bucket:
            out.open_ms.append(bucket)
            out.open.append(series.open[i])
            out.high.append(max(series.high[i:j]))
            out.low.append(min(series.low[i:j]))
            out.close.append(series.close[j - 1])
            out.volume.append(sum(series.volume[i:j]))
            qs = series.quote_volume[i:j]
            out.quote_volume.append(
                None if any(q is None for q in qs) else sum(q or 0.0 for q in qs)
            )
            if j - i < per:
                out.partial_buckets += 1
        i = j
    return out


def candle_events(series: CandleSeries, symbol: str, venue: str = SOURCE) -> list[CandleClosedV1]:
    """Return one `CandleClosedV1` per bar, observed at its close time.

    The first candle goes through the validated constructor (symbol, venue, timeframe and
    ids are the same for every candle). When the whole series passes `_plain_series` (the
    prices, volumes and times the contract's constraints allow, checked in bulk) the rest
    are that candle with their own numbers, built without re-validation: a month of 1m
    bars spent ~5 % of a backtest validating them one by one. Any series that does not
    pass is validated candle by candle, so a bad row raises the same error as before.
    """
    step = timedelta(milliseconds=series.step_ms)
    tf = series.timeframe
    out: list[CandleClosedV1] = []
    plain = _plain_series(series)
    first: CandleClosedV1 | None = None
    fields_set: set[str] = set()
    for k in range(len(series)):
        open_at = ms_to_dt(series.open_ms[k])
        close_at = open_at + step
        event_id = deterministic_id(SOURCE, "market.candle", symbol, close_at, tf)
        if first is not None:
            values = first.__dict__.copy()
            values["event_id"] = event_id
            values["observed_at"] = values["produced_at"] = close_at
            values["open_time"] = open_at
            values["open"] = series.open[k]
            values["high"] = series.high[k]
            values["low"] = series.low[k]
            values["close"] = series.close[k]
            values["volume"] = series.volume[k]
            values["quote_volume"] = series.quote_volume[k]
            out.append(trusted(CandleClosedV1, values, fields_set))
            continue
        candle = CandleClosedV1(
            event_id=event_id,
            source=SOURCE,
            venue=venue,
            symbol=symbol,
            observed_at=close_at,
            produced_at=close_at,  # deterministic files and reports
            timeframe=tf,
            open_time=open_at,
            open=series.open[k],
            high=series.high[k],
            low=series.low[k],
            close=series.close[k],
            volume=series.volume[k],
            quote_volume=series.quote_volume[k],
        )
        out.append(candle)
        if plain:
            first, fields_set = candle, candle.model_fields_set
    return out


_FLOAT = {float}


def _plain_series(series: CandleSeries) -> bool:
    """Return True when every bar of `series` is one the candle contract accepts as it is:
    float prices within [MIN_PRICE, MAX_PRICE] and the range holding open and close, float
    volumes within [0, MAX_AMOUNT] (quote volumes all float or all None), open times from
    MIN_EVENT_TIME and close times a second or more before the clock-skew limit. Such
    values pass the validators unchanged. False sends the series through validation."""
    n = len(series)
    if n < 2:
        return False
    prices = (series.open, series.high, series.low, series.close)
    if any(set(map(type, col)) != _FLOAT for col in (*prices, series.volume)):
        return False
    quote = series.quote_volume
    quote_types = set(map(type, quote))
    if quote_types != _FLOAT and quote_types != {type(None)}:
        return False
    if set(map(type, series.open_ms)) != {int}:
        return False
    o, h, lo, c = (np.asarray(col, dtype=np.float64) for col in prices)
    if not (
        np.all((lo >= MIN_PRICE) & (h <= MAX_PRICE))
        and np.all((lo <= o) & (o <= h) & (lo <= c) & (c <= h))
    ):
        return False  # NaN fails every comparison
    volumes = [series.volume] if quote_types != _FLOAT else [series.volume, quote]
    for col in volumes:
        v = np.asarray(col, dtype=np.float64)
        if not np.all((v >= 0.0) & (v <= MAX_AMOUNT)):
            return False
    first_open, last_close = min(series.open_ms), max(series.open_ms) + series.step_ms
    newest_s = time.time() + max_clock_skew_s() - 1.0
    return first_open >= MIN_EVENT_TIME.timestamp() * 1000 and last_close / 1000 <= newest_s


def describe(events: Sequence[Any]) -> tuple[datetime, datetime] | None:
    """Return (first, last) observed_at of time-ordered events, or None when empty."""
    if not events:
        return None
    return events[0].observed_at, events[-1].observed_at
