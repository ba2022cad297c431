"""A level against the symbol's own history, and an input's own cadence.

Positioning ratios, funding rates and the like have no universal neutral: Binance account
ratios sit at 65-70 % long for weeks, so "50 % long is neutral" scores every bar as
crowded-long. These helpers give such a level a neutral that is the symbol's own recent
normal (its rolling median), and judge an input's freshness by how often that input itself
arrives rather than by the scoring timeframe.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import deque
from itertools import islice, pairwise
from operator import attrgetter

from perpsignal_domain.scoring.state import Point

_T = attrgetter("t")
CADENCE_GAPS = 8  # the cadence is the median of this many newest gaps


def _end(points: deque[Point], latest: Point) -> int:
    """Return the index just past `latest` in `points` (time-ordered)."""
    if points and points[-1] is latest:
        return len(points)
    return bisect_right(points, latest.t, key=_T)


def rank_strength(points: deque[Point], latest: Point, window: int, min_n: int) -> float | None:
    """Return where `latest` sits among the last `window` observations up to and including
    it, as a strength in [-1, 1]: 2 x mid-rank percentile - 1 (0 = the median of its own
    history, +1 = above every earlier value, -1 = below every one). None with fewer than
    `min_n` observations: no history, no neutral to score against.

    A percentile rather than a z-score: bounded, unaffected by a series' scale or fat tails,
    and a flat series (funding pinned at the base rate for weeks) is exactly neutral.
    """
    end = _end(points, latest)
    start = end - window if end > window else 0
    n = end - start
    if n < min_n or n <= 0:
        return None
    x = latest.value
    below = equal = 0
    for p in islice(points, start, end):
        v = p.value
        if v < x:
            below += 1
        elif v == x:
            equal += 1
    return 2.0 * (below + 0.5 * equal) / n - 1.0


def cadence(points: deque[Point], latest: Point) -> float | None:
    """Return the input's own cadence at `latest`: the median gap between its newest
    observations up to `latest` (None with fewer than two)."""
    end = _end(points, latest)
    start = end - CADENCE_GAPS - 1 if end > CADENCE_GAPS + 1 else 0
    times = [p.t for p in islice(points, start, end)]
    if len(times) < 2:
        return None
    gaps = sorted(b - a for a, b in pairwise(times))
    m = len(gaps)
    return gaps[m // 2] if m % 2 else 0.5 * (gaps[m // 2 - 1] + gaps[m // 2])


def input_limit(points: deque[Point], latest: Point, floor_s: float, multiple: float) -> float:
    """Return the staleness limit of an input at `latest`: `multiple` x its own cadence, and
    never less than the configured `floor_s` (an hourly series under 15m scoring stays fresh
    for `multiple` hours, a 5-minute one still for `floor_s`)."""
    c = cadence(points, latest)
    if c is None or multiple <= 0.0:
        return floor_s
    lim = multiple * c
    return lim if lim > floor_s else floor_s
