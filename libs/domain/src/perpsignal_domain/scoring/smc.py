"""Causal Smart Money Concepts: swings, BOS, CHoCH, fair value gaps, equal highs/lows.

Causal means every event is emitted on the bar that reveals it and carries that bar's
index and close time (`known_index`, `known_at`); nothing is ever rewritten:

* swing high at bar j: high[j] is above the `n` highs before it and at least the `n` after
  it; it is *known* only at bar j+n, when the right-hand side has closed. Swing lows mirror.
* BOS / CHoCH: a close beyond the latest confirmed, unbroken swing level. A break against
  the prevailing structure (a bullish break while the trend is bearish) is a change of
  character (CHoCH); a break with it, or the first break, is a break of structure (BOS).
* fair value gap at bar i: low[i] > high[i-2] (bullish, zone high[i-2]..low[i]) or
  high[i] < low[i-2] (bearish); mitigated on the first later bar trading back into the zone
  (low <= top for bullish, high >= bottom for bearish). Gaps older than `fvg_max_age` bars
  are no longer tracked.
* equal highs / lows (liquidity): a new swing within `tolerance` (relative) of one of the
  previous `eq_lookback` swings of the same side.

`SmcAnalyzer.update(bar)` is the streaming API; `analyze_batch(...)` is an independent,
vectorized implementation over a whole history. The tests hold them equal at every prefix,
which is the causality guarantee (a batch run on a truncated history equals the stream).

We do not use the `smartmoneyconcepts` package: its swing and FVG functions look ahead
(a swing is written at the swing bar using later bars, and mitigation indices point into
the future), so a batch run rewrites earlier bars as history grows, and it prints a banner
to stdout on import. TA libraries (TA-Lib, talipp) have no SMC primitives.
"""

from __future__ import annotations

import math
from collections import deque
from operator import attrgetter
from typing import Any, Literal, NamedTuple

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from perpsignal_domain.scoring.state import Bar

Kind = Literal[
    "swing_high",
    "equal_highs",
    "swing_low",
    "equal_lows",
    "fvg_mitigated",
    "fvg",
    "bos",
    "choch",
]
# order of events revealed by one bar, so both implementations list them identically
_PHASE = {
    "swing_high": 0,
    "equal_highs": 1,
    "swing_low": 2,
    "equal_lows": 3,
    "fvg_mitigated": 4,
    "fvg": 5,
    "bos": 6,
    "choch": 6,
}


class SmcEvent(NamedTuple):
    """One structure event; `direction` is +1 bullish/up, -1 bearish/down.

    Immutable and ordered field by field (known bar, phase, direction, ...), like the frozen
    ordered dataclass it replaces, but built and compared in C: the batch run sorts
    thousands and the stream builds about one per bar.
    """

    known_index: int
    phase: int
    direction: int
    ref_index: int
    kind: str
    level: float
    bottom: float
    known_at: float

    def label(self, tf: str) -> str:
        """Return a short human label such as `BOS up @ 1h`."""
        word = "up" if self.direction > 0 else "down"
        return f"{self.kind.upper()} {word} @ {tf}"


_new_event = tuple.__new__


def _event(
    kind: Kind, direction: int, ref: int, known: int, at: float, level: float, bottom: float
) -> SmcEvent:
    return _new_event(SmcEvent, (known, _PHASE[kind], direction, ref, kind, level, bottom, at))


