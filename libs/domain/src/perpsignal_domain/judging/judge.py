"""The rule judge's verdict layer: volatility metrics + rule verdict -> a judged signal (pure).

The judge service wraps this with its LLM; the backtest runs it as is. Nothing here reads
the clock: the caller passes `clock` (the service passes `utcnow`), so a judged signal's
`produced_at` is the only impure value and it comes from outside.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from typing import Any

from perpsignal_common.events.base import deterministic_id
from perpsignal_common.events.signals import (
    JudgeRequestV1,
    LayerChecks,
    Ohlc,
    RiskMode,
    ScoredSignalFields,
    SignalJudgedV1,
    SignalScoredV1,
    Verdict,
    VerdictLayer,
    VolatilityMetrics,
)
from perpsignal_domain.judging.rules import MIN_CONFIDENCE, RuleVerdict, judge_rules, summarize
from perpsignal_domain.judging.volatility import (
    PlanParams,
    aggregate,
    build_metrics,
    fmt_price,
    timeframe_minutes,
)
from perpsignal_domain.trusted import trusted

log = logging.getLogger(__name__)

SOURCE = "judge"
_JUDGED_TYPE = SignalJudgedV1.model_fields["type"].default
# what the validated constructor records as given: all but the defaulted envelope fields
# (a set: each event gets a copy, which for a set is one table copy, no rehashing)
_JUDGED_SET = set(SignalJudgedV1.model_fields) - {"type", "schema_version", "produced_at"}
_setattr = object.__setattr__
_CHECKS_SET = frozenset(LayerChecks.model_fields)
_LAYER_SET = frozenset(VerdictLayer.model_fields) - {"model"}

# (symbol, timeframe), candles -> their true ranges when known (JudgeCodec.true_ranges)
KnownRanges = Callable[[tuple[str, str], Sequence[Ohlc]], Sequence[float] | None]


@dataclass(frozen=True)
class JudgeConfig:
    """What the verdict layer needs of the JUDGE_* settings."""

    params: PlanParams = field(default_factory=PlanParams)
    atr_timeframe: str | None = None  # aggregate the signal's candles to this first
    auto_skip_avoid_signals: bool = True  # flag SKIP/AVOID verdicts `suppressed`
    min_confidence: float = MIN_CONFIDENCE  # rule 2: a signal below it is SKIP


def judge_config_to_json(cfg: JudgeConfig) -> dict[str, Any]:
    """The judge's `--print-config` data (see `judge_config_from_json`)."""
    return {
        "params": asdict(cfg.params),
        "atr_timeframe": cfg.atr_timeframe,
        "auto_skip_avoid_signals": cfg.auto_skip_avoid_signals,
        "min_confidence": cfg.min_confidence,
    }


def judge_config_from_json(data: dict[str, Any]) -> JudgeConfig:
    """Rebuild a `JudgeConfig` from `judge_config_to_json` data."""
    return JudgeConfig(
        params=PlanParams(**data["params"]),
        atr_timeframe=data["atr_timeframe"],
        auto_skip_avoid_signals=data["auto_skip_avoid_signals"],
        min_confidence=data.get("min_confidence", MIN_CONFIDENCE),
    )


