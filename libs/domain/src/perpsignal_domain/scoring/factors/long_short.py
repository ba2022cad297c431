"""Long/short ratio: crowded positioning is contrarian, judged against the symbol's own
history.

Account shares sit far from 50 % for weeks (Binance global accounts: 60-70 % long), so a
share is ranked within the symbol's last `neutral_window` observations of its own kind
(history.rank_strength: +1 above every earlier share, 0 at their median):
crowd = 0.6 rank(global_long_share) + 0.4 rank(top_account_long_share)  (parts ranked);
change = pull(global share now - `ls_change_window_s` earlier, ls_full_change).
strength = -(0.7 crowd + 0.3 change) over the parts present: the more accounts are long
compared with the symbol's normal, and the faster they pile in, the more bearish. Neither
ranked nor a change (fewer than `neutral_min_history` observations): missing.
"""

from __future__ import annotations

from collections import deque

from perpsignal_common.events.factors import long_short_inputs
from perpsignal_domain.scoring.config import EngineConfig
from perpsignal_domain.scoring.factors.base import (
    EvalContext,
    FactorResult,
    blend,
    missing,
    pull,
    round3,
    stale,
    to_score,
)
from perpsignal_domain.scoring.history import input_limit, rank_strength
from perpsignal_domain.scoring.state import Point, SymbolState, value_at_or_before


def long_short_strength(
    global_rank: float | None,
    top_rank: float | None,
    global_change: float | None,
    cfg: EngineConfig,
) -> float:
    """Return the contrarian strength of account positioning (ranks from `rank_strength`)."""
    crowd_parts = []
    if global_rank is not None:
        crowd_parts.append((0.6, global_rank))
    if top_rank is not None:
        crowd_parts.append((0.4, top_rank))
    parts = []
    if crowd_parts:
        parts.append((0.7, blend(crowd_parts)))
    if global_change is not None:
        parts.append((0.3, pull(global_change, cfg.ls_full_change)))
    return -blend(parts)


def fresh_point(
    state: SymbolState, kind: str, points: deque[Point] | None, now: float, cfg: EngineConfig
) -> tuple[Point | None, float, float | None]:
    """Return (newest point of `kind` at `now`, its staleness limit by its own cadence, its
    rank in its history), memoised per newest point (cadence and rank change only then)."""
    p = value_at_or_before(points, now) if points else None
    if p is None or points is None:
        return None, cfg.limits["long_short"], None
    key = "ls:" + kind
    memo = state.memo.get(key)
    if memo is None or memo[0] is not p or memo[1] is not cfg:
        limit = input_limit(points, p, cfg.limits["long_short"], cfg.stale_cadence_multiple)
        rank = rank_strength(points, p, cfg.neutral_window, cfg.neutral_min_history)
        memo = state.memo[key] = (p, cfg, limit, rank)
    return p, memo[2], memo[3]


_NO_RATIO = missing("no long/short account ratio received")


def score_long_short(state: SymbolState, ctx: EvalContext, cfg: EngineConfig) -> FactorResult:
    """Score global and top-trader account positioning."""
    now = ctx.now
    globals_ = state.long_short.get("global_account")
    g, g_limit, g_rank = fresh_point(state, "global_account", globals_, now, cfg)
    t, t_limit, t_rank = fresh_point(
        state, "top_account", state.long_short.get("top_account"), now, cfg
    )
    if g is None and t is None:
        return _NO_RATIO
    g_ok = g if g is not None and now - g.t <= g_limit else None
    t_ok = t if t is not None and now - t.t <= t_limit else None
    if g_ok is None and t_ok is None:
        newest, limit = (
            (g, g_limit) if t is None or (g is not None and g.t >= t.t) else (t, t_limit)
        )
        assert newest is not None
        return stale(now - newest.t, limit)
    # the age and limit of the freshest input used
    if t_ok is None or (g_ok is not None and g_ok.t >= t_ok.t):
        assert g_ok is not None
        age, limit = now - g_ok.t, g_limit
    else:
        age, limit = now - t_ok.t, t_limit
    before = None
    if g_ok is not None and globals_:
        before = value_at_or_before(globals_, now - cfg.ls_change_window_s)
    memo = state.memo.get("long_short")
    if (
        memo is None
        or memo[0] is not g_ok
        or memo[1] is not t_ok
        or memo[2] is not before
        or memo[3] is not cfg
    ):
        change = None
        if g_ok is not None and before is not None:
            change = g_ok.value - before.value
        gr = g_rank if g_ok is not None else None
        tr = t_rank if t_ok is not None else None
        inputs = long_short_inputs(
            global_long_share=g_ok.value if g_ok else None,
            top_account_long_share=t_ok.value if t_ok else None,
            global_share_change=change,
            global_share_rank=None if gr is None else round(gr, 4),
            top_account_share_rank=None if tr is None else round(tr, 4),
        )
        usable = gr is not None or tr is not None or change is not None
        score = to_score(long_short_strength(gr, tr, change, cfg))
        memo = state.memo["long_short"] = (g_ok, t_ok, before, cfg, score, inputs, usable)
    if not memo[6]:
        return missing(
            f"fewer than {cfg.neutral_min_history} long/short observations: no neutral yet"
        )
    return FactorResult(memo[4], "ok", round3(age), memo[5], None, limit)
