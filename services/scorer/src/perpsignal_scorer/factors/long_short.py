"""Long/short ratio: crowded positioning is contrarian.

crowd = 0.6 pull(global_long_share - ls_neutral_share, ls_full_share)
      + 0.4 pull(top_account_long_share - ls_neutral_share, ls_full_share)  (parts present);
change = pull(global share now - `ls_change_window_s` earlier, ls_full_change).
strength = -(0.7 crowd + 0.3 change) (crowd alone without history): the more accounts are
long, and the faster they pile in, the more bearish.
"""

from __future__ import annotations

from perpsignal_scorer.config import EngineConfig
from perpsignal_scorer.factors.base import (
    EvalContext,
    FactorResult,
    blend,
    missing,
    pull,
    stale,
    to_score,
)
from perpsignal_scorer.state import SymbolState, value_at_or_before


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


def score_long_short(state: SymbolState, ctx: EvalContext, cfg: EngineConfig) -> FactorResult:
    """Score global and top-trader account positioning."""
    limit = cfg.limits["long_short"]
    g = value_at_or_before(state.ls("global_account"), ctx.now)
    t = value_at_or_before(state.ls("top_account"), ctx.now)
    if g is None and t is None:
        return missing("no long/short account ratio received")
    newest = max(p.t for p in (g, t) if p is not None)
    age = ctx.now - newest
    g_ok = g if g is not None and ctx.now - g.t <= limit else None
    t_ok = t if t is not None and ctx.now - t.t <= limit else None
    if g_ok is None and t_ok is None:
        return stale(age, limit)
    change = None
    if g_ok is not None:
        before = value_at_or_before(state.ls("global_account"), ctx.now - cfg.ls_change_window_s)
        change = g_ok.value - before.value if before is not None else None
    gv = g_ok.value if g_ok else None
    tv = t_ok.value if t_ok else None
    return FactorResult(
        to_score(long_short_strength(gv, tv, change, cfg)),
        "ok",
        round(age, 3),
        {"global_long_share": gv, "top_account_long_share": tv, "global_share_change": change},
    )
