"""The rule-based judge: a deterministic verdict with documented rules and reasons (pure).

It always runs: it is the verdict when the LLM is off or fails, and the LLM sees it as a
second opinion. Each check adds an *agreement* (supporting evidence) or a *conflict* (a risk
warning, weighted 1 = minor or 2 = major). The verdict is decided in this order; the first
rule that matches gives the `reason` code:

| # | condition                                            | verdict  | risk mode  | size |
|---|------------------------------------------------------|----------|------------|------|
| 1 | direction is NEUTRAL                                 | WAIT     | AVOID      | 0.0  |
| 2 | confidence < 35 (JUDGE_MIN_CONFIDENCE)               | SKIP     | AVOID      | 0.0  |
| 3 | >= 3 leaning factors and < 35 % of them agree        | SKIP     | AVOID      | 0.0  |
| 4 | >= 4 of the 8 factors missing or stale               | WAIT     | REDUCED    | 0.0  |
| 5 | conflict weight >= 4                                 | SKIP     | AVOID      | 0.0  |
| 6 | no stop loss: too few candles for ATR, candles       | WAIT     | REDUCED    | 0.0  |
|   | without range, or the stop would fall below zero     |          |            |      |
| 7 | conflict weight 2-3                                  | DOWNSIZE | REDUCED    | 0.5  |
| 8 | no conflict, confidence >= 75, >= 75 % agree, SMC    | CONFIRM  | AGGRESSIVE | 1.5  |
|   | agrees, score >= 25 points from neutral, volatility  |          |            |      |
|   | LOW or NORMAL                                        |          |            |      |
| 9 | otherwise (conflict weight 0-1)                      | CONFIRM  | NORMAL     | 1.0  |

Rule 6: a trade taken without a stop has unbounded risk. These signals were CONFIRM at 1x
(the "volatility unknown" conflict weighs only 1) with no stop or target to place.

The checks are listed with their thresholds in services/judge/README.md.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import ValidationError

from perpsignal_common.events.factors import (
    FundingInputs,
    InputsT,
    LongShortInputs,
    factor_inputs,
)
from perpsignal_common.events.signals import (
    FACTOR_NAMES,
    Direction,
    FactorScore,
    RiskMode,
    ScoredSignalFields,
    Verdict,
    VolatilityMetrics,
)

LEAN_BULL = 55.0  # a factor sub-score >= this leans bullish
LEAN_BEAR = 45.0  # <= this leans bearish
MIN_CONFIDENCE = 35.0
LOW_CONFIDENCE = 50.0
HIGH_CONFIDENCE = 70.0
AGGRESSIVE_CONFIDENCE = 75.0
SKIP_AGREEMENT = 0.35
WEAK_AGREEMENT = 0.5
GOOD_AGREEMENT = 0.7
AGGRESSIVE_AGREEMENT = 0.75
WAIT_MISSING = 4
STRONG_CONVICTION = 25.0  # |score - 50|
WEAK_CONVICTION = 10.0
FUNDING_EXTREME = 0.0005  # per 8 h (the scorer's `rate_8h`): 0.05 %, about 55 % a year
CROWDED_RATIO = 2.0  # accounts long per account short: longs crowded at >= 2, shorts <= 1/2
VERY_CROWDED_RATIO = 3.0

Checks = list[tuple[str, int]]

# The code of every check outcome (RuleVerdict.checks): the tests hold that each one fires
# on signals the scorer produced.
CHECK_CODES: tuple[str, ...] = (
    "agreement_good",
    "agreement_mixed",
    "agreement_poor",
    "confidence_high",
    "confidence_low",
    "data_fresh",
    "data_gaps",
    "volatility_ok",
    "volatility_very_low",
    "volatility_high",
    "volatility_unknown",
    "funding_extreme",
    "funding_favours",
    "crowded",
    "very_crowded",
    "crowd_against",
    "smc_agrees",
    "smc_against",
    "score_strong",
    "score_weak",
)


@dataclass(frozen=True)
class RuleVerdict:
    """The rule judge's decision with the rule that decided it."""

    verdict: Verdict
    risk_mode: RiskMode
    position_multiplier: float
    reason: str
    agreements: tuple[str, ...]
    conflicts: tuple[str, ...]
    conflict_weight: int
    summary: str
    facts: dict[str, float | str | None] = field(default_factory=dict)
    checks: tuple[str, ...] = ()  # CHECK_CODES that fired, in check order


def _read(f: FactorScore | None, model: type[InputsT], conflicts: Checks) -> InputsT | None:
    """Return the factor's typed inputs; inputs that do not fit the contract (a caller's own
    signal on /judge/validate can carry anything) are a visible conflict, never a silent
    skip of the check that reads them."""
    try:
        return factor_inputs(f, model)
    except ValidationError:
        conflicts.append((f"{model.factor} inputs unreadable: the check was not made", 1))
        return None


_GAPS: dict[tuple[object, ...], tuple[list[str], tuple[str, int] | None]] = {}


