"""Signal events: scorer output, judged signal (the product), MSS, outcomes, judge RPC."""

from __future__ import annotations

from typing import Any, ClassVar, Literal, get_args

from pydantic import Field, model_validator

from perpsignal_common.events.base import Event, Payload
from perpsignal_common.events.topics import Topic
from perpsignal_common.events.values import (
    Amount,
    CandleTime,
    Ident,
    Price,
    Text,
    check_candle,
)

Direction = Literal["LONG", "SHORT", "NEUTRAL"]
FactorName = Literal[
    "liquidations",
    "funding",
    "momentum",
    "long_short",
    "smart_money",
    "oi_trend",
    "social",
    "fear_greed",
]
FACTOR_NAMES: tuple[str, ...] = get_args(FactorName)
Verdict = Literal["CONFIRM", "DOWNSIZE", "SKIP", "WAIT"]
RiskMode = Literal["NORMAL", "REDUCED", "AVOID", "AGGRESSIVE"]
VolatilityClass = Literal["VERY_LOW", "LOW", "NORMAL", "HIGH", "VERY_HIGH"]
Scalar = float | int | Text | bool | None


class FactorScore(Payload):
    """One factor's sub-score (0-100, 50 = neutral) with the raw inputs that produced it."""

    name: FactorName
    score: float = Field(ge=0, le=100)
    weight: float = Field(ge=0, description="Configured weight (weights sum to 100)")
    contribution: float = Field(description="weight/100 * (score - 50): signed pull on total")
    status: Literal["ok", "missing", "stale"] = "ok"
    age_s: float | None = Field(default=None, description="Age of the newest input used")
    inputs: dict[str, Scalar] = Field(default_factory=dict)
    reason: Text | None = Field(default=None, description="Why missing/stale, or a note")


class Ohlc(Payload):
    """A candle as carried inside a signal (the judge's ATR input)."""

    open_time: CandleTime
    open: Price
    high: Price
    low: Price
    close: Price
    volume: Amount = 0.0

    _check_range = model_validator(mode="after")(check_candle)


class SmcSummary(Payload):
    """Smart Money Concepts view: bias per timeframe and a combined bias."""

    bias: Literal["BULLISH", "BEARISH", "NEUTRAL"] = "NEUTRAL"
    by_timeframe: dict[str, Literal["BULLISH", "BEARISH", "NEUTRAL"]] = Field(default_factory=dict)
    last_event: Text | None = Field(default=None, description="e.g. `BOS up @ 1h`")
    details: dict[str, Scalar] = Field(default_factory=dict)


class ScoredSignalFields(Payload):
    """Fields every scored signal carries (shared by scored and judged events)."""

    signal_id: Ident
    timeframe: Ident
    direction: Direction
    score: float = Field(ge=0, le=100)
    confidence: float = Field(ge=0, le=100)
    price: Price
    factors: tuple[FactorScore, ...] = ()
    top_factors: tuple[str, ...] = Field(
        default=(), description="Up to 3 factors with a non-zero contribution, by |contribution|"
    )
    missing_factors: tuple[str, ...] = ()
    stale_factors: tuple[str, ...] = ()
    smc: SmcSummary | None = None
    candles: tuple[Ohlc, ...] = Field(
        default=(), description="Recent candles of the scoring timeframe, oldest first"
    )
    trigger: Literal["candle", "on_demand", "backtest", "request"] = "candle"
    venue: Ident | None = Field(
        default=None, description="Venue whose candles are the price series (absent: unknown)"
    )


class SignalScoredV1(ScoredSignalFields, Event):
    """Scorer output on `perpsignal.signals.v1`."""

    topic: ClassVar[str] = Topic.SIGNALS
    type: Literal["signal.scored"] = "signal.scored"


class LayerChecks(Payload):
    """Agreements (supporting evidence) and conflicts (risk warnings) the judge found."""

    agreements: tuple[Text, ...] = ()
    conflicts: tuple[Text, ...] = ()


class VolatilityMetrics(Payload):
    """ATR-based volatility class and trade plan; NEUTRAL signals carry no plan.

    The plan's sides are checked against the signal it belongs to (`check_plan`)."""

    atr: float | None = Field(default=None, ge=0)
    atr_pct: float | None = Field(default=None, ge=0)
    volatility_class: VolatilityClass | None = None
    recommended_position_multiplier: float | None = Field(default=None, ge=0.25, le=2.0)
    stop_loss_price: float | None = Field(default=None, gt=0)
    take_profit_price: float | None = Field(default=None, gt=0)
    risk_reward: float | None = Field(default=None, gt=0)
    trade_plan_summary: Text | None = None


class VerdictLayer(Payload):
    """The judge's decision (design.md section 5 `aiVerdictLayer`)."""

    verdict: Verdict
    risk_mode: RiskMode
    position_multiplier: float = Field(ge=0, le=1.5)
    ai_summary: Text
    layer_checks: LayerChecks = Field(default_factory=LayerChecks)
    judge: Literal["llm", "rules"] = "rules"
    fallback_reason: Text | None = Field(
        default=None, description="Why the LLM verdict was not used, when it was not"
    )
    suppressed: bool = Field(
        default=False, description="True when AUTO_SKIP_AVOID_SIGNALS flags it for notifiers"
    )
    model: Text | None = None
    volatility_metrics: VolatilityMetrics = Field(default_factory=VolatilityMetrics)