class RuleJudge:
    """Volatility metrics, rule verdict and the judged event of a scored signal.

    `known_ranges`: where the true ranges of a signal's candles may already be (the judge
    service passes its codec's, which keeps each window's); otherwise they come from the
    candles. `clock` gives `produced_at`.
    """

    def __init__(
        self,
        config: JudgeConfig,
        *,
        clock: Callable[[], datetime],
        known_ranges: KnownRanges | None = None,
    ) -> None:
        self.config = config
        self.params = config.params
        self._clock = clock
        self._known_ranges = known_ranges
        self._logged: set[tuple[str, str]] = set()

    def judge_rules(self, scored: SignalScoredV1) -> SignalJudgedV1:
        """Return the judged event using the rule judge only (deterministic)."""
        vol, rules = self.assess(scored.symbol, scored)
        return self.judged(scored, self.rule_layer(rules, vol, None))

    def assess(
        self, symbol: str, signal: ScoredSignalFields
    ) -> tuple[VolatilityMetrics, RuleVerdict]:
        """Return the volatility metrics (with trade plan) and the rule verdict of `signal`."""
        candles: Sequence[Ohlc] = signal.candles
        timeframe = signal.timeframe
        try:
            timeframe_minutes(timeframe)
        except ValueError:
            self._once(
                symbol, "tf", "unknown signal timeframe; volatility classed as 1h", tf=timeframe
            )
            timeframe = "1h"
        target = self.config.atr_timeframe
        if target and target != timeframe:
            try:
                candles = aggregate(candles, timeframe, target)
                timeframe = target
            except ValueError as exc:
                self._once(
                    symbol,
                    "atr_tf",
                    "JUDGE_ATR_TIMEFRAME unusable; using the signal's",
                    error=str(exc),
                )
        ranges = None
        if self._known_ranges is not None and candles is signal.candles:
            ranges = self._known_ranges((symbol, signal.timeframe), candles)
        vol = build_metrics(
            symbol=symbol,
            direction=signal.direction,
            entry=signal.price,
            confidence=signal.confidence,
            candles=candles,
            timeframe=timeframe,
            params=self.params,
            ranges=ranges,
        )
        if vol.atr is None:
            self._once(
                symbol,
                "atr",
                "too few candles for ATR: no volatility metrics or trade plan",
                candles=len(candles),
                needed=self.params.atr_period + 1,
            )
        return vol, judge_rules(signal, symbol, vol, self.config.min_confidence)

    def rule_layer(
        self, rules: RuleVerdict, vol: VolatilityMetrics, fallback: str | None
    ) -> VerdictLayer:
        """Return the verdict layer of the rule verdict (`fallback`: why not the LLM's).

        Built without re-validation (two models per signal): verdict, mode and multiplier
        come from the rule table, the texts are tuples of str and `vol` is a model already.
        A multiplier outside the contract's bounds goes through the validated constructor.
        """
        mult = rules.position_multiplier
        if type(mult) is not float or not 0.0 <= mult <= 1.5:
            return VerdictLayer(
                verdict=rules.verdict,
                risk_mode=rules.risk_mode,
                position_multiplier=mult,
                ai_summary=rules.summary,
                layer_checks=LayerChecks(agreements=rules.agreements, conflicts=rules.conflicts),
                judge="rules",
                fallback_reason=fallback,
                suppressed=self.suppressed(rules.verdict, rules.risk_mode),
                volatility_metrics=vol,
            )
        checks = trusted(
            LayerChecks,
            {"agreements": tuple(rules.agreements), "conflicts": tuple(rules.conflicts)},
            _CHECKS_SET,
        )
        return trusted(
            VerdictLayer,
            {
                "verdict": rules.verdict,
                "risk_mode": rules.risk_mode,
                "position_multiplier": mult,
                "ai_summary": rules.summary,
                "layer_checks": checks,
                "judge": "rules",
                "fallback_reason": fallback,
                "suppressed": self.suppressed(rules.verdict, rules.risk_mode),
                "model": None,
                "volatility_metrics": vol,
            },
            _LAYER_SET,
        )

    def suppressed(self, verdict: str, risk_mode: str) -> bool:
        """Return True when notifiers should hold this verdict back (SKIP or AVOID)."""
        return self.config.auto_skip_avoid_signals and (verdict == "SKIP" or risk_mode == "AVOID")

    @staticmethod
    def judged_id(scored: SignalScoredV1) -> str:
        """Return the event id of `scored`'s judged signal (the same on every redelivery)."""
        return deterministic_id(scored.event_id, SOURCE)

    def judged(self, scored: SignalScoredV1, layer: VerdictLayer) -> SignalJudgedV1:
        """Build the judged event from validated parts, without validating them again.

        Every value is a field of the validated `scored`, our own id, source and timestamp,
        or the validated `layer`. Pydantic's constructor passes such values through, but
        walks each candle and factor to do so: most of the judge's own work per signal.
        Tests hold the result equal to the validated model, fields set included.
        """
        values = scored.__dict__.copy()  # every field of a scored signal, in order
        values.update(
            event_id=self.judged_id(scored),
            type=_JUDGED_TYPE,
            source=SOURCE,
            produced_at=self._clock(),
            correlation_id=scored.correlation_id or scored.event_id,
            causation_id=scored.event_id,
            ai_verdict_layer=layer,
        )
        judged = SignalJudgedV1.__new__(SignalJudgedV1)
        _setattr(judged, "__dict__", values)
        _setattr(judged, "__pydantic_fields_set__", _JUDGED_SET.copy())
        _setattr(judged, "__pydantic_extra__", None)
        _setattr(judged, "__pydantic_private__", None)
        return judged

    def _once(self, symbol: str, what: str, message: str, **extra: object) -> None:
        if (symbol, what) not in self._logged and len(self._logged) < 10_000:
            self._logged.add((symbol, what))
            log.warning(message, extra={"symbol": symbol, **extra})


