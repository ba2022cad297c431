"""Candles: read into a `CandleSeries` with the bar checks the candle contract makes
(length, order, prices, volumes, times), aggregated to a timeframe, made into events."""

from __future__ import annotations

import collections
import itertools
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import numpy as np

from perpsignal_cli.backtesting.importing.base import (
    SOURCE,
    HistoryFormatError,
    _contract_errors_named,
)
from perpsignal_cli.backtesting.importing.resolving import _load, _time, number
from perpsignal_cli.backtesting.importing.times import ms_to_dt, timeframe_of
from perpsignal_common.events.base import deterministic_id
from perpsignal_common.events.market import (
    TIMEFRAME_SECONDS,
    CandleClosedV1,
)
from perpsignal_common.events.values import (
    MAX_AMOUNT,
    MAX_PRICE,
    MIN_EVENT_TIME,
    MIN_PRICE,
    max_clock_skew_s,
)
from perpsignal_domain.trusted import trusted

# the importers' one logger, whichever module logs
log = logging.getLogger("perpsignal_cli.backtesting.importers")


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
    pairs = list(zip(order, after, strict=True))
    order = [i for i, j in pairs if j < 0 or times[j] != times[i]]
    if len(order) < len(times):
        # a repeat that differs from the row kept is a choice the user should see
        repeats = [(i, j) for i, j in pairs if j >= 0 and times[j] == times[i]]
        cols = (opens, highs, lows, closes, vols)
        differ = [(i, j) for i, j in repeats if any(c[i] != c[j] for c in cols)]
        first = ms_to_dt(times[(differ or repeats)[0][0]]).isoformat().replace("+00:00", "Z")
        log.warning(
            "%s: %d rows repeat a time (%d with other prices or volume than the row kept; "
            "the first at %s); the last row of each time is kept",
            path.name,
            len(times) - len(order),
            len(differ),
            first,
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
