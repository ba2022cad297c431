"""Importers: public history files -> the platform's typed market events.

Shapes understood (header names are matched case-insensitively; see BACKTEST.md):

* candles: `open_time,open,high,low,close,volume` (ms UTC), the same with `volume_usd`
  (FTX), and Binance's published kline CSVs (12 columns, with or without a header).
* funding: `time,rate`, Binance's API dump (`fundingTime,fundingRate[,markPrice]`) and its
  published files (`calc_time,funding_interval_hours,last_funding_rate`).
* open interest / long-short: any CSV with a time column plus Binance's column names
  (`sumOpenInterest`, `toplongAccount`, `globallongShortRatio`, ...) or the daily "metrics"
  files (`create_time,symbol,sum_open_interest,...,count_long_short_ratio,...`).
* fear & greed: `time,value[,value_classification]` (alternative.me).

Times may be epoch s/ms/us or ISO strings; everything becomes aware UTC. Event ids are
deterministic (`deterministic_id`), `observed_at` is when the value became known: a candle's
close time (a candle is visible only once closed), a point series' own time.
"""

from __future__ import annotations

import csv
import itertools
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from perpsignal_common.events.base import deterministic_id
from perpsignal_common.events.market import (
    TIMEFRAME_SECONDS,
    CandleClosedV1,
    FearGreedV1,
    FundingRateV1,
    LongShortRatioV1,
    OpenInterestV1,
)

log = logging.getLogger(__name__)

SOURCE = "history"
TIME_COLUMNS = (
    "open_time",
    "time",
    "timestamp",
    "create_time",
    "calc_time",
    "fundingtime",
    "funding_time",
    "date",
)
KLINE_COLUMNS = (
    "open_time",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "close_time",
    "quote_volume",
    "count",
    "taker_buy_volume",
    "taker_buy_quote_volume",
    "ignore",
)


class HistoryFormatError(ValueError):
    """A history file cannot be read as the shape it was given as."""


def parse_time_ms(raw: str) -> int:
    """Return epoch milliseconds from epoch s/ms/us digits or an ISO date/time (UTC if naive)."""
    text = raw.strip()
    try:
        value = float(text)
    except ValueError:
        try:
            dt = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError as exc:
            raise HistoryFormatError(f"unreadable time {raw!r}") from exc
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return round(dt.timestamp() * 1000)
    if value >= 1e14:  # microseconds (Binance spot files since 2025)
        return int(value // 1000)
    if value < 1e11:  # seconds (alternative.me API)
        return int(value * 1000)
    return int(value)


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
        )

    def gaps(self) -> int:
        """Return how many bars are missing between the first and the last."""
        if not self.open_ms:
            return 0
        return (self.open_ms[-1] - self.open_ms[0]) // self.step_ms + 1 - len(self.open_ms)


def _rows(path: Path) -> tuple[list[str] | None, Iterator[list[str]]]:
    """Return (lower-cased header or None, data rows) of a CSV file."""
    fh = path.open(newline="")
    reader = csv.reader(fh)
    first = next(reader, None)
    if first is None:
        fh.close()
        raise HistoryFormatError(f"{path}: empty file")

    def rest(head: list[str] | None) -> Iterator[list[str]]:
        try:
            if head is not None:
                yield head
            for row in reader:
                if row:
                    yield row
        finally:
            fh.close()

    try:
        float(first[0])
    except ValueError:
        return [c.strip().lower() for c in first], rest(None)
    return None, rest(first)


def _col(header: Sequence[str], *names: str) -> int | None:
    for n in names:
        if n in header:
            return header.index(n)
    return None


def _time_col(header: Sequence[str], path: Path) -> int:
    idx = _col(header, *TIME_COLUMNS)
    if idx is None:
        raise HistoryFormatError(f"{path}: no time column (one of {', '.join(TIME_COLUMNS)})")
    return idx