def check_plan(judged: Any) -> Any:
    """Refuse a trade plan on the wrong side of the signal's price, or on a NEUTRAL signal.

    Downstream code trusts the sides: the outcomes service measures a LONG's target by the
    first high above it, so a target below entry would count as hit by the first candle (a
    WIN no market gave), and a notifier would print the plan as given. The judge never makes
    one (`build_metrics` drops such a plan); another client's record that carries one is
    dead-lettered. A model validator: one Python call per judged signal.
    """
    d = judged.__dict__
    vol = d["ai_verdict_layer"].volatility_metrics
    stop, target = vol.stop_loss_price, vol.take_profit_price
    if stop is None and target is None:
        return judged
    direction, price = d["direction"], d["price"]
    if direction == "NEUTRAL":
        raise ValueError(
            "a NEUTRAL signal carries no trade plan (stop_loss_price, take_profit_price)"
        )
    sign = 1.0 if direction == "LONG" else -1.0
    if stop is not None and (price - stop) * sign <= 0:
        raise ValueError(
            f"stop_loss_price {stop:g} is not on the losing side of price {price:g} for {direction}"
        )
    if target is not None and (target - price) * sign <= 0:
        raise ValueError(
            f"take_profit_price {target:g} is not on the winning side of price {price:g} "
            f"for {direction}"
        )
    return judged


class SignalJudgedV1(ScoredSignalFields, Event):
    """The product on `perpsignal.signals.judged.v1`: signal + verdict layer + trade plan."""

    topic: ClassVar[str] = Topic.SIGNALS_JUDGED
    type: Literal["signal.judged"] = "signal.judged"
    ai_verdict_layer: VerdictLayer

    _check_plan = model_validator(mode="after")(check_plan)


class PhaseScore(Payload):
    """One MSS phase, 0-100, with its inputs."""

    score: float = Field(ge=0, le=100)
    inputs: dict[str, Scalar] = Field(default_factory=dict)
    missing: tuple[str, ...] = ()


class MssScoredV1(Event):
    """MSS result for an emerging coin on `perpsignal.mss.v1` (key: coin)."""

    topic: ClassVar[str] = Topic.MSS
    type: Literal["mss.scored"] = "mss.scored"
    coin: Ident
    name: str | None = None
    mss: float = Field(ge=0, le=100)
    tier: str
    discovery: PhaseScore
    social_momentum: PhaseScore
    institutional_validation: PhaseScore
    binance_symbol: Ident | None = None
    confidence: float | None = Field(
        default=None,
        ge=0,
        le=100,
        description="Phase-weighted share of sub-scores whose input was present (100 = none "
        "missing; each phase's `missing` names the absent ones)",
    )


class OutcomeEvaluatedV1(Event):
    """One horizon's evaluation of a signal, on `perpsignal.outcomes.v1` (key: signal id)."""

    topic: ClassVar[str] = Topic.OUTCOMES
    type: Literal["outcome.evaluated"] = "outcome.evaluated"
    signal_id: Ident
    direction: Direction
    verdict: Verdict | None = None
    horizon: Literal["1h", "4h", "24h"]
    entry_price: Price
    exit_price: Price
    pnl_pct: float
    result: Literal["WIN", "LOSS", "NEUTRAL"]
    max_favorable_pct: float
    max_adverse_pct: float
    first_hit: Literal["stop", "target", "none"] = "none"

    def partition_key(self) -> bytes:
        """Key by signal id (design.md section 2)."""
        return self.signal_id.encode()


class JudgeRequestV1(Event):
    """A caller-supplied signal to judge, on `perpsignal.judge.requests.v1`."""

    topic: ClassVar[str] = Topic.JUDGE_REQUESTS
    type: Literal["judge.request"] = "judge.request"
    reply_topic: Ident = Topic.JUDGE_REPLIES
    direction: Direction
    score: float | None = Field(default=None, ge=0, le=100)
    entry_price: Price | None = None
    stop_loss_price: Price | None = None
    take_profit_price: Price | None = None
    signal: ScoredSignalFields | None = Field(
        default=None, description="Latest scored context the gateway knows for the symbol"
    )

    def partition_key(self) -> bytes:
        """Key by correlation id (design.md section 2)."""
        return (self.correlation_id or self.event_id).encode()


class JudgeReplyV1(Event):
    """The judge's answer to a `JudgeRequestV1` (same correlation id)."""

    topic: ClassVar[str] = Topic.JUDGE_REPLIES
    type: Literal["judge.reply"] = "judge.reply"
    ok: bool = True
    error: Text | None = None
    judged: SignalJudgedV1 | None = None

    def partition_key(self) -> bytes:
        """Key by correlation id (design.md section 2)."""
        return (self.correlation_id or self.event_id).encode()
