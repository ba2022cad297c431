"""API models: camelCase JSON, built from the event contracts once per event (not per request)."""

from __future__ import annotations

from datetime import datetime
from types import UnionType
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.alias_generators import to_camel

from perpsignal_common.events.signals import (
    FactorScore,
    RiskMode,
    SignalJudgedV1,
    Verdict,
    VolatilityClass,
)

Scalar = float | int | str | bool | None


class ApiModel(BaseModel):
    """Base of every API body: camelCase on the wire, snake_case accepted too."""

    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="ignore")


class ErrorInfo(ApiModel):
    code: str
    message: str
    details: Any = None


class ErrorBody(ApiModel):
    error: ErrorInfo


class TopFactor(ApiModel):
    name: str
    score: float
    weight: float
    contribution: float


class FactorOut(ApiModel):
    name: str
    score: float
    weight: float
    contribution: float
    status: str
    age_s: float | None = None
    inputs: dict[str, Scalar] = Field(default_factory=dict)
    reason: str | None = None


class LayerChecksOut(ApiModel):
    agreements: list[str] = Field(default_factory=list)
    conflicts: list[str] = Field(default_factory=list)


class VolatilityOut(ApiModel):
    atr: float | None = None
    atr_pct: float | None = None
    # the event's closed sets, published as enums: a client can branch on every value
    volatility_class: VolatilityClass | None = None
    recommended_position_multiplier: float | None = None
    stop_loss_price: float | None = None
    take_profit_price: float | None = None
    risk_reward: float | None = None
    trade_plan_summary: str | None = None


class VerdictLayerOut(ApiModel):
    verdict: Verdict
    risk_mode: RiskMode
    position_multiplier: float
    ai_summary: str
    layer_checks: LayerChecksOut
    judge: str
    fallback_reason: str | None = None
    suppressed: bool = False
    model: str | None = None
    volatility_metrics: VolatilityOut


class SmcOut(ApiModel):
    bias: str = "NEUTRAL"
    by_timeframe: dict[str, str] = Field(default_factory=dict)
    last_event: str | None = None
    details: dict[str, Scalar] = Field(default_factory=dict)


class SignalDebug(ApiModel):
    factors: list[FactorOut]
    raw_metrics: dict[str, Scalar]
    missing_factors: list[str]
    stale_factors: list[str]
    candles_used: int


class SignalOut(ApiModel):
    """A judged signal as the product surface shows it (design.md section 5)."""

    symbol: str
    signal: Literal["LONG", "SHORT", "NEUTRAL"]
    score: float
    confidence: float
    top_factors: list[TopFactor]
    price: float
    timestamp: datetime
    signal_id: str
    timeframe: str
    missing_factors: list[str] = Field(default_factory=list)
    stale_factors: list[str] = Field(default_factory=list)
    smc: SmcOut | None = None
    trigger: str = "candle"
    ai_verdict_layer: VerdictLayerOut
    debug: SignalDebug | None = Field(
        default=None, description="Only with debug=true", exclude_if=lambda v: v is None
    )


class SignalList(ApiModel):
    count: int
    signals: list[SignalOut]


class SmcResponse(ApiModel):
    symbol: str
    timestamp: datetime
    signal: str
    smc: SmcOut


class MarketSource(ApiModel):
    type: str
    source: str
    venue: str | None = None
    observed_at: datetime
    age_s: float
    data: dict[str, Any]


class MarketOut(ApiModel):
    symbol: str
    as_of: datetime
    price: float | None = None
    sources: list[MarketSource]
    fear_greed: MarketSource | None = None


class PhaseOut(ApiModel):
    score: float
    inputs: dict[str, Scalar] = Field(default_factory=dict)
    missing: list[str] = Field(default_factory=list)


class MssOut(ApiModel):
    coin: str
    name: str | None = None
    mss: float
    tier: str
    discovery: PhaseOut
    social_momentum: PhaseOut
    institutional_validation: PhaseOut
    binance_symbol: str | None = None
    timestamp: datetime


class MssList(ApiModel):
    count: int
    results: list[MssOut]


class ListingOut(ApiModel):
    symbol: str
    venue: str
    base_asset: str
    quote_asset: str
    onboard_at: datetime
    detected_at: datetime
    detection_latency_s: float
    last_price: float | None = None
    price_change_pct_24h: float | None = None
    quote_volume_24h: float | None = None


class ListingList(ApiModel):
    count: int
    listings: list[ListingOut]


