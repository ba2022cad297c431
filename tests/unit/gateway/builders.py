"""Readable event builders for gateway tests (explicit defaults, no randomness)."""

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
    SmcSummary,
    VerdictLayer,
    VolatilityMetrics,
)

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def factors() -> tuple[FactorScore, ...]:
    # contributions = weight/100 * (score - 50)
    rows = [
        ("funding", 80.0, 20.0, {"rate": 0.0003}),
        ("momentum", 30.0, 25.0, {"rsi": 71.5}),
        ("oi_trend", 60.0, 15.0, {"oi_change_pct": 4.2}),
        ("social", 50.0, 10.0, {}),
    ]
    return tuple(
        FactorScore(
            name=name,  # type: ignore[arg-type]
            score=score,
            weight=weight,
            contribution=weight / 100 * (score - 50),
            inputs=inputs,
        )
        for name, score, weight, inputs in rows
    )


def signal(
    symbol: str = "BTCUSDT",
    *,
    score: float = 72.0,
    direction: str = "LONG",
    verdict: str = "CONFIRM",
    at: datetime = T0,
    price: float = 43000.0,
) -> SignalJudgedV1:
    return SignalJudgedV1(
        event_id=deterministic_id("test", symbol, at, score),
        source="judge",
        symbol=symbol,
        observed_at=at,
        signal_id=deterministic_id("sig", symbol, at),
        timeframe="1h",
        direction=direction,  # type: ignore[arg-type]
        score=score,
        confidence=64.0,
        price=price,
        factors=factors(),
        top_factors=("momentum", "funding", "oi_trend"),
        smc=SmcSummary(
            bias="BULLISH",
            by_timeframe={"1h": "BULLISH", "4h": "NEUTRAL"},
            last_event="BOS up @ 1h",
        ),
        ai_verdict_layer=VerdictLayer(
            verdict=verdict,  # type: ignore[arg-type]
            risk_mode="NORMAL",
            position_multiplier=1.0,
            ai_summary="trend and funding agree",
            volatility_metrics=VolatilityMetrics(
                atr=500.0,
                atr_pct=1.16,
                volatility_class="NORMAL",
                stop_loss_price=42250.0,
                take_profit_price=44500.0,
                risk_reward=2.0,
            ),
        ),
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