def read_candles(path: Path) -> CandleSeries:
    """Read a candle CSV (plain OHLCV, FTX `volume_usd`, Binance klines) into a series."""
    header, rows = _rows(path)
    if header is None:
        header = list(KLINE_COLUMNS)  # Binance's published kline files have no header
    t = _time_col(header, path)
    idx = [_col(header, n) for n in ("open", "high", "low", "close")]
    if any(i is None for i in idx):
        raise HistoryFormatError(f"{path}: candles need open, high, low and close columns")
    o, h, lo, c = (i for i in idx if i is not None)
    vol = _col(header, "volume")
    quote = _col(header, "quote_volume", "quote_asset_volume", "volume_usd")
    times: list[int] = []
    opens: list[float] = []
    highs: list[float] = []
    lows: list[float] = []
    closes: list[float] = []
    vols: list[float] = []
    quotes: list[float | None] = []
    for row in rows:
        if len(row) <= max(t, o, h, lo, c):
            continue  # a truncated trailing line
        times.append(parse_time_ms(row[t]))
        opens.append(float(row[o]))
        highs.append(float(row[h]))
        lows.append(float(row[lo]))
        close = float(row[c])
        closes.append(close)
        q = float(row[quote]) if quote is not None and row[quote] else None
        quotes.append(q)
        if vol is not None and row[vol]:
            vols.append(float(row[vol]))
        else:
            # only a quote (USD) volume is published: base volume estimated at the close
            vols.append(q / close if q is not None and close > 0 else 0.0)
    if len(times) < 2:
        raise HistoryFormatError(f"{path}: fewer than two candles")
    order = sorted(range(len(times)), key=times.__getitem__)
    if order != list(range(len(times))):
        times = [times[i] for i in order]
        opens, highs = [opens[i] for i in order], [highs[i] for i in order]
        lows, closes = [lows[i] for i in order], [closes[i] for i in order]
        vols, quotes = [vols[i] for i in order], [quotes[i] for i in order]
    step = min(b - a for a, b in itertools.pairwise(times) if b > a)
    return CandleSeries(timeframe_of(step // 1000), times, opens, highs, lows, closes, vols, quotes)


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
    out = CandleSeries(timeframe)
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
            known = [q for q in qs if q is not None]
            out.quote_volume.append(sum(known) if len(known) == len(qs) else None)
            if j - i < per:
                out.partial_buckets += 1
        i = j
    return out


def candle_events(series: CandleSeries, symbol: str, venue: str = SOURCE) -> list[CandleClosedV1]:
    """Return one `CandleClosedV1` per bar, observed at its close time."""
    step = timedelta(milliseconds=series.step_ms)
    tf = series.timeframe
    out: list[CandleClosedV1] = []
    for k in range(len(series)):
        open_at = ms_to_dt(series.open_ms[k])
        close_at = open_at + step
        out.append(
            CandleClosedV1(
                event_id=deterministic_id(SOURCE, "market.candle", symbol, close_at, tf),
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
        )
    return out


def _float(row: list[str], idx: int | None) -> float | None:
    if idx is None or idx >= len(row) or not row[idx].strip():
        return None
    return float(row[idx])


def read_funding(path: Path, symbol: str, venue: str = SOURCE) -> list[FundingRateV1]:
    """Read a funding CSV (`time,rate`, Binance API dump or published file)."""
    header, rows = _rows(path)
    if header is None:
        header = ["time", "rate"]
    t = _time_col(header, path)
    rate = _col(header, "rate", "fundingrate", "funding_rate", "last_funding_rate")
    if rate is None:
        raise HistoryFormatError(f"{path}: no funding rate column (rate, fundingRate, ...)")
    mark = _col(header, "markprice", "mark_price")
    interval = _col(header, "funding_interval_hours", "interval_h")
    out = []
    for row in rows:
        at = ms_to_dt(parse_time_ms(row[t]))
        out.append(
            FundingRateV1(
                event_id=deterministic_id(SOURCE, "market.funding", symbol, at),
                source=SOURCE,
                venue=venue,
                symbol=symbol,
                observed_at=at,
                produced_at=at,
                rate=float(row[rate]),
                mark_price=_float(row, mark),
                interval_h=_float(row, interval),
                settled=True,
            )
        )
    return sorted(out, key=lambda e: e.observed_at)


def read_open_interest(path: Path, symbol: str, venue: str = SOURCE) -> list[OpenInterestV1]:
    """Read open interest (base contracts and/or USD) from a time-indexed CSV."""
    header, rows = _rows(path)
    if header is None:
        raise HistoryFormatError(f"{path}: open-interest CSVs need a header")
    t = _time_col(header, path)
    base = _col(header, "sumopeninterest", "sum_open_interest", "open_interest", "openinterest")
    usd = _col(
        header, "sumopeninterestvalue", "sum_open_interest_value", "open_interest_usd", "oi_usd"
    )
    if base is None and usd is None:
        raise HistoryFormatError(f"{path}: no open-interest column (sumOpenInterest, ...)")
    out = []
    for row in rows:
        at = ms_to_dt(parse_time_ms(row[t]))
        oi, oi_usd = _float(row, base), _float(row, usd)
        if oi is None and oi_usd is None:
            continue
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
    return sorted(out, key=lambda e: e.observed_at)


# kind -> (share-of-longs columns, long/short ratio columns)
LS_COLUMNS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "global_account": (
        ("globallongaccount", "global_long_account", "longaccount", "long_account"),
        (
            "globallongshortratio",
            "count_long_short_ratio",
            "global_long_short_ratio",
            "longshortratio",
            "long_short_ratio",
            "ratio",
        ),
    ),
    "top_account": (
        ("toplongaccount", "top_long_account"),
        ("topacclongshortratio", "count_toptrader_long_short_ratio", "top_account_ratio"),
    ),
    "top_position": (
        ("longposition", "long_position", "top_long_position"),
        ("topposlongshortratio", "sum_toptrader_long_short_ratio", "top_position_ratio"),
    ),
}


def read_long_short(path: Path, symbol: str, venue: str = SOURCE) -> list[LongShortRatioV1]:
    """Read long/short positioning (every kind the file has) from a time-indexed CSV."""
    header, rows = _rows(path)
    if header is None:
        raise HistoryFormatError(f"{path}: long/short CSVs need a header")
    t = _time_col(header, path)
    kinds = {
        kind: (_col(header, *shares), _col(header, *ratios))
        for kind, (shares, ratios) in LS_COLUMNS.items()
    }
    kinds = {k: v for k, v in kinds.items() if v != (None, None)}
    if not kinds:
        raise HistoryFormatError(f"{path}: no long/short column (globalLongShortRatio, ...)")
    out = []
    for row in rows:
        at = ms_to_dt(parse_time_ms(row[t]))
        for kind, (share_col, ratio_col) in kinds.items():
            share, ratio = _float(row, share_col), _float(row, ratio_col)
            if share is None and ratio is None:
                continue
            if share is None and ratio is not None:
                share = ratio / (1.0 + ratio)
            assert share is not None
            if ratio is None:
                ratio = share / (1.0 - share) if share < 1 else 0.0
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
    return sorted(out, key=lambda e: e.observed_at)


def read_fear_greed(path: Path) -> list[FearGreedV1]:
    """Read the Fear & Greed history (`time,value[,value_classification]`)."""
    header, rows = _rows(path)
    if header is None:
        header = ["time", "value"]
    t = _time_col(header, path)
    val = _col(header, "value", "fng_value", "fear_greed")
    if val is None:
        raise HistoryFormatError(f"{path}: no value column")
    cls = _col(header, "value_classification", "classification")
    out = []
    for row in rows:
        at = ms_to_dt(parse_time_ms(row[t]))
        out.append(
            FearGreedV1(
                event_id=deterministic_id("alternative_me", "global.fear_greed", "fear_greed", at),
                source="alternative_me",
                symbol="fear_greed",
                observed_at=at,
                produced_at=at,
                value=round(float(row[val])),
                classification=row[cls] if cls is not None and cls < len(row) else None,
            )
        )
    return sorted(out, key=lambda e: e.observed_at)


def describe(events: Sequence[Any]) -> tuple[datetime, datetime] | None:
    """Return (first, last) observed_at of time-ordered events, or None when empty."""
    if not events:
        return None
    return events[0].observed_at, events[-1].observed_at