class LiquidationOut(ApiModel):
    symbol: str
    venue: str
    liquidated_side: str
    price: float
    quantity: float
    notional_usd: float
    timestamp: datetime


class LiquidationList(ApiModel):
    symbol: str
    count: int
    long_liquidations_usd: float
    short_liquidations_usd: float
    orders: list[LiquidationOut]


class TrackingAccepted(ApiModel):
    symbol: str
    status: Literal["tracking_requested"] = "tracking_requested"
    retry_after_s: int
    message: str


class Health(ApiModel):
    status: str


class Readiness(ApiModel):
    status: str
    caught_up: bool
    records_read: int
    lag: int
    started_from: Literal["snapshot", "topics"] = Field(
        default="topics",
        description="Where the read model started: the snapshot topic (then the topics from "
        "its offsets) or every retained event of the topics",
    )
    degraded_sources: list[str] = Field(
        default_factory=list,
        description="Data sources that are degraded or down: the gateway still serves (200), "
        "from older data; details in /health/services",
    )


def signal_out(event: SignalJudgedV1, *, debug: bool = False) -> SignalOut:
    """Build the API view of a judged signal."""
    by_name: dict[str, FactorScore] = {f.name: f for f in event.factors}
    top = [
        TopFactor(name=n, score=f.score, weight=f.weight, contribution=f.contribution)
        for n in event.top_factors[:3]
        if (f := by_name.get(n)) is not None
    ]
    if not top:
        # a record without its own list (older, or a caller's): the factors that pull, as
        # the scorer ranks them; a factor contributing nothing is no "top factor"
        pulling = [f for f in event.factors if f.contribution]
        ranked = sorted(pulling, key=lambda f: abs(f.contribution), reverse=True)[:3]
        top = [
            TopFactor(name=f.name, score=f.score, weight=f.weight, contribution=f.contribution)
            for f in ranked
        ]
    layer = event.ai_verdict_layer
    dbg = None
    if debug:
        dbg = SignalDebug(
            factors=[FactorOut.model_validate(f.model_dump()) for f in event.factors],
            raw_metrics={f"{f.name}.{k}": v for f in event.factors for k, v in f.inputs.items()},
            missing_factors=list(event.missing_factors),
            stale_factors=list(event.stale_factors),
            candles_used=len(event.candles),
        )
    return SignalOut(
        symbol=event.symbol,
        signal=event.direction,
        score=event.score,
        confidence=event.confidence,
        top_factors=top,
        price=event.price,
        timestamp=event.observed_at,
        signal_id=event.signal_id,
        timeframe=event.timeframe,
        missing_factors=list(event.missing_factors),
        stale_factors=list(event.stale_factors),
        smc=SmcOut.model_validate(event.smc.model_dump()) if event.smc else None,
        trigger=event.trigger,
        ai_verdict_layer=VerdictLayerOut.model_validate(layer.model_dump()),
        debug=dbg,
    )


# analytics answers ------------------------------------------------------------------------------

_CAMEL: dict[type[BaseModel], type[BaseModel]] = {}


def served_as(model: type[BaseModel]) -> type[BaseModel]:
    """Return `model` (snake_case, e.g. perpsignal_common.db.analytics) as the gateway serves it.

    The analytics routes answer `camelize(model.model_dump(mode="json"))` and had no response
    model, so OpenAPI (and `/invoke`'s InvokeResult, which copies each route's documented answer)
    said "any shape". This mirror has the same fields, types and descriptions, camelCase names,
    nested models mirrored too, and refuses a field it does not document (`additionalProperties:
    false`), so a contract test catches a field served but not documented.
    """
    known = _CAMEL.get(model)
    if known is not None:
        return known
    fields: dict[str, Any] = {}
    for name, info in model.model_fields.items():
        default: Any = ... if info.is_required() else info.default
        fields[name] = (_mirror_type(info.annotation), Field(default, description=info.description))
    mirror: type[BaseModel] = create_model(
        model.__name__,
        __config__=ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid"),
        __doc__=model.__doc__,
        __module__=__name__,
        **fields,
    )
    _CAMEL[model] = mirror
    return mirror


def _mirror_type(tp: Any) -> Any:
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return served_as(tp)
    origin = get_origin(tp)
    if origin is None:
        return tp
    args = tuple(_mirror_type(t) for t in get_args(tp))
    if origin in (Union, UnionType):
        return Union[args]  # noqa: UP007 (built from a tuple)
    return origin[args]
