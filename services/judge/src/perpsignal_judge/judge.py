"""The judge: rules, volatility and (optionally) the LLM combined into a judged signal.

`Judge.judge(scored)` is the in-process API: the service's handler calls it for every
signal and the backtest calls it for history. `Judge.judge_rules(scored)` is its
synchronous, LLM-free twin for callers that need speed and determinism.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

from perpsignal_common.events.base import deterministic_id, utcnow
from perpsignal_common.events.signals import (
    FACTOR_NAMES,
    JudgeReplyV1,
    JudgeRequestV1,
    LayerChecks,
    Ohlc,
    ScoredSignalFields,
    SignalJudgedV1,
    SignalScoredV1,
    VerdictLayer,
    VolatilityMetrics,
)
from perpsignal_domain.judging import prompt
from perpsignal_domain.judging.rules import RuleVerdict, judge_rules
from perpsignal_domain.judging.volatility import (
    PlanParams,
    aggregate,
    build_metrics,
    timeframe_minutes,
)
from perpsignal_judge.llm import Budget, LlmJudge, LlmVerdict, build_client, count_fallback
from perpsignal_judge.metrics import VERDICTS
from perpsignal_judge.settings import JudgeSettings

log = logging.getLogger(__name__)

SOURCE = "judge"
_FIELDS = tuple(ScoredSignalFields.model_fields)
_JUDGED_TYPE = SignalJudgedV1.model_fields["type"].default
# what the validated constructor records as given: all but the defaulted envelope fields
# (a set: each event gets a copy, which for a set is one table copy, no rehashing)
_JUDGED_SET = set(SignalJudgedV1.model_fields) - {"type", "schema_version", "produced_at"}
_setattr = object.__setattr__


# (symbol, timeframe), candles -> their true ranges when known (JudgeCodec.true_ranges)
KnownRanges = Callable[[tuple[str, str], Sequence[Ohlc]], Sequence[float] | None]


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
        self._known_ranges = known_ranges
        s = self.settings
        self.params = PlanParams(
            atr_period=s.judge_atr_period,
            stop_atr_min=s.judge_stop_atr_min,
            stop_atr_max=s.judge_stop_atr_max,
            rr_min=s.judge_rr_min,
            rr_max=s.judge_rr_max,
            reference_atr_pct_1h=s.judge_reference_atr_pct,
        )
        self.llm = llm
        if self.llm is None and s.llm_enabled and s.openai_api_key is not None:
            self.llm = LlmJudge(
                build_client(
                    s.openai_api_key.get_secret_value(),
                    s.openai_base_url,
                    s.ai_judge_timeout,
                    s.judge_llm_max_retries,
                ),
                model=s.openai_model,
                timeout_s=s.ai_judge_timeout,
                concurrency=s.judge_llm_concurrency,
                budget=Budget(s.judge_llm_calls_per_minute, s.judge_llm_tokens_per_minute),
                cache_size=s.judge_llm_cache_size,
                max_output_tokens=s.judge_llm_max_output_tokens,
            )
        self._logged: set[tuple[str, str]] = set()
        self._verdict_counters: dict[tuple[str, str], Any] = {}  # labels() is costly per call
        if s.enable_ai_judge and s.openai_api_key is None and llm is None:
            log.warning("ENABLE_AI_JUDGE is true but OPENAI_API_KEY is not set: rules only")
        elif self.llm is not None:
            log.info("LLM judge on", extra={"model": self.llm.model, "base_url": s.openai_base_url})
        else:
            log.info("LLM judge off (ENABLE_AI_JUDGE=false): rule verdicts only")

    async def close(self) -> None:
        """Release the LLM client."""
        if self.llm is not None:
            await self.llm.close()

    # -- public API --------------------------------------------------------------------

    async def judge(self, scored: SignalScoredV1) -> SignalJudgedV1:
        """Return the judged event of `scored` (LLM verdict when enabled, else rules)."""
        vol, rules = self._assess(scored.symbol, scored)
        layer = await self._layer(scored.symbol, scored, vol, rules)
        return self._judged(scored, layer)

    def judge_rules(self, scored: SignalScoredV1) -> SignalJudgedV1:
        """Return the judged event using the rule judge only (no I/O, deterministic)."""
        vol, rules = self._assess(scored.symbol, scored)
        return self._judged(scored, self._rule_layer(rules, vol, None))

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
        vol, rules = self._assess(req.symbol, fields)
        extra = caller_plan_conflicts(req, vol)
        if extra:
            rules = _with_caller_conflicts(rules, extra)
        layer = await self._layer(req.symbol, fields, vol, rules)
        scored = SignalScoredV1(
            event_id=req.event_id,
            source="request",
            symbol=req.symbol,
            observed_at=req.observed_at,
            correlation_id=req.correlation_id,
            **{name: getattr(fields, name) for name in _FIELDS},
        )
        judged = self._judged(scored, layer).model_copy(
            update={"event_id": deterministic_id(req.event_id, SOURCE)}
        )
        return JudgeReplyV1(**envelope, judged=judged)

    # -- internals ---------------------------------------------------------------------

    def _once(self, symbol: str, what: str, message: str, **extra: object) -> None:
        if (symbol, what) not in self._logged and len(self._logged) < 10_000:
            self._logged.add((symbol, what))
            log.warning(message, extra={"symbol": symbol, **extra})

    def _assess(
        self, symbol: str, signal: ScoredSignalFields
    ) -> tuple[VolatilityMetrics, RuleVerdict]:
        candles: Sequence[Ohlc] = signal.candles
        timeframe = signal.timeframe
        try:
            timeframe_minutes(timeframe)
        except ValueError:
            self._once(
                symbol, "tf", "unknown signal timeframe; volatility classed as 1h", tf=timeframe
            )
            timeframe = "1h"
        target = self.settings.judge_atr_timeframe
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
        return vol, judge_rules(signal, symbol, vol)

    def _rule_layer(
        self, rules: RuleVerdict, vol: VolatilityMetrics, fallback: str | None
    ) -> VerdictLayer:
        return VerdictLayer(
            verdict=rules.verdict,
            risk_mode=rules.risk_mode,
            position_multiplier=rules.position_multiplier,
            ai_summary=rules.summary,
            layer_checks=LayerChecks(agreements=rules.agreements, conflicts=rules.conflicts),
            judge="rules",
            fallback_reason=fallback,
            suppressed=self._suppressed(rules.verdict, rules.risk_mode),
            volatility_metrics=vol,
        )

    def _suppressed(self, verdict: str, risk_mode: str) -> bool:
        return self.settings.auto_skip_avoid_signals and (verdict == "SKIP" or risk_mode == "AVOID")

    async def _layer(
        self, symbol: str, signal: ScoredSignalFields, vol: VolatilityMetrics, rules: RuleVerdict
    ) -> VerdictLayer:
        if self.llm is None:
            reason = "no_api_key" if self.settings.enable_ai_judge else None
            layer = self._rule_layer(rules, vol, reason)
        elif signal.direction == "NEUTRAL":
            layer = self._rule_layer(rules, vol, "neutral_signal")
        else:
            outcome = await self.llm.verdict(prompt.prompt_inputs(symbol, signal, vol, rules))
            if outcome.verdict is None:
                layer = self._rule_layer(rules, vol, outcome.reason)
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
        agreements = rules.agreements + tuple(a for a in v.agreements if a not in rules.agreements)
        conflicts = rules.conflicts + tuple(c for c in v.conflicts if c not in rules.conflicts)
        return VerdictLayer(
            verdict=v.verdict,
            risk_mode=v.risk_mode,
            position_multiplier=round(mult, 2),
            ai_summary=v.summary or rules.summary,
            layer_checks=LayerChecks(agreements=agreements, conflicts=conflicts),
            judge="llm",
            suppressed=self._suppressed(v.verdict, v.risk_mode),
            model=self.llm.model if self.llm else None,
            volatility_metrics=vol,
        )

    @staticmethod
    def judged_id(scored: SignalScoredV1) -> str:
        """Return the event id of `scored`'s judged signal (the same on every redelivery)."""
        return deterministic_id(scored.event_id, SOURCE)

    @classmethod
    def _judged(cls, scored: SignalScoredV1, layer: VerdictLayer) -> SignalJudgedV1:
        """Build the judged event from validated parts, without validating them again.

        Every value is a field of the validated `scored`, our own id, source and timestamp,
        or the validated `layer`. Pydantic's constructor passes such values through, but
        walks each candle and factor to do so: most of the judge's own work per signal.
        Tests hold the result equal to the validated model, fields set included.
        """
        values = scored.__dict__.copy()  # every field of a scored signal, in order
        values.update(
            event_id=cls.judged_id(scored),
            type=_JUDGED_TYPE,
            source=SOURCE,
            produced_at=utcnow(),
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


def caller_plan_conflicts(req: JudgeRequestV1, vol: VolatilityMetrics) -> list[tuple[str, int]]:
    """Check a caller's own stop/target: wrong side (major), inside 1 ATR or R:R < 1.5."""
    out: list[tuple[str, int]] = []
    entry = req.entry_price
    if entry is None or req.direction == "NEUTRAL":
        return out
    sign = 1 if req.direction == "LONG" else -1
    stop, target = req.stop_loss_price, req.take_profit_price
    if stop is not None and (entry - stop) * sign <= 0:
        out.append((f"your stop {stop:g} is on the wrong side of entry for {req.direction}", 2))
        stop = None
    if target is not None and (target - entry) * sign <= 0:
        out.append((f"your target {target:g} is on the wrong side of entry for {req.direction}", 2))
        target = None
    if stop is not None and vol.atr and abs(entry - stop) < vol.atr:
        out.append((f"your stop is inside 1 ATR ({vol.atr:g}): noise may hit it", 1))
    if stop is not None and target is not None:
        rr = abs(target - entry) / abs(entry - stop)
        if rr < 1.5:
            out.append((f"your reward:risk is {rr:.2f}, below 1.5", 1))
    return out


def _with_caller_conflicts(rules: RuleVerdict, extra: list[tuple[str, int]]) -> RuleVerdict:
    """Downgrade the rule verdict for a broken (SKIP) or weak (DOWNSIZE) caller plan."""
    from dataclasses import replace

    conflicts = rules.conflicts + tuple(t for t, _ in extra)
    if any(w >= 2 for _, w in extra) and rules.verdict in ("CONFIRM", "DOWNSIZE"):
        return replace(
            rules,
            verdict="SKIP",
            risk_mode="AVOID",
            position_multiplier=0.0,
            reason="invalid_caller_plan",
            conflicts=conflicts,
            summary=rules.summary.replace(rules.verdict, "SKIP", 1)
            + " Your stop/target is on the wrong side.",
        )
    if rules.verdict == "CONFIRM":
        return replace(
            rules,
            verdict="DOWNSIZE",
            risk_mode="REDUCED",
            position_multiplier=0.5,
            reason="weak_caller_plan",
            conflicts=conflicts,
            summary=rules.summary.replace("CONFIRM", "DOWNSIZE", 1) + " Your plan is weak.",
        )
    return replace(rules, conflicts=conflicts)
