"""Builders of the notifier's input events (explicit defaults, no randomness).

`judged(...)` starts from a judged signal the real producers made (tests/producers.py: the
scorer's engine and the rule judge), so the factors, verdict layer, volatility metrics,
trade plan and SMC are what the judge really publishes; see its docstring for the few
values a test may still set.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from perpsignal_common.events.base import deterministic_id
from perpsignal_common.events.market import ListingDetectedV1
from perpsignal_common.events.signals import (
    LayerChecks,
    MssScoredV1,
    PhaseScore,
    SignalJudgedV1,
)
from tests.producers import real_judged

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def judged(
    symbol: str = "BTCUSDT",
    *,
    direction: str = "LONG",
    score: float | None = None,
    confidence: float | None = None,
    price: float = 65000.0,
    verdict: str | None = None,
    risk_mode: str | None = None,
    suppressed: bool | None = None,
    minutes: int = 0,
    plan: bool = True,
    summary: str | None = None,
    agreements: tuple[str, ...] | None = None,
    conflicts: tuple[str, ...] | None = None,
    **extra: Any,
) -> SignalJudgedV1:
    """Return a real judged signal for `symbol` at `price`, observed `minutes` after T0.

    The rule judge's `verdict` (default CONFIRM, WAIT for NEUTRAL) in `direction`, with a
    trade plan unless `plan=False`, whose score is nearest `score` (default: the strongest
    real CONFIRM, ~78). `symbol` and `price` are fed to the scorer. Re-keyed afterwards:
    the identity fields (observed time, event and signal ids) and these, which tests set
    on purpose and which would otherwise not be exercised:
    - `score` / `confidence`: the exact headline numbers a filter test puts on either side
      of the notifier's threshold (the real signal nearest `score` is the one re-scored);
    - `risk_mode` / `suppressed`: a verdict layer the rule table never emits (DOWNSIZE in
      AVOID, a suppressed CONFIRM) but the LLM judge may, which the notifier must hold back;
    - `summary` / `agreements` / `conflicts`: hostile or oversized judge text (the LLM's
      output is free text) for the renderer's escaping and length limit.
    """
    unknown = set(extra) - set(SignalJudgedV1.model_fields)
    assert not unknown, f"not fields of a judged signal: {unknown}"
    verdict = verdict or ("WAIT" if direction == "NEUTRAL" else "CONFIRM")
    want = score if score is not None else (50.0 if direction == "NEUTRAL" else 78.0)
    near = want if direction != "SHORT" or score is not None else 100 - want
    base = real_judged(
        verdict,
        direction,
        plan and direction != "NEUTRAL",
        symbol=symbol,
        price=price,
        score_near=near,
    )
    layer = base.ai_verdict_layer
    layer_update: dict[str, Any] = {}
    if risk_mode is not None:
        layer_update["risk_mode"] = risk_mode
    if suppressed is not None:
        layer_update["suppressed"] = suppressed
    if summary is not None:
        layer_update["ai_summary"] = summary
    if agreements is not None or conflicts is not None:
        checks = layer.layer_checks
        layer_update["layer_checks"] = LayerChecks(
            agreements=checks.agreements if agreements is None else agreements,
            conflicts=checks.conflicts if conflicts is None else conflicts,
        )
    observed = T0 + timedelta(minutes=minutes)
    update: dict[str, Any] = {
        "event_id": deterministic_id("test", symbol, observed.isoformat(), direction, score),
        "observed_at": observed,
        "signal_id": f"sig-{symbol}-{minutes}",
        "ai_verdict_layer": layer.model_copy(update=layer_update),
        **extra,
    }
    if score is not None:
        update["score"] = score
    if confidence is not None:
        update["confidence"] = confidence
    return base.model_copy(update=update)


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
