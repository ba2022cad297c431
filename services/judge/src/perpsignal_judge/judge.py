"""The judge service's verdict: the domain's rule judge plus (optionally) the LLM.

`Judge.judge(scored)` is the service's handler API. `Judge.judge_rules(scored)` is its
synchronous, LLM-free twin: the domain's `RuleJudge`, which the backtest runs directly.
Volatility, rules and the judged event are built in `perpsignal_domain.judging`; this module
adds the OpenAI call, its clamps and the verdict metrics.
"""

from __future__ import annotations

import logging
from typing import Any

from perpsignal_common.events.base import deterministic_id, utcnow
from perpsignal_common.events.signals import (
    FACTOR_NAMES,
    JudgeReplyV1,
    JudgeRequestV1,
    LayerChecks,
    ScoredSignalFields,
    SignalJudgedV1,
    SignalScoredV1,
    VerdictLayer,
    VolatilityMetrics,
)
from perpsignal_common.settings import redact_credentials
from perpsignal_domain.judging import prompt
from perpsignal_domain.judging.judge import (
    SOURCE,
    JudgeConfig,
    KnownRanges,
    RuleJudge,
    caller_plan_conflicts,
    with_caller_conflicts,
)
from perpsignal_domain.judging.rules import RuleVerdict
from perpsignal_domain.judging.volatility import PlanParams
from perpsignal_judge.llm import (
    Budget,
    LlmJudge,
    LlmVerdict,
    build_client,
    count_fallback,
    inconsistency,
)
from perpsignal_judge.metrics import VERDICTS
from perpsignal_judge.settings import JudgeSettings

log = logging.getLogger(__name__)

_FIELDS = tuple(ScoredSignalFields.model_fields)
TAKES = frozenset({"CONFIRM", "DOWNSIZE"})  # verdicts that take the trade
# a request's entry price at most this many times (or this fraction of) the market's price:
# the plan's ATR comes from the context's candles, which say nothing of a price far off
MAX_ENTRY_RATIO = 2.0

__all__ = ["SOURCE", "Judge", "caller_plan_conflicts", "judge_config"]


def judge_config(s: JudgeSettings) -> JudgeConfig:
    """Map the JUDGE_* settings onto the domain's verdict-layer config."""
    return JudgeConfig(
        params=PlanParams(
            atr_period=s.judge_atr_period,
            stop_atr_min=s.judge_stop_atr_min,
            stop_atr_max=s.judge_stop_atr_max,
            rr_min=s.judge_rr_min,
            rr_max=s.judge_rr_max,
            reference_atr_pct_1h=s.judge_reference_atr_pct,
        ),
        atr_timeframe=s.judge_atr_timeframe,
        auto_skip_avoid_signals=s.auto_skip_avoid_signals,
        min_confidence=s.judge_min_confidence,
    )


