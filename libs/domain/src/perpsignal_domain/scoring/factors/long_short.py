"""Long/short ratio: crowded positioning is contrarian.

crowd = 0.6 pull(global_long_share - ls_neutral_share, ls_full_share)
      + 0.4 pull(top_account_long_share - ls_neutral_share, ls_full_share)  (parts present);
change = pull(global share now - `ls_change_window_s` earlier, ls_full_change).
strength = -(0.7 crowd + 0.3 change) (crowd alone without history): the more accounts are
long, and the faster they pile in, the more bearish.
"""

from __future__ import annotations

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
from perpsignal_domain.scoring.state import SymbolState, value_at_or_before


def long_short_strength(
    global_share: float | None,
    top_share: float | None,
    global_change: float | None,
    cfg: EngineConfig,
) -> float:
    """Return the contrarian strength of account positioning."""
    crowd_parts = []
    if global_share is not None:
        crowd_parts.append((0.6, pull(global_share - cfg.ls_neutral_share, cfg.ls_full_share)))
    if top_share is not None:
        crowd_parts.append((0.4, pull(top_share - cfg.ls_neutral_share, cfg.ls_full_share)))
    parts = [(0.7, blend(crowd_parts))]
    if global_change is not None:
        parts.append((0.3, pull(global_change, cfg.ls_full_change)))
    return -blend(parts)


_NO_RATIO = missing("no long/short account ratio received")


def score_long_short(state: SymbolState, ctx: EvalContext, cfg: EngineConfig) -> FactorResult:
    """Score global and top-trader account positioning."""
    globals_ = state.long_short.get("global_account")
    tops = state.long_short.get("top_account")
    g = value_at_or_before(globals_, ctx.now) if globals_ else None
    t = value_at_or_before(tops, ctx.now) if tops else None
    if g is None and t is None:
        return _NO_RATIO
    limit = cfg.limits["long_short"]
    newest = max(p.t for p in (g, t) if p is not None)
    age = ctx.now - newest
    g_ok = g if g is not None and ctx.now - g.t <= limit else None
    t_ok = t if t is not None and ctx.now - t.t <= limit else None
    if g_ok is None and t_ok is None:
        return stale(age, limit)
    before = None
    if g_ok is not None and globals_:
        before = value_at_or_before(globals_, ctx.now - cfg.ls_change_window_s)
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
        gv = g_ok.value if g_ok else None
        tv = t_ok.value if t_ok else None
        inputs = long_short_inputs(
            global_long_share=gv, top_account_long_share=tv, global_share_change=change
        )
        score = to_score(long_short_strength(gv, tv, change, cfg))
        memo = state.memo["long_short"] = (g_ok, t_ok, before, cfg, score, inputs)
    return FactorResult(memo[4], "ok", round3(age), memo[5])
