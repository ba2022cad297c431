"""Each factor's inputs: the typed contract between the scorer and everything reading a signal.

A signal's `FactorScore.inputs` is, on the wire, the JSON object of one of these models (the
keys the scorer set; unchanged from the untyped days). The scorer builds its inputs with
`wire(Model)` builders that carry the model's keyword signature (`extra="forbid"` makes mypy
reject a misspelt key) and readers go through `factor_inputs(factor, Model)`, which returns
the model, so a rename is a type error on both sides instead of a check that silently never
fires.

Every field is optional: a stale factor carries only the inputs it still had, a missing one
none, and readers treat an absent value as absent (never as 0). The JSON Schemas are
published under schemas/factors/ (`make schemas`).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, ClassVar, ParamSpec, TypeVar, cast

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from perpsignal_common.events.signals import FactorScore, Scalar


class FactorInputs(BaseModel):
    """Base of the per-factor input models (frozen; unknown keys rejected when built)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    factor: ClassVar[str]


class LiquidationsInputs(FactorInputs):
    """Liquidated notional in the window before the signal (USD)."""

    factor: ClassVar[str] = "liquidations"
    long_liquidations_usd: float | None = Field(default=None, description="Longs liquidated")
    short_liquidations_usd: float | None = Field(default=None, description="Shorts liquidated")
    window_s: float | None = Field(default=None, description="Window length in seconds")


class FundingInputs(FactorInputs):
    """Funding rate, normalised to an 8 h interval (a fraction: 0.0001 = 0.01 % per 8 h)."""

    factor: ClassVar[str] = "funding"
    rate_8h: float | None = Field(default=None, description="Latest rate per 8 h")
    previous_rate_8h: float | None = Field(
        default=None, description="Rate one change window earlier (absent: level only)"
    )
    rate_rank: float | None = Field(
        default=None,
        description="Rate's place in the symbol's own recent rates, -1 (lowest) .. 1 (highest); "
        "0 = their median (absent: too little history)",
    )


class MomentumInputs(FactorInputs):
    """Returns over the configured horizons (`return_<n>b`: n primary bars), RSI, EMA gap,
    and the taker flow confirming (or not) the move."""

    # further horizons configured in the engine appear as more `return_<n>b` keys
    model_config = ConfigDict(frozen=True, extra="allow")
    factor: ClassVar[str] = "momentum"
    return_1b: float | None = Field(default=None, description="Return over 1 bar")
    return_4b: float | None = Field(default=None, description="Return over 4 bars")
    return_16b: float | None = Field(default=None, description="Return over 16 bars")
    rsi: float | None = Field(default=None, description="RSI (Wilder) of the primary candles")
    ema_gap: float | None = Field(default=None, description="Fast EMA / slow EMA - 1")
    taker_imbalance: float | None = Field(
        default=None,
        description="Newest taker flow (buy - sell) / (buy + sell), -1..1 (absent: no fresh "
        "taker flow, or too little history to rank it)",
    )
    taker_flow_rank: float | None = Field(
        default=None,
        description="That imbalance's place in the symbol's own recent imbalances, -1..1 "
        "(0 = their median): the part the factor scores",
    )


class LongShortInputs(FactorInputs):
    """Share of accounts long (0-1), global and among top traders, and its recent change."""

    factor: ClassVar[str] = "long_short"
    global_long_share: float | None = Field(default=None, description="Global accounts long")
    top_account_long_share: float | None = Field(
        default=None, description="Top-trader accounts long"
    )
    global_share_change: float | None = Field(
        default=None, description="Global long share now minus one change window earlier"
    )
    global_share_rank: float | None = Field(
        default=None,
        description="Global long share's place in the symbol's own recent shares, -1..1 "
        "(0 = their median; absent: too little history)",
    )
    top_account_share_rank: float | None = Field(
        default=None, description="The same for the top-trader account share"
    )

    @property
    def long_short_ratio(self) -> float | None:
        """Accounts long per account short (global, else top traders); inf when all long."""
        share = self.global_long_share
        if share is None:
            share = self.top_account_long_share
        if share is None:
            return None
        return float("inf") if share >= 1.0 else share / (1.0 - share)


class SmartMoneyInputs(FactorInputs):
    """Combined SMC structure bias (-1..1), top-trader position share, bias per timeframe."""

    factor: ClassVar[str] = "smart_money"
    smc_bias: float | None = Field(default=None, description="Weighted structure bias")
    top_position_long_share: float | None = Field(
        default=None, description="Top traders' positions long (0-1)"
    )
    top_position_rank: float | None = Field(
        default=None,
        description="That share's place in the symbol's own recent shares, -1..1 (0 = median)",
    )
    smc_1m: int | None = None
    smc_5m: int | None = None
    smc_15m: int | None = None
    smc_30m: int | None = None
    smc_1h: int | None = None
    smc_2h: int | None = None
    smc_4h: int | None = None
    smc_8h: int | None = None
    smc_1d: int | None = None