class Judge:
    """Judge scored signals; stateless apart from the LLM cache and budget.

    `known_ranges`: where the true ranges of a signal's candles may already be (JudgeService
    passes its codec's, which keeps each window's); otherwise they come from the candles.
    """

    def __init__(
        self,
        settings: JudgeSettings | None = None,
        llm: LlmJudge | None = None,
        known_ranges: KnownRanges | None = None,
    ) -> None:
        self.settings = settings or JudgeSettings()
        s = self.settings
        self.rules = RuleJudge(judge_config(s), clock=utcnow, known_ranges=known_ranges)
        self.params = self.rules.params
        self.llm = llm
        if self.llm is None and s.llm_enabled and s.openai_api_key is not None:
            self.llm = LlmJudge(
                build_client(
                    s.openai_api_key.get_secret_value(),
                    s.openai_base_url,
                    s.ai_judge_timeout,
                ),
                model=s.openai_model,
                timeout_s=s.ai_judge_timeout,
                concurrency=s.judge_llm_concurrency,
                budget=Budget(s.judge_llm_calls_per_minute, s.judge_llm_tokens_per_minute),
                cache_size=s.judge_llm_cache_size,
                max_output_tokens=s.judge_llm_max_output_tokens,
                max_retries=s.judge_llm_max_retries,
                reasoning_tokens=s.judge_llm_reasoning_tokens,
            )
        self._verdict_counters: dict[tuple[str, str], Any] = {}  # labels() is costly per call
        if s.enable_ai_judge and s.openai_api_key is None and llm is None:
            log.warning("ENABLE_AI_JUDGE is true but OPENAI_API_KEY is not set: rules only")
        elif self.llm is not None:
            url = s.openai_base_url and redact_credentials(s.openai_base_url)
            log.info("LLM judge on", extra={"model": self.llm.model, "base_url": url})
        else:
            log.info("LLM judge off (ENABLE_AI_JUDGE=false): rule verdicts only")

    async def close(self) -> None:
        """Release the LLM client."""
        if self.llm is not None:
            await self.llm.close()

    # -- public API --------------------------------------------------------------------

    async def judge(self, scored: SignalScoredV1) -> SignalJudgedV1:
        """Return the judged event of `scored` (LLM verdict when enabled, else rules)."""
        vol, rules = self.rules.assess(scored.symbol, scored)
        layer = await self._layer(scored.symbol, scored, vol, rules)
        return self.rules.judged(scored, layer)

    def judge_rules(self, scored: SignalScoredV1) -> SignalJudgedV1:
        """Return the judged event using the rule judge only (no I/O, deterministic)."""
        return self.rules.judge_rules(scored)

    async def judge_request(self, req: JudgeRequestV1) -> JudgeReplyV1:
        """Judge a caller-supplied signal and build the reply (same correlation id)."""
        reply_id = deterministic_id(req.event_id, SOURCE, "reply")
        envelope: dict[str, Any] = {
            "event_id": reply_id,
            "source": SOURCE,
            "symbol": req.symbol,
            "observed_at": req.observed_at,
            "correlation_id": req.correlation_id or req.event_id,
            "causation_id": req.event_id,
        }
        base = req.signal
        price = req.entry_price if req.entry_price is not None else (base.price if base else None)
        if price is None or price <= 0:
            return JudgeReplyV1(
                **envelope, ok=False, error="entry_price or a signal context with a price is needed"
            )
        if base is not None and req.entry_price is not None:
            ratio = req.entry_price / base.price
            if not 1 / MAX_ENTRY_RATIO <= ratio <= MAX_ENTRY_RATIO:
                return JudgeReplyV1(
                    **envelope,
                    ok=False,
                    error=(
                        f"entry_price {req.entry_price:g} is {ratio:.3g}x the market's price "
                        f"{base.price:g}: not a plan on this market (allowed: "
                        f"{1 / MAX_ENTRY_RATIO:g}x to {MAX_ENTRY_RATIO:g}x)"
                    ),
                )
        update: dict[str, Any] = {"direction": req.direction, "price": price, "trigger": "request"}
        if req.score is not None:
            update["score"] = req.score
        if base is None:
            fields = ScoredSignalFields(
                signal_id=req.event_id,
                timeframe="1h",
                direction=req.direction,
                score=req.score if req.score is not None else 50.0,
                confidence=0.0,
                price=price,
                missing_factors=FACTOR_NAMES,
                trigger="request",
            )
        else:
            fields = base.model_copy(update=update)
        vol, rules = self.rules.assess(req.symbol, fields)
        extra = caller_plan_conflicts(req, vol)
        if extra:
            rules = with_caller_conflicts(rules, extra, signal=fields, symbol=req.symbol)
        plan = (req.stop_loss_price, req.take_profit_price)
        layer = await self._layer(req.symbol, fields, vol, rules, plan)
        scored = SignalScoredV1(
            event_id=req.event_id,
            source="request",
            symbol=req.symbol,
            observed_at=req.observed_at,
            correlation_id=req.correlation_id,
            **{name: getattr(fields, name) for name in _FIELDS},
        )
        judged = self.rules.judged(scored, layer).model_copy(
            update={"event_id": deterministic_id(req.event_id, SOURCE)}
        )
        return JudgeReplyV1(**envelope, judged=judged)

    # -- internals ---------------------------------------------------------------------

    async def _layer(
        self,
        symbol: str,
        signal: ScoredSignalFields,
        vol: VolatilityMetrics,
        rules: RuleVerdict,
        plan: tuple[float | None, float | None] = (None, None),
    ) -> VerdictLayer:
        """Return the verdict layer: the LLM's when it answers usably, else the rules'.

        `plan`: a caller's own stop and target (a judge request). The model judges the
        trade with them (it saw only the rules' warnings about them before, and judged the
        platform's proposed stop and target instead), and may quote them.
        """
        if self.llm is None:
            reason = "no_api_key" if self.settings.enable_ai_judge else None
            layer = self.rules.rule_layer(rules, vol, reason)
        elif signal.direction == "NEUTRAL":
            layer = self.rules.rule_layer(rules, vol, "neutral_signal")
        else:
            stop, target = plan
            inputs = prompt.prompt_inputs(
                symbol, signal, vol, rules, caller_stop=stop, caller_target=target
            )
            outcome = await self.llm.verdict(inputs)
            levels = (signal.price, vol.stop_loss_price, vol.take_profit_price, *plan)
            v = outcome.verdict
            off = (
                None if v is None else inconsistency(v, symbol, levels) or _contradiction(v, rules)
            )
            if outcome.verdict is None:
                layer = self.rules.rule_layer(rules, vol, outcome.reason)
            elif off is not None:
                log.warning(
                    "LLM verdict unavailable; using rules",
                    extra={"reason": "inconsistent_output", "detail": off, "symbol": symbol},
                )
                layer = self.rules.rule_layer(rules, vol, "inconsistent_output")
            else:
                layer = self._llm_layer(outcome.verdict, rules, vol)
        if layer.fallback_reason:
            count_fallback(layer.fallback_reason)
        counter = self._verdict_counters.get((layer.verdict, layer.judge))
        if counter is None:
            counter = self._verdict_counters[(layer.verdict, layer.judge)] = VERDICTS.labels(
                layer.verdict, layer.judge
            )
        counter.inc()
        return layer

    def _llm_layer(self, v: LlmVerdict, rules: RuleVerdict, vol: VolatilityMetrics) -> VerdictLayer:
        """Combine the model's answer with the rules' facts under consistency clamps."""
        mult = v.position_multiplier
        if v.verdict in ("SKIP", "WAIT") or v.risk_mode == "AVOID":
            mult = 0.0
        elif v.verdict == "DOWNSIZE":
            mult = min(max(mult, 0.1), 1.0)
        if v.risk_mode != "AGGRESSIVE":
            # above full size only when the mode says so (as in the rules): "Risk REDUCED,
            # size 1.5x" was published as the model wrote it
            mult = min(mult, 1.0)
        agreements = rules.agreements + tuple(a for a in v.agreements if a not in rules.agreements)
        conflicts = rules.conflicts + tuple(c for c in v.conflicts if c not in rules.conflicts)
        return VerdictLayer(
            verdict=v.verdict,
            risk_mode=v.risk_mode,
            position_multiplier=round(mult, 2),
            ai_summary=v.summary,
            layer_checks=LayerChecks(agreements=agreements, conflicts=conflicts),
            judge="llm",
            suppressed=self.rules.suppressed(v.verdict, v.risk_mode),
            model=self.llm.model if self.llm else None,
            volatility_metrics=vol,
        )

    @staticmethod
    def judged_id(scored: SignalScoredV1) -> str:
        """Return the event id of `scored`'s judged signal (the same on every redelivery)."""
        return RuleJudge.judged_id(scored)


def _contradiction(v: LlmVerdict, rules: RuleVerdict) -> str | None:
    """Return how the model's verdict contradicts the hard rules or itself, or None.

    The rules' SKIP and WAIT are the platform's gates (confidence below
    JUDGE_MIN_CONFIDENCE, factors against the direction, data missing, too many risk
    warnings, no stop loss to place, a caller plan with its stop/target on the wrong
    side): the model may make a trade smaller or call it off, never take one the gates
    closed. Nor may it take a trade at no size: CONFIRM at a multiplier of 0, or
    CONFIRM/DOWNSIZE in risk mode AVOID (which sizes it 0), says two things at once.
    """
    if v.verdict in TAKES:
        if rules.reason == "invalid_caller_plan":
            return f"{v.verdict} of a caller plan with its stop/target on the wrong side"
        if rules.verdict in ("SKIP", "WAIT"):
            return f"{v.verdict} of a signal the rules {rules.verdict} ({rules.reason})"
        if v.risk_mode == "AVOID":
            return f"{v.verdict} in risk mode AVOID (size 0)"
    if v.verdict == "CONFIRM" and v.position_multiplier <= 0.0:
        return f"CONFIRM at position multiplier {v.position_multiplier:g}"
    return None