class SmcAnalyzer:
    """Streaming SMC over one timeframe; feed closed bars in order."""

    __slots__ = (
        "_bear_bottom",
        "_bull_top",
        "_fvgs",
        "_high",
        "_high_bar",
        "_highs",
        "_hs",
        "_low",
        "_low_bar",
        "_lows",
        "_ls",
        "_window",
        "eq_lookback",
        "fvg_max_age",
        "index",
        "last_by_kind",
        "last_structure",
        "n",
        "open_fvgs",
        "tolerance",
        "trend",
        "version",
    )

    def __init__(
        self,
        swing_length: int = 3,
        tolerance: float = 0.001,
        eq_lookback: int = 5,
        fvg_max_age: int = 500,
    ) -> None:
        self.n = swing_length
        self.tolerance = tolerance
        self.eq_lookback = eq_lookback
        self.fvg_max_age = fvg_max_age
        self.index = -1
        # highs and lows of the last 2n+1 bars: the only part of a bar the rules look back at
        self._hs: list[float] = []
        self._ls: list[float] = []
        self._window = 2 * swing_length + 1
        # active (unbroken) swing high and low: level and bar; +inf / -inf when there is none,
        # so that the break test is one comparison
        self._high, self._high_bar = math.inf, -1
        self._low, self._low_bar = -math.inf, -1
        self._highs: deque[float] = deque(maxlen=eq_lookback)
        self._lows: deque[float] = deque(maxlen=eq_lookback)
        self._fvgs: list[tuple[int, float, float, int]] = []  # (dir, top, bottom, bar)
        # bounds over the open gaps: a bar above every bullish top and below every bearish
        # bottom mitigates none of them, so the per-gap loop is skipped (O(1) per bar)
        self._bull_top = -math.inf
        self._bear_bottom = math.inf
        self.trend = 0
        self.last_structure: SmcEvent | None = None
        self.open_fvgs = 0
        self.last_by_kind: dict[str, SmcEvent] = {}
        self.version = 0  # bumped whenever `last_by_kind` or `open_fvgs` changes

    def memento(self) -> SmcMemento:
        """Everything `update` may change (containers copied one level: their items are
        immutable); `restore(memento)` returns to it. The engine's undo of a failed event."""
        return SmcMemento(
            self,
            _MUTABLE(self),
            self._hs.copy(),
            self._ls.copy(),
            self._highs.copy(),
            self._lows.copy(),
            self._fvgs.copy(),
            self.last_by_kind.copy(),
        )

    def restore(self, memento: SmcMemento) -> None:
        """Return to `memento()`; the version moves on (caches keyed by it are stale)."""
        version = self.version
        for name, value in zip(_MUTABLE_NAMES, memento.scalars, strict=True):
            setattr(self, name, value)
        self._hs, self._ls = memento.hs, memento.ls
        self._highs, self._lows = memento.highs, memento.lows
        self._fvgs, self.last_by_kind = memento.fvgs, memento.last_by_kind
        self.version = version + 1

    def update(self, bar: Bar) -> list[SmcEvent]:
        """Add one closed bar; return the events it reveals (possibly none).

        O(1) per bar: only the bar n back (the newly confirmable pivot) is tested, and the
        open gaps are scanned only when the bar reaches one of them or the oldest expires.
        """
        self.index = i = self.index + 1
        at, high, low, n = bar.close_s, bar.high, bar.low, self.n
        hs, ls = self._hs, self._ls
        hs.append(high)
        ls.append(low)
        size = len(hs)
        if size > self._window:
            del hs[0], ls[0]
            size -= 1
        out: list[SmcEvent] = []
        if size == self._window:
            j = i - n
            # a pivot must be the window's extreme: most bars are rejected by comparing it with
            # its two neighbours, the rest by one max/min (both tests are implied by the rule
            # that follows them, NaNs included, so they only decide sooner)
            mh = hs[n]
            if (
                not mh < hs[n - 1]
                and not mh < hs[n + 1]
                and not mh < max(hs)
                and mh > max(hs[:n])
                and mh >= max(hs[n + 1 :])
            ):
                out.append(_event("swing_high", 1, j, i, at, mh, mh))
                self._equal(out, "equal_highs", self._highs, mh, j, i, at)
                self._highs.append(mh)
                self._high, self._high_bar = mh, j
            ml = ls[n]
            if (
                not ml > ls[n - 1]
                and not ml > ls[n + 1]
                and not ml > min(ls)
                and ml < min(ls[:n])
                and ml <= min(ls[n + 1 :])
            ):
                out.append(_event("swing_low", -1, j, i, at, ml, ml))
                self._equal(out, "equal_lows", self._lows, ml, j, i, at)
                self._lows.append(ml)
                self._low, self._low_bar = ml, j
        fvgs = self._fvgs
        if fvgs and not (
            low > self._bull_top and high < self._bear_bottom and i - fvgs[0][3] < self.fvg_max_age
        ):
            keep = []
            bull_top, bear_bottom, max_age = -math.inf, math.inf, self.fvg_max_age
            for fvg in fvgs:
                d, top, bottom, ref = fvg
                if (d > 0 and low <= top) or (d < 0 and high >= bottom):
                    out.append(_event("fvg_mitigated", d, ref, i, at, top, bottom))
                elif i - ref < max_age:
                    keep.append(fvg)
                    # the bounds over the gaps kept (max / min written out: no list, no
                    # keyword parsing)
                    if d > 0:
                        if top > bull_top:
                            bull_top = top
                    elif bottom < bear_bottom:
                        bear_bottom = bottom
            self._fvgs = fvgs = keep
            self._bull_top, self._bear_bottom = bull_top, bear_bottom
        if size >= 3:
            two_high, two_low = hs[-3], ls[-3]
            if low > two_high:
                fvgs.append((1, low, two_high, i))
                out.append(_event("fvg", 1, i, i, at, low, two_high))
                if low > self._bull_top:
                    self._bull_top = low
            elif high < two_low:
                fvgs.append((-1, two_low, high, i))
                out.append(_event("fvg", -1, i, i, at, two_low, high))
                if high < self._bear_bottom:
                    self._bear_bottom = high
        if len(fvgs) != self.open_fvgs:
            self.open_fvgs = len(fvgs)
            self.version += 1
        close = bar.close
        if close > self._high:  # never true while no swing high is active (+inf)
            out.append(self._break(1, self._high, self._high_bar, i, at))
            self._high = math.inf
        if close < self._low:
            out.append(self._break(-1, self._low, self._low_bar, i, at))
            self._low = -math.inf
        if out:
            self.version += 1
            last = self.last_by_kind
            for e in out:
                last[e.kind] = e
        return out

    def _equal(
        self,
        out: list[SmcEvent],
        kind: Kind,
        previous: deque[float],
        level: float,
        ref: int,
        i: int,
        at: float,
    ) -> None:
        for other in reversed(previous):
            if abs(level - other) <= self.tolerance * abs(other):
                d = 1 if kind == "equal_highs" else -1
                out.append(_event(kind, d, ref, i, at, max(level, other), min(level, other)))
                return

    def _break(self, d: int, level: float, ref: int, i: int, at: float) -> SmcEvent:
        kind: Kind = "choch" if self.trend == -d else "bos"
        self.trend = d
        ev = _event(kind, d, ref, i, at, level, level)
        self.last_structure = ev
        return ev


