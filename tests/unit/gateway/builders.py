"""Event builders for gateway tests (explicit defaults, no randomness).

Judged signals come from the real producers (tests/producers.py: the scorer's engine and
the rule judge), so factors, inputs, verdict layer, plan and SMC are what the gateway
really reads off the bus. The other events are the ingestor's and scorer's shapes.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from perpsignal_common.events.base import deterministic_id
from perpsignal_common.events.market import (
    FundingRateV1,
    LiquidationOrderV1,
    ListingDetectedV1,
    OpenInterestV1,
)
from perpsignal_common.events.signals import (
    FactorScore,
    JudgeReplyV1,
    MssScoredV1,
    PhaseScore,
    SignalJudgedV1,
)
from tests.producers import real_judged

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def factors() -> tuple[FactorScore, ...]:
    """The factors of the default `signal()`: the scorer's own (all eight, typed inputs)."""
    return signal().factors


def signal(
    symbol: str = "BTCUSDT",
    *,
    score: float = 72.0,
    direction: str = "LONG",
    verdict: str | None = None,
    at: datetime = T0,
    price: float = 43000.0,
) -> SignalJudgedV1:
    """A real judged signal: the rule judge's `verdict` (default CONFIRM, WAIT for NEUTRAL)
    in `direction`, scored for `symbol` at `price`, the one whose score is nearest `score`.

    Re-keyed afterwards: `at` (observed time) and the ids, and `score` itself, which the
    gateway tests use as a label and an order (which version is newest, which frame came
    first, which side of a min-score filter) and the gateway only stores, sorts and filters.
    """
    real = real_judged(
        verdict or ("WAIT" if direction == "NEUTRAL" else "CONFIRM"),
        direction,
        direction != "NEUTRAL",
        symbol=symbol,
        price=price,
        score_near=score,
    )
    return real.model_copy(
        update={
            "event_id": deterministic_id("test", symbol, at, score),
            "observed_at": at,
            "signal_id": deterministic_id("sig", symbol, at),
            "score": score,
        }
    )


def funding(symbol: str = "BTCUSDT", *, at: datetime = T0, rate: float = 0.0001) -> FundingRateV1:
    return FundingRateV1(
        event_id=deterministic_id("f", symbol, at),
        source="binance",
        symbol=symbol,
        observed_at=at,
        rate=rate,
        mark_price=43010.0,
    )


def open_interest(symbol: str = "BTCUSDT", *, at: datetime = T0) -> OpenInterestV1:
    return OpenInterestV1(
        event_id=deterministic_id("oi", symbol, at),
        source="binance",
        symbol=symbol,
        observed_at=at,
        open_interest=81234.5,
    )


def liquidation(
    symbol: str = "BTCUSDT",
    *,
    side: str = "LONG",
    notional: float = 1000.0,
    at: datetime = T0,
    n: int = 0,
) -> LiquidationOrderV1:
    return LiquidationOrderV1(
        event_id=deterministic_id("liq", symbol, at, n),
        source="binance",
        symbol=symbol,
        observed_at=at + timedelta(seconds=n),
        liquidated_side=side,  # type: ignore[arg-type]
        price=43000.0,
        quantity=notional / 43000.0,
        notional_usd=notional,
    )


def listing(symbol: str = "NEWUSDT", *, onboard: datetime = T0) -> ListingDetectedV1:
    return ListingDetectedV1(
        event_id=deterministic_id("lst", symbol),
        source="ingestor",
        symbol=symbol,
        observed_at=onboard,
        base_asset=symbol.removesuffix("USDT"),
        quote_asset="USDT",
        onboard_at=onboard,
        detected_at=onboard + timedelta(seconds=30),
        detection_latency_s=30.0,
    )


def mss(coin: str = "NEW", *, score: float = 71.0, tier: str = "STRONG") -> MssScoredV1:
    return MssScoredV1(
        event_id=deterministic_id("mss", coin),
        source="scorer",
        symbol=coin,
        observed_at=T0,
        coin=coin,
        mss=score,
        tier=tier,
        discovery=PhaseScore(score=80),
        social_momentum=PhaseScore(score=65),
        institutional_validation=PhaseScore(score=60),
    )


def reply_for(correlation_id: str, judged: SignalJudgedV1) -> JudgeReplyV1:
    return JudgeReplyV1(
        event_id=deterministic_id(correlation_id, "reply"),
        source="judge",
        symbol=judged.symbol,
        observed_at=judged.observed_at,
        correlation_id=correlation_id,
        judged=judged,
    )
