"""Vectorized evaluation over a whole history: the streaming engine's parity reference and
the benchmark's baseline.

`evaluate_batch` computes, for every closed primary candle at once (numpy + TA-Lib + the
vectorized SMC of `smc.analyze_batch`), what `ScoringEngine.evaluate` returns at that
candle's close when the engine was fed the same candles, funding rates and Fear & Greed
values in time order: the eight sub-scores and statuses, the composite score, confidence,
direction and top-3 factors. The factors need inputs this function is not given
(liquidations, long/short ratios, open interest, social metrics) are missing, as they are
in the engine without those events; nor taker flow, without which momentum is its price
parts alone, in both. Formulas: the factor modules and `engine.composite`;
the tests hold the two implementations equal bar by bar on the recorded data.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numpy as np
import talib

from perpsignal_common.events.market import TIMEFRAME_SECONDS
from perpsignal_common.events.signals import FACTOR_NAMES
from perpsignal_domain.scoring.config import EngineConfig
from perpsignal_domain.scoring.history import input_limit, rank_strength
from perpsignal_domain.scoring.smc import analyze_batch
from perpsignal_domain.scoring.state import (
    FUNDING_HISTORY,
    FUNDING_MIN_GAP_S,
    Point,
    append_point,
)

OK, MISSING, STALE = 0, 1, 2
# (close time, high, low, close, primary index at which the bar is known)
_Bars = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]
_COL = {n: i for i, n in enumerate(FACTOR_NAMES)}


@dataclass(frozen=True)
class BatchEvaluation:
    """One row per primary candle; factor columns in FACTOR_NAMES order."""

    close_s: np.ndarray  # evaluation time: the candle's close (epoch s)
    scores: np.ndarray  # (bars, 8) sub-scores
    status: np.ndarray  # (bars, 8) OK / MISSING / STALE
    age_s: np.ndarray  # (bars, 8) rounded ages of ok/stale factors, nan when missing
    score: np.ndarray
    confidence: np.ndarray
    direction: np.ndarray  # +1 LONG, -1 SHORT, 0 NEUTRAL
    top: np.ndarray  # (bars, 3) factor columns, largest |contribution| first; -1: none


def _pull(x: np.ndarray, full: float) -> np.ndarray:
    return np.clip(x / full, -1.0, 1.0) if full else np.zeros_like(x)


def _to_score(strength: np.ndarray) -> np.ndarray:
    score: np.ndarray = 50.0 + 50.0 * np.clip(strength, -1.0, 1.0)
    return score


def _at_or_before(times: np.ndarray, t: np.ndarray) -> np.ndarray:
    """Index of the newest observation at or before each `t` (-1: none yet)."""
    return np.searchsorted(times, t, side="right") - 1


def _series(times: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Float arrays, with one never-reached observation when there is none (so indexing
    with `max(i, 0)` is valid; `i < 0` marks the rows without an observation)."""
    if len(times) == 0:
        return np.array([np.inf]), np.array([np.nan])
    return np.asarray(times, dtype=float), np.asarray(values, dtype=float)


def _aggregate(
    open_s: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    primary_s: int,
    tf_s: int,
) -> _Bars:
    """Higher-timeframe bars as `state.Aggregator` builds them, and the primary index at
    which each becomes known (its last sub-candle completes it, or the next bucket's first
    candle closes it short); a last incomplete bucket is not returned."""
    start = open_s - open_s % tf_s
    first = np.flatnonzero(np.concatenate(([True], start[1:] != start[:-1])))
    nxt = np.concatenate((first[1:], [len(open_s)]))  # first candle of the next bucket
    last = nxt - 1
    complete = open_s[last] + primary_s >= start[first] + tf_s
    known = np.where(complete, last, np.where(nxt < len(open_s), nxt, -1))
    keep = known >= 0
    hi = np.maximum.reduceat(high, first)
    lo = np.minimum.reduceat(low, first)
    return (start[first] + tf_s)[keep], hi[keep], lo[keep], close[last][keep], known[keep]