def _gaps(
    missing: Sequence[str], stale: Sequence[str], not_ok: tuple[str, ...]
) -> tuple[list[str], tuple[str, int] | None]:
    """Return the factors without usable data (missing or stale ones sorted, then any other
    not ok) and their conflict, if any. Remembered per combination: a run's signals repeat a
    handful of them (the caller never changes the list)."""
    key = (tuple(missing), tuple(stale), not_ok)
    known = _GAPS.get(key)
    if known is not None:
        return known
    if missing or stale:
        gaps = sorted(set(missing) | set(stale))
        gaps += [name for name in not_ok if name not in gaps]
    else:
        gaps = list(not_ok)
    conflict = (
        (f"missing/stale data: {', '.join(gaps)}", 1 if len(gaps) <= 2 else 2) if gaps else None
    )
    if len(_GAPS) < 1024:
        _GAPS[key] = (gaps, conflict)
    return gaps, conflict


def _lean(score: float) -> int:
    return 1 if score >= LEAN_BULL else -1 if score <= LEAN_BEAR else 0


def judge_rules(
    signal: ScoredSignalFields,
    symbol: str,
    vol: VolatilityMetrics,
    min_confidence: float = MIN_CONFIDENCE,
) -> RuleVerdict:
    """Return the deterministic verdict for `signal` (see the module table; rule 2's
    threshold is `min_confidence`, JUDGE_MIN_CONFIDENCE)."""
    direction: Direction = signal.direction
    side = 1 if direction == "LONG" else -1 if direction == "SHORT" else 0
    agree: list[str] = []
    conflicts: Checks = []
    fired: list[str] = []
    # one pass over the factors: by name, the leaning usable ones, those for `side`, gaps
    factors: dict[str, FactorScore] = {}
    n_leaning = n_for = 0
    not_ok: list[str] = []
    for f in signal.factors:
        factors[f.name] = f
        if f.status != "ok":
            not_ok.append(f.name)
            continue
        score = f.score
        lean = 1 if score >= LEAN_BULL else -1 if score <= LEAN_BEAR else 0
        if lean:
            n_leaning += 1
            if lean == side:
                n_for += 1
    if len(factors) < len(FACTOR_NAMES):
        # a factor the breakdown lacks is a gap like a listed missing one: the scorer lists all
        # eight, so only another producer's signal lacks some; with none at all it was judged
        # on no evidence as "no data gaps" (CONFIRM, size 1x)
        not_ok += [name for name in FACTOR_NAMES if name not in factors]

    # A. factor agreement, over usable factors that lean one way
    ratio = n_for / n_leaning if n_leaning else 0.5
    if side and n_leaning:
        text = f"{n_for} of {n_leaning} leaning factors support {direction}"
        if ratio >= GOOD_AGREEMENT:
            agree.append(text)
            fired.append("agreement_good")
        elif ratio < WEAK_AGREEMENT:
            conflicts.append((f"factors disagree: only {text}", 2))
            fired.append("agreement_poor")
        else:
            conflicts.append((f"mixed factors: {text}", 1))
            fired.append("agreement_mixed")

    # B. confidence
    if signal.confidence >= HIGH_CONFIDENCE:
        agree.append(f"high confidence {signal.confidence:.0f}")
        fired.append("confidence_high")
    elif signal.confidence < LOW_CONFIDENCE:
        conflicts.append((f"low confidence {signal.confidence:.0f}", 1))
        fired.append("confidence_low")

    # C. data freshness (missing/stale factors are neutral in the score: less evidence)
    gaps, gap_conflict = _gaps(signal.missing_factors, signal.stale_factors, tuple(not_ok))
    if not gaps and signal.factors:
        agree.append(f"all {len(signal.factors)} factors fresh")
        fired.append("data_fresh")
    elif gap_conflict is not None:
        conflicts.append(gap_conflict)
        fired.append("data_gaps")

    # D. volatility
    cls = vol.volatility_class
    if cls is None:
        conflicts.append(("volatility unknown (too few candles)", 1))
        fired.append("volatility_unknown")
    elif cls in ("LOW", "NORMAL"):
        agree.append(f"volatility {cls} ({vol.atr_pct:.2f}% ATR)")
        fired.append("volatility_ok")
    elif cls == "VERY_LOW":
        conflicts.append((f"very low volatility ({vol.atr_pct:.2f}% ATR): target may not fill", 1))
        fired.append("volatility_very_low")
    else:
        weight = 2 if cls == "VERY_HIGH" else 1
        conflicts.append((f"{cls} volatility ({vol.atr_pct:.2f}% ATR)", weight))
        fired.append("volatility_high")

    # E. funding extremes: the side that pays a lot is crowded
    # (the scorer's typed inputs: a renamed field is a type error, not a check that never fires)
    funding = _read(factors.get("funding"), FundingInputs, conflicts)
    rate = funding.rate_8h if funding is not None else None
    if side and rate is not None:
        if rate * side >= FUNDING_EXTREME:
            who = "longs" if side > 0 else "shorts"
            conflicts.append((f"extreme funding {rate * 100:+.3f}%: {who} pay and are crowded", 2))
            fired.append("funding_extreme")
        elif rate * side <= -FUNDING_EXTREME:
            agree.append(f"funding {rate * 100:+.3f}% favours {direction} (squeeze fuel)")
            fired.append("funding_favours")

    # F. crowding: long/short account ratio
    positioning = _read(factors.get("long_short"), LongShortInputs, conflicts)
    ls = positioning.long_short_ratio if positioning is not None else None
    if side and ls is not None:
        crowd = ls if side > 0 else 1 / ls if ls > 0 else math.inf
        if crowd >= VERY_CROWDED_RATIO:
            conflicts.append((f"very crowded {direction} (long/short {ls:.2f})", 2))
            fired.append("very_crowded")
        elif crowd >= CROWDED_RATIO:
            conflicts.append((f"crowded {direction} (long/short {ls:.2f})", 1))
            fired.append("crowded")
        elif crowd <= 1 / 1.25:
            agree.append(f"crowd leans against {direction} (long/short {ls:.2f})")
            fired.append("crowd_against")

    # G. SMC structure
    smc_bias = signal.smc.bias if signal.smc else "NEUTRAL"
    smc_agrees = (smc_bias == "BULLISH" and side > 0) or (smc_bias == "BEARISH" and side < 0)
    if side and smc_agrees:
        agree.append(f"SMC structure {smc_bias}")
        fired.append("smc_agrees")
    elif side and smc_bias != "NEUTRAL":
        conflicts.append((f"SMC structure {smc_bias} against {direction}", 2))
        fired.append("smc_against")

    # H. score conviction
    conviction = (signal.score - 50.0) * side
    if side and conviction >= STRONG_CONVICTION:
        agree.append(f"strong score {signal.score:.0f}")
        fired.append("score_strong")
    elif side and conviction < WEAK_CONVICTION:
        conflicts.append((f"weak score {signal.score:.0f} for {direction}", 1))
        fired.append("score_weak")

    weight = sum(w for _, w in conflicts)
    facts: dict[str, float | str | None] = {
        "agreement_ratio": round(ratio, 3),
        "conflict_weight": weight,
        "funding_rate": rate,
        "long_short_ratio": ls,
        "smc_bias": smc_bias,
    }

    def done(v: Verdict, mode: RiskMode, mult: float, reason: str) -> RuleVerdict:
        conflict_texts = tuple(t for t, _ in conflicts)
        return RuleVerdict(
            verdict=v,
            risk_mode=mode,
            position_multiplier=mult,
            reason=reason,
            agreements=tuple(agree),
            conflicts=conflict_texts,
            conflict_weight=weight,
            summary=summarize(symbol, signal, v, mode, mult, reason, len(agree), len(conflicts)),
            facts=facts,
            checks=tuple(fired),
        )

    if not side:
        return done("WAIT", "AVOID", 0.0, "neutral_direction")
    if signal.confidence < min_confidence:
        return done("SKIP", "AVOID", 0.0, "confidence_too_low")
    if n_leaning >= 3 and ratio < SKIP_AGREEMENT:
        return done("SKIP", "AVOID", 0.0, "factors_disagree")
    if len(gaps) >= WAIT_MISSING:
        return done("WAIT", "REDUCED", 0.0, "data_incomplete")
    if weight >= 4:
        return done("SKIP", "AVOID", 0.0, "too_many_conflicts")
    if vol.stop_loss_price is None:
        return done("WAIT", "REDUCED", 0.0, "no_trade_plan")
    if weight >= 2:
        return done("DOWNSIZE", "REDUCED", 0.5, "conflicts_present")
    if (
        weight == 0
        and signal.confidence >= AGGRESSIVE_CONFIDENCE
        and ratio >= AGGRESSIVE_AGREEMENT
        and smc_agrees
        and conviction >= STRONG_CONVICTION
        and cls in ("LOW", "NORMAL")
    ):
        return done("CONFIRM", "AGGRESSIVE", 1.5, "strong_alignment")
    return done("CONFIRM", "NORMAL", 1.0, "aligned")


REASON_TEXT = {
    "neutral_direction": "no direction to trade",
    "confidence_too_low": "confidence too low",
    "factors_disagree": "most factors point the other way",
    "data_incomplete": "too much data missing or stale; wait for fresh data",
    "too_many_conflicts": "too many risk warnings",
    "no_trade_plan": "no stop loss can be set (too few candles or no price range); wait",
    "conflicts_present": "risk warnings present; trade smaller",
    "strong_alignment": "everything lines up",
    "aligned": "factors line up",
}


def summarize(
    symbol: str,
    signal: ScoredSignalFields,
    verdict: Verdict,
    mode: RiskMode,
    mult: float,
    reason: str,
    n_agree: int,
    n_conflict: int,
) -> str:
    """Return a one-line, plain-text (Telegram-safe) summary of the verdict."""
    return (
        f"{verdict} {signal.direction} {symbol}: score {signal.score:.0f}, "
        f"confidence {signal.confidence:.0f}; {REASON_TEXT.get(reason, reason)}. "
        f"Risk {mode}, size {mult:g}x ({n_agree} supporting, {n_conflict} warnings)."
    )