class OiTrendInputs(FactorInputs):
    """Open interest and its change against the price change over the window."""

    factor: ClassVar[str] = "oi_trend"
    open_interest: float | None = Field(default=None, description="Latest open interest")
    oi_change: float | None = Field(default=None, description="Relative OI change")
    price_change: float | None = Field(default=None, description="Relative price change")
    window_s: float | None = Field(default=None, description="Window length in seconds")


class SocialInputs(FactorInputs):
    """Social metrics (LunarCrush style)."""

    factor: ClassVar[str] = "social"
    sentiment: float | None = Field(default=None, description="Sentiment 0-100")
    galaxy_score: float | None = Field(default=None, description="Galaxy Score 0-100")
    social_volume_change_pct: float | None = Field(
        default=None, description="Social volume change in %"
    )
    sentiment_rank: float | None = Field(
        default=None,
        description="Sentiment's place in the coin's own recent readings, -1..1 (0 = median)",
    )
    galaxy_score_rank: float | None = Field(
        default=None, description="The same for the galaxy score"
    )


class FearGreedInputs(FactorInputs):
    """The market-wide Fear & Greed index (0-100)."""

    factor: ClassVar[str] = "fear_greed"
    fear_greed: float | None = Field(default=None, description="Index value 0-100")
    neutral: float | None = Field(
        default=None, description="Median of the readings before it (the factor's neutral)"
    )


FACTOR_INPUTS: dict[str, type[FactorInputs]] = {
    m.factor: m
    for m in (
        LiquidationsInputs,
        FundingInputs,
        MomentumInputs,
        LongShortInputs,
        SmartMoneyInputs,
        OiTrendInputs,
        SocialInputs,
        FearGreedInputs,
    )
}

InputsT = TypeVar("InputsT", bound=FactorInputs)
P = ParamSpec("P")


def wire(model: Callable[P, FactorInputs]) -> Callable[P, dict[str, Scalar]]:
    """Return a builder of `model`'s wire form (the `inputs` dict) with the model's own
    keyword signature: mypy rejects a key the model lacks, and at run time it is just the
    keyword dict (no pydantic construction on the scorer's per-bar path; the tests validate
    what the scorer emits against the models)."""

    def build(*_: P.args, **values: P.kwargs) -> dict[str, Scalar]:
        return cast("dict[str, Scalar]", values)  # the keyword dict itself, fresh per call

    build.__name__ = build.__qualname__ = f"{model.__name__}.wire"
    return build


# the scorer's builders, one per factor (`funding_inputs(rate_8h=..., previous_rate_8h=...)`)
liquidations_inputs = wire(LiquidationsInputs)
funding_inputs = wire(FundingInputs)
momentum_inputs = wire(MomentumInputs)
long_short_inputs = wire(LongShortInputs)
smart_money_inputs = wire(SmartMoneyInputs)
oi_trend_inputs = wire(OiTrendInputs)
social_inputs = wire(SocialInputs)
fear_greed_inputs = wire(FearGreedInputs)


def factor_inputs(factor: FactorScore | None, model: type[InputsT]) -> InputsT | None:
    """Return the typed inputs of a usable (`ok`) factor, or None when absent/missing/stale.

    Keys the model does not know (a newer scorer) are ignored, so readers stay compatible.
    """
    if factor is None or factor.status != "ok" or not factor.inputs:
        return None
    if FACTOR_INPUTS.get(factor.name) is not model:
        raise TypeError(f"{model.__name__} are not the inputs of factor {factor.name!r}")
    inputs = factor.inputs
    try:
        key = (model, *inputs.items())
        hit = _SEEN.get(key)
    except TypeError:  # an unhashable value (a caller's signal): validate, do not cache
        key, hit = None, None
    if hit is not None:
        return hit  # type: ignore[return-value]  # keyed by model: an InputsT
    known = _KNOWN.get(model)
    if known is None:
        known = _KNOWN[model] = (
            None if model.model_config.get("extra") == "allow" else frozenset(model.model_fields)
        )
    if known is not None and not known.issuperset(inputs):
        inputs = {k: v for k, v in inputs.items() if k in known}
    validated: InputsT = model.__pydantic_validator__.validate_python(inputs)
    if key is not None:
        if len(_SEEN) >= 4096:
            _SEEN.clear()
        _SEEN[key] = validated
    return validated


# per model: the keys it accepts (None: any), computed once (the judge reads two per signal)
_KNOWN: dict[type[FactorInputs], frozenset[str] | None] = {}
# recently read inputs (frozen models): a symbol's funding and positioning inputs repeat
# from signal to signal until the next reading, so most reads are one dict lookup
_SEEN: dict[tuple[object, ...], FactorInputs] = {}