def _trend(bars: _Bars, size: int, cfg: EngineConfig) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per primary candle: the structure trend of one timeframe, whether its analyzer has
    warmed up (2n + 1 bars), and when its last BOS/CHoCH became known (nan: none yet),
    from the vectorized SMC."""
    close_s, high, low, close, known_at = bars
    n = cfg.swing_length
    events = analyze_batch(close_s, high, low, close, n, cfg.equal_level_tolerance)
    final: dict[int, int] = {}  # bar -> trend after it (a bearish break is applied last)
    times: dict[int, float] = {}  # bar -> when its breaks became known
    for e in events:
        if e.kind in ("bos", "choch") and (e.known_index not in final or e.direction < 0):
            final[e.known_index] = e.direction
            times[e.known_index] = e.known_at
    trend = np.zeros(size)
    last_at = np.full(size, np.nan)
    if final:
        at = known_at[np.fromiter(final, dtype=np.int64)]
        change = _at_or_before(at, np.arange(size))
        dirs = np.fromiter(final.values(), dtype=float)
        trend = np.where(change >= 0, dirs[np.maximum(change, 0)], 0.0)
        ats = np.fromiter((times[k] for k in final), dtype=float)
        last_at = np.where(change >= 0, ats[np.maximum(change, 0)], np.nan)
    warm = np.zeros(size, dtype=bool)
    if len(known_at) > 2 * n:
        warm[known_at[2 * n] :] = True
    return trend, warm, last_at


def _funding_history(
    times: np.ndarray, rates: np.ndarray, cfg: EngineConfig
) -> tuple[np.ndarray, np.ndarray]:
    """Per funding observation: its rank in the rates before it and its staleness limit by
    the series' own cadence, as the stream computes them from `SymbolState.funding` (the
    same bounded deque with the same replacement rule, replayed: funding is a few rates a
    day, so a Python pass over them is cheap). Rank nan: too little history."""
    rank = np.full(len(times), np.nan)
    limit = np.full(len(times), cfg.limits["funding"])
    points: deque[Point] = deque(maxlen=FUNDING_HISTORY)
    for n, (t, v) in enumerate(zip(times.tolist(), rates.tolist(), strict=True)):
        if t == np.inf:
            break  # _series' never-reached placeholder
        append_point(points, t, v, FUNDING_MIN_GAP_S)
        latest = points[-1]
        r = rank_strength(points, latest, cfg.neutral_window, cfg.neutral_min_history)
        rank[n] = np.nan if r is None else r
        limit[n] = input_limit(points, latest, cfg.limits["funding"], cfg.stale_cadence_multiple)
    return rank, limit


def evaluate_batch(
    cfg: EngineConfig,
    open_s: np.ndarray,
    high: np.ndarray,
    low: np.ndarray,
    close: np.ndarray,
    funding_t: np.ndarray,
    funding_rate: np.ndarray,
    fear_greed_t: np.ndarray,
    fear_greed: np.ndarray,
) -> BatchEvaluation:
    """Evaluate every primary candle of a time-ordered history at its close.

    Gaps are allowed and handled as the stream does: momentum counts candles, and is
    missing after a gap longer than its longest horizon until that many contiguous candles
    and one more closed; a higher-timeframe bucket with candles missing is a shorter bar.

    `funding_rate` is per 8 h; observation times are epoch seconds, sorted.
    """
    size = len(close)
    funding_t, funding_rate = _series(funding_t, funding_rate)
    fear_greed_t, fear_greed = _series(fear_greed_t, fear_greed)
    tf_s = TIMEFRAME_SECONDS[cfg.primary_timeframe]
    now = open_s + tf_s
    scores = np.full((size, len(FACTOR_NAMES)), 50.0)
    status = np.full((size, len(FACTOR_NAMES)), MISSING)
    age = np.full((size, len(FACTOR_NAMES)), np.nan)
    limits = cfg.limits
    # per row and factor, the staleness limit the factor was judged by (funding: its cadence)
    lim = np.tile(np.array([limits[n] for n in FACTOR_NAMES]), (size, 1))

    # momentum: returns over h candles, RSI, EMA gap; blended over the parts available
    rsi = talib.RSI(close, cfg.rsi_period)
    gap = talib.EMA(close, cfg.ema_fast) / talib.EMA(close, cfg.ema_slow) - 1.0
    ret_sum = np.zeros(size)
    ret_n = np.zeros(size)
    for h in cfg.momentum_horizons:
        r = np.zeros(size)
        r[h:] = _pull(close[h:] / close[:-h] - 1.0, cfg.momentum_full_return * np.sqrt(h))
        ret_sum += r
        ret_n[h:] += 1
    has_ret, has_gap = ret_n > 0, ~np.isnan(gap)
    total = 0.4 * has_ret + 0.3 + 0.3 * has_gap
    acc = np.where(has_ret, 0.4 * (ret_sum / np.maximum(ret_n, 1)), 0.0)
    acc = acc + 0.3 * _pull(rsi - 50.0, 20.0)
    acc = acc + np.where(has_gap, 0.3 * _pull(np.nan_to_num(gap), cfg.trend_full_gap), 0.0)
    m, ok = _COL["momentum"], ~np.isnan(rsi)
    span = cfg.momentum_span
    if span and size > 1:
        # missing while no more than `span` bars follow a gap longer than `span` bars
        # (factors/momentum.py `bars_after_gap`): returns would span the gap
        row = np.arange(size)
        cut = np.zeros(size, dtype=bool)
        cut[1:] = open_s[1:] - (open_s[:-1] + tf_s) > span * tf_s
        after = np.maximum.accumulate(np.where(cut, row, -1))
        ok &= (after < 0) | (row - after >= span)
    scores[ok, m] = _to_score(acc / total)[ok]
    status[ok, m], age[ok, m] = OK, 0.0

    # funding: rank in the symbol's own rates (the stream's deque, replayed) and change
    f = _COL["funding"]
    rank, f_limit = _funding_history(funding_t, funding_rate, cfg)
    i = _at_or_before(funding_t, now)
    seen = i >= 0
    k = np.maximum(i, 0)
    rate, level_rank, limit_f = funding_rate[k], rank[k], f_limit[k]
    f_age = now - funding_t[k]
    b = _at_or_before(funding_t, now - cfg.funding_change_window_s)
    prev = funding_rate[np.maximum(b, 0)]
    has_rank, has_prev = ~np.isnan(level_rank), b >= 0
    level = -np.nan_to_num(level_rank)
    change = -_pull(rate - prev, cfg.funding_full_rate)
    strength = np.where(
        has_rank & has_prev,
        (0.7 * level + 0.3 * change) / 1.0,
        np.where(has_rank, 0.7 * level / 0.7, 0.3 * change / 0.3),
    )
    fresh = seen & (f_age <= limit_f)
    usable = fresh & (has_rank | has_prev)
    scores[usable, f] = _to_score(strength)[usable]
    status[seen, f] = np.where(usable, OK, np.where(fresh, MISSING, STALE))[seen]
    age[seen & ~(fresh & ~usable), f] = np.round(f_age, 3)[seen & ~(fresh & ~usable)]
    lim[seen, f] = limit_f[seen]

    # smart money: SMC trend per timeframe, weighted 1, 2, 3... from the lowest one
    num, den = np.zeros(size), np.zeros(size)
    tfs = sorted(set(cfg.smc_timeframes), key=TIMEFRAME_SECONDS.__getitem__)
    for w, tf in enumerate(tfs, start=1):
        bars: _Bars
        if TIMEFRAME_SECONDS[tf] == tf_s:
            bars = (now, high, low, close, np.arange(size))
        else:
            bars = _aggregate(open_s, high, low, close, tf_s, TIMEFRAME_SECONDS[tf])
        trend, warm, last_at = _trend(bars, size, cfg)
        hl = cfg.smc_half_life_bars
        if hl:
            age_b = np.maximum(now - np.nan_to_num(last_at, nan=np.inf), 0.0)
            fade = np.power(0.5, age_b / (hl * TIMEFRAME_SECONDS[tf]))
        else:
            fade = np.ones(size)
        num += np.where(warm & (trend != 0), w * trend * fade, 0.0)
        den += np.where(warm, w, 0)
    s, has_bias = _COL["smart_money"], den > 0
    bias = num / np.where(has_bias, den, 1.0)
    scores[has_bias, s] = _to_score(0.7 * bias / 0.7)[has_bias]
    status[has_bias, s], age[has_bias, s] = OK, 0.0

    # fear & greed: contrarian to the move from the median of the readings before it
    j = _at_or_before(fear_greed_t, now)
    g, seen = _COL["fear_greed"], j >= 0
    v = fear_greed[np.maximum(j, 0)]
    g_age = now - fear_greed_t[np.maximum(j, 0)]
    k = cfg.fear_greed_neutral_readings
    neutral_of = np.array(
        [np.median(fear_greed[max(0, i - k) : i]) if i else np.nan for i in range(len(fear_greed))]
    )
    neutral = neutral_of[np.maximum(j, 0)]
    fg = 50.0 - 50.0 * np.clip((v - neutral) / cfg.fear_greed_full_change, -1.0, 1.0)
    fresh = seen & (g_age <= limits["fear_greed"])
    has = fresh & ~np.isnan(neutral)
    scores[has, g] = fg[has]
    status[seen, g] = np.where(fresh, np.where(has, OK, MISSING), STALE)[seen]
    age[seen, g] = np.round(np.maximum(g_age, 0.0), 3)[seen]
    age[fresh & ~has, g] = np.nan  # missing (no neutral yet): no age, as in the stream

    # composite
    weights = np.array([cfg.weights.get(n, 0.0) for n in FACTOR_NAMES])
    contrib = weights / 100.0 * (scores - 50.0)
    net = contrib.sum(axis=1)
    score = np.clip(50.0 + net, 0.0, 100.0)
    gross = np.abs(contrib).sum(axis=1)
    agreement = np.where(gross > 1e-12, np.abs(net) / np.where(gross > 1e-12, gross, 1.0), 0.0)
    is_ok = status == OK
    fr = np.where(is_ok, np.maximum(0.0, 1.0 - np.nan_to_num(age) / lim), 0.0)
    n_ok = is_ok.sum(axis=1)
    freshness = np.where(n_ok > 0, fr.sum(axis=1) / np.maximum(n_ok, 1), 0.0)
    completeness = (weights * is_ok).sum(axis=1) / 100.0
    confidence = np.clip(
        100.0 * completeness * (0.4 + 0.6 * agreement) * (0.8 + 0.2 * freshness), 0.0, 100.0
    )
    direction = np.where(
        score >= cfg.long_threshold, 1, np.where(score <= cfg.short_threshold, -1, 0)
    )
    pulls = np.abs(contrib)
    top = np.argsort(-pulls, axis=1, kind="stable")[:, :3]
    top = np.where(np.take_along_axis(pulls, top, axis=1) > 0.0, top, -1)  # pulls nothing
    return BatchEvaluation(now, scores, status, age, score, confidence, direction, top)
