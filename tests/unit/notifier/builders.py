"""Readable builders of the notifier's input events (explicit defaults, no randomness)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from perpsignal_common.events.base import deterministic_id
from perpsignal_common.events.market import ListingDetectedV1
from perpsignal_common.events.signals import (
    FactorScore,
    LayerChecks,
    MssScoredV1,
    PhaseScore,
    SignalJudgedV1,
    VerdictLayer,
    VolatilityMetrics,
)

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def judged(
    symbol: str = "BTCUSDT",
    *,
    direction: str = "LONG",
    score: float = 78.0,
    confidence: float = 72.0,
    price: float = 65000.0,
    verdict: str = "CONFIRM",
    risk_mode: str = "NORMAL",
    suppressed: bool = False,
    minutes: int = 0,
    summary: str = "Funding and momentum agree; open interest is rising.",
    agreements: tuple[str, ...] = ("funding supports LONG", "momentum supports LONG"),
    conflicts: tuple[str, ...] = ("social sentiment is bearish",),
    stop: float | None = 63700.0,
    target: float | None = 67600.0,
    risk_reward: float | None = 2.0,
    **extra: Any,
) -> SignalJudgedV1:
    """Return a judged signal observed `minutes` after T0."""
    observed = T0 + timedelta(minutes=minutes)
    return SignalJudgedV1(
        event_id=deterministic_id("test", symbol, observed.isoformat(), direction, score),
        source="judge",
        symbol=symbol,
        observed_at=observed,
        signal_id=f"sig-{symbol}-{minutes}",
        timeframe="1h",
        direction=direction,  # type: ignore[arg-type]
        score=score,
        confidence=confidence,
        price=price,
        factors=(
            FactorScore(name="funding", score=81, weight=20, contribution=6.2),
            FactorScore(name="momentum", score=74, weight=20, contribution=4.8),
            FactorScore(name="liquidations", score=69, weight=15, contribution=2.85),
        ),
        top_factors=("funding", "momentum", "liquidations"),
        ai_verdict_layer=VerdictLayer(
            verdict=verdict,  # type: ignore[arg-type]
            risk_mode=risk_mode,  # type: ignore[arg-type]
            position_multiplier=0.8,
            ai_summary=summary,
            layer_checks=LayerChecks(agreements=agreements, conflicts=conflicts),
            suppressed=suppressed,
            volatility_metrics=VolatilityMetrics(
                atr=812.5,
                atr_pct=1.25,
                volatility_class="NORMAL",
                recommended_position_multiplier=1.0,
                stop_loss_price=stop,
                take_profit_price=target,
                risk_reward=risk_reward,
                trade_plan_summary="Enter near 65000, stop 63700, target 67600.",
            ),
        ),
        **extra,
    )


def mss(
    coin: str = "PEPE", *, score: float = 82.0, tier: str = "A", minutes: int = 0
) -> MssScoredV1:
    """Return an MSS result with distinct phase scores."""
    observed = T0 + timedelta(minutes=minutes)
    return MssScoredV1(
        event_id=deterministic_id("test-mss", coin, observed.isoformat()),
        source="scorer",
        symbol=coin,
        observed_at=observed,
        coin=coin,
        name="Pepe <Frog> & Co",
        mss=score,
        tier=tier,
        discovery=PhaseScore(score=70.5),
        social_momentum=PhaseScore(score=91.0, missing=("galaxy_score",)),
        institutional_validation=PhaseScore(score=64.25),
        binance_symbol=f"{coin}USDT",
    )


def listing(symbol: str = "NEWUSDT") -> ListingDetectedV1:
    """Return a listing detected 42 s after its onboard time."""
    onboard = datetime(2026, 11, 21, 8, 30, tzinfo=UTC)
    return ListingDetectedV1(
        event_id=deterministic_id("test-listing", symbol),
        source="ingestor",
        symbol=symbol,
        observed_at=onboard,
        base_asset=symbol.removesuffix("USDT"),
        quote_asset="USDT",
        onboard_at=onboard,
        detected_at=onboard + timedelta(seconds=42),
        detection_latency_s=42.0,
        last_price=0.01234,
        price_change_pct_24h=12.5,
        quote_volume_24h=3_400_000.0,
    )