class SmcMemento(NamedTuple):
    """What `SmcAnalyzer.restore` needs (see `SmcAnalyzer.memento`)."""

    analyzer: SmcAnalyzer
    scalars: tuple[Any, ...]
    hs: list[float]
    ls: list[float]
    highs: deque[float]
    lows: deque[float]
    fvgs: list[tuple[int, float, float, int]]
    last_by_kind: dict[str, SmcEvent]


# the scalar state `SmcAnalyzer.update` changes (the containers are copied separately)
_MUTABLE_NAMES = (
    "index",
    "_high",
    "_high_bar",
    "_low",
    "_low_bar",
    "_bull_top",
    "_bear_bottom",
    "trend",
    "last_structure",
    "open_fvgs",
)
_MUTABLE = attrgetter(*_MUTABLE_NAMES)


def analyze_batch(
    close_s: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    swing_length: int = 3,
    tolerance: float = 0.001,
    eq_lookback: int = 5,
    fvg_max_age: int = 500,
) -> list[SmcEvent]:
    """Return every event over a whole history (vectorized; same rules as the stream)."""
    n, size = swing_length, len(high)
    events: list[SmcEvent] = []
    swings: dict[int, list[tuple[int, float]]] = {1: [], -1: []}  # dir -> [(bar, level)]
    if size >= 2 * n + 1:
        for d, series in ((1, high), (-1, low)):
            w = sliding_window_view(series, 2 * n + 1)
            mid = w[:, n]
            if d > 0:
                hit = (mid > w[:, :n].max(axis=1)) & (mid >= w[:, n + 1 :].max(axis=1))
            else:
                hit = (mid < w[:, :n].min(axis=1)) & (mid <= w[:, n + 1 :].min(axis=1))
            kind: Kind = "swing_high" if d > 0 else "swing_low"
            eq_kind: Kind = "equal_highs" if d > 0 else "equal_lows"
            previous: list[float] = []
            for k in np.flatnonzero(hit):
                j, lvl = int(k) + n, float(mid[k])
                known = j + n
                at = float(close_s[known])
                events.append(_event(kind, d, j, known, at, lvl, lvl))
                for other in reversed(previous[-eq_lookback:]):
                    if abs(lvl - other) <= tolerance * abs(other):
                        events.append(
                            _event(eq_kind, d, j, known, at, max(lvl, other), min(lvl, other))
                        )
                        break
                previous.append(lvl)
                swings[d].append((j, lvl))
    if size >= 3:
        bull = np.flatnonzero(low[2:] > high[:-2]) + 2
        bear = np.flatnonzero(high[2:] < low[:-2]) + 2
        for d, idx in ((1, bull), (-1, bear)):
            for i_ in idx:
                i = int(i_)
                top = float(low[i] if d > 0 else low[i - 2])
                bottom = float(high[i - 2] if d > 0 else high[i])
                events.append(_event("fvg", d, i, i, float(close_s[i]), top, bottom))
                end = min(size, i + fvg_max_age + 1)
                later = low[i + 1 : end] <= top if d > 0 else high[i + 1 : end] >= bottom
                hits = np.flatnonzero(later)
                if hits.size:
                    m = i + 1 + int(hits[0])
                    events.append(_event("fvg_mitigated", d, i, m, float(close_s[m]), top, bottom))
    breaks: list[tuple[int, int, int, float]] = []  # (bar, -dir order, swing bar, level)
    for d, items in swings.items():
        for q, (j, lvl) in enumerate(items):
            start = j + n
            stop = items[q + 1][0] + n if q + 1 < len(items) else size
            seg = close[start:stop] > lvl if d > 0 else close[start:stop] < lvl
            hits = np.flatnonzero(seg)
            if hits.size:
                breaks.append((start + int(hits[0]), -d, j, lvl))
    trend = 0
    for b, neg_d, j, lvl in sorted(breaks):
        d = -neg_d
        kind2: Kind = "choch" if trend == -d else "bos"
        trend = d
        events.append(_event(kind2, d, j, b, float(close_s[b]), lvl, lvl))
    events.sort()
    return events


def bias_label(trend: int) -> Literal["BULLISH", "BEARISH", "NEUTRAL"]:
    """Map a structure trend (+1/-1/0) to its label."""
    return "BULLISH" if trend > 0 else "BEARISH" if trend < 0 else "NEUTRAL"