def caller_plan_conflicts(req: JudgeRequestV1, vol: VolatilityMetrics) -> list[tuple[str, int]]:
    """Check a caller's own stop/target: wrong side (major), inside 1 ATR or R:R < 1.5."""
    out: list[tuple[str, int]] = []
    entry = req.entry_price
    if entry is None or req.direction == "NEUTRAL":
        return out
    sign = 1 if req.direction == "LONG" else -1
    stop, target = req.stop_loss_price, req.take_profit_price
    if stop is not None and (entry - stop) * sign <= 0:
        wrong = f"is on the wrong side of entry for {req.direction}"
        out.append((f"your stop {fmt_price(stop)} {wrong}", 2))
        stop = None
    if target is not None and (target - entry) * sign <= 0:
        wrong = f"is on the wrong side of entry for {req.direction}"
        out.append((f"your target {fmt_price(target)} {wrong}", 2))
        target = None
    if stop is not None and vol.atr and abs(entry - stop) < vol.atr:
        out.append((f"your stop is inside 1 ATR ({fmt_price(vol.atr)}): noise may hit it", 1))
    if stop is not None and target is not None:
        rr = abs(target - entry) / abs(entry - stop)
        if rr < 1.5:
            out.append((f"your reward:risk is {rr:.2f}, below 1.5", 1))
    return out


_CALLER_PLAN_TEXT = {
    "invalid_caller_plan": "your stop or target is on the wrong side of entry",
    "weak_caller_plan": "your plan is weak (stop inside 1 ATR or reward:risk under 1.5)",
}


def with_caller_conflicts(
    rules: RuleVerdict,
    extra: list[tuple[str, int]],
    *,
    signal: ScoredSignalFields,
    symbol: str,
) -> RuleVerdict:
    """Downgrade the rule verdict for a broken (SKIP) or weak (DOWNSIZE) caller plan.

    The summary is written again for the verdict it now goes with: the rules' own, with its
    verdict word swapped, still said "Risk NORMAL, size 1x (... 0 warnings)" beside a SKIP at
    size 0 with the caller's conflicts.
    """
    conflicts = rules.conflicts + tuple(t for t, _ in extra)
    weight = rules.conflict_weight + sum(w for _, w in extra)
    verdict: Verdict
    mode: RiskMode
    if any(w >= 2 for _, w in extra) and rules.verdict in ("CONFIRM", "DOWNSIZE"):
        verdict, mode, mult, reason = "SKIP", "AVOID", 0.0, "invalid_caller_plan"
    elif rules.verdict == "CONFIRM":
        verdict, mode, mult, reason = "DOWNSIZE", "REDUCED", 0.5, "weak_caller_plan"
    else:
        verdict, mode, mult, reason = (
            rules.verdict,
            rules.risk_mode,
            rules.position_multiplier,
            rules.reason,
        )
    # the reason's words: the caller's plan (not rows of the rule table) or the rule's own
    said = _CALLER_PLAN_TEXT.get(reason, reason)
    summary = summarize(
        symbol, signal, verdict, mode, mult, said, len(rules.agreements), len(conflicts)
    )
    return replace(
        rules,
        verdict=verdict,
        risk_mode=mode,
        position_multiplier=mult,
        reason=reason,
        conflicts=conflicts,
        conflict_weight=weight,
        summary=summary,
    )
