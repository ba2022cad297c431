"""`--timerange START-END` (freqtrade's convention): restrict a backtest to a period.

`YYYYMMDD-YYYYMMDD`, either side open (`20240101-`, `-20240131`), UTC; the start is
inclusive, the end exclusive (`20240101-20240102` is one day). Signals are kept when observed
in [start, end). Nothing at or after the end is used (candles that close after it are dropped,
so outcomes due after the end are not measured); before the start, a warm-up of
`WARMUP_BARS` scoring bars and the point series' lead-in are still replayed, so the first
signals in the range are scored as they would have been live.
"""

from __future__ import annotations

import bisect
import dataclasses
import math
from collections.abc import Sequence
from datetime import UTC, datetime

from perpsignal_cli.backtesting.importers import CandleSeries
from perpsignal_cli.backtesting.pipeline import (
    LEAD_IN_S,
    EventStream,
    History,
    RunResult,
    SignalRecord,
)
from perpsignal_common.events.base import Event

WARMUP_BARS = 500


class TimerangeError(ValueError):
    """The --timerange value is not START-END in YYYYMMDD."""


def parse_timerange(text: str) -> tuple[int | None, int | None]:
    """Return (start ms, end ms) of `YYYYMMDD-YYYYMMDD`, None for an open side."""
    if text.count("-") != 1:
        raise TimerangeError(f"--timerange {text!r}: use YYYYMMDD-YYYYMMDD (either side empty)")
    start_s, end_s = text.split("-")
    start, end = _day_ms(start_s, text), _day_ms(end_s, text)
    if start is not None and end is not None and end <= start:
        raise TimerangeError(f"--timerange {text!r}: the end must be after the start")
    if start is None and end is None:
        raise TimerangeError(f"--timerange {text!r}: give a start, an end or both")
    return start, end


def _day_ms(part: str, text: str) -> int | None:
    if not part:
        return None
    try:
        if len(part) != 8 or not part.isdigit():
            raise ValueError(part)
        day = datetime.strptime(part, "%Y%m%d").replace(tzinfo=UTC)
    except ValueError as exc:
        raise TimerangeError(f"--timerange {text!r}: {part!r} is not YYYYMMDD") from exc
    return int(day.timestamp() * 1000)


def _cut(series: CandleSeries, lo_ms: int | None, end_ms: int | None) -> CandleSeries:
    lo = 0 if lo_ms is None else bisect.bisect_left(series.open_ms, lo_ms)
    hi = (
        len(series)
        if end_ms is None
        else bisect.bisect_right(series.open_ms, end_ms - series.step_ms)
    )
    return series.slice(lo, hi)


def restrict(history: History, start_ms: int | None, end_ms: int | None) -> History:
    """Return `history` cut to the range, with the warm-up kept before the start."""
    warm = None
    if start_ms is not None:
        warm = start_ms - max(WARMUP_BARS * history.primary.step_ms, LEAD_IN_S * 1000)
    base = _cut(history.base, warm, end_ms)
    primary = _cut(history.primary, warm, end_ms)
    if not len(primary) or (start_ms is not None and primary.open_ms[-1] < start_ms):
        raise TimerangeError("--timerange: no candles of the history fall inside the range")
    lo_ms = -math.inf if warm is None else warm
    hi_ms = math.inf if end_ms is None else end_ms
    events: Sequence[Event] = (
        history.events.between(lo_ms, hi_ms)
        if isinstance(history.events, EventStream)
        else [e for e in history.events if lo_ms <= e.observed_at.timestamp() * 1000 <= hi_ms]
    )
    note = (
        f"timerange: signals from {_day(start_ms, 'the start')} to {_day(end_ms, 'the end')}"
        " (the warm-up before the start is replayed, not reported)"
    )
    return dataclasses.replace(
        history, base=base, primary=primary, events=events, notes=[*history.notes, note], _paths={}
    )


def _day(ms: int | None, default: str) -> str:
    return default if ms is None else datetime.fromtimestamp(ms / 1000, UTC).date().isoformat()


def keep_in_range(result: RunResult, start_ms: int | None, end_ms: int | None = None) -> RunResult:
    """Return `result` with only the signals observed in [start, end) (no warm-up ones)."""
    lo = -math.inf if start_ms is None else start_ms
    hi = math.inf if end_ms is None else end_ms
    kept = [r for r in result.records if in_range(r, lo, hi)]
    return dataclasses.replace(result, records=kept)


def in_range(rec: SignalRecord, lo_ms: float, hi_ms: float) -> bool:
    """Return True when the signal was observed in [lo_ms, hi_ms) (what a report keeps)."""
    return lo_ms <= rec.judged.observed_at.timestamp() * 1000 < hi_ms
