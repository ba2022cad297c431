"""Outcomes service settings (env: flat shared names plus `OUTCOMES_*`)."""

from __future__ import annotations

from datetime import timedelta
from typing import Literal

from pydantic import Field, field_validator

from perpsignal_common.events.market import TIMEFRAME_SECONDS
from perpsignal_common.settings import DatabaseSettings, ServiceSettings
from perpsignal_domain.outcomes.evaluate import HORIZON_SECONDS, MAX_COST_BP

__all__ = ["HORIZON_SECONDS", "MAX_DURATION_S", "OutcomesSettings"]

# the longest wait any duration setting may ask for: ten years is "never" for every one of
# them, while a larger value overflowed the datetime arithmetic on every batch (a give-up time
# of 1e15 s stalled the evaluator; a retention or funding wait of 1e11 s stopped the pruning)
MAX_DURATION_S = 10 * 365 * 86_400.0
# a horizon times this scale stays a few centuries long (an int4 of seconds in the database)
MAX_TIME_SCALE = 1000.0


class OutcomesSettings(ServiceSettings):
    """What to store, which horizons to track and how the evaluator behaves."""

    service_name: str = "outcomes"
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)

    outcomes_horizons: str = Field(
        default="1h,4h,24h", description="Comma-separated horizons to evaluate (1h, 4h, 24h)"
    )
    outcomes_time_scale: float = Field(
        default=1.0,
        gt=0,
        le=MAX_TIME_SCALE,
        description="Multiply every horizon's seconds (end-to-end tests)",
    )
    outcomes_neutral_band_pct: float = Field(
        default=0.1, ge=0, description="|P&L %| at or below this is NEUTRAL"
    )
    outcomes_taker_fee_bp: float = Field(
        default=5.0,
        ge=0,
        le=MAX_COST_BP,
        description="Taker fee per side, bp of notional, for net P&L (Binance USD-M base tier)",
    )
    outcomes_slippage_bp: float = Field(
        default=2.0,
        ge=0,
        le=MAX_COST_BP,
        description="Slippage per side, bp of notional, for net P&L",
    )
    outcomes_funding_venue: str = Field(
        default="binance",
        description="The venue assumed for a signal, and candles, of unknown venue (stored "
        "before outcomes_0006): its path and settled funding are read from this venue's; "
        "any other signal pays its own price venue's funding (unknown where none is stored)",
    )
    outcomes_funding_wait_s: float = Field(
        default=86_400.0,
        ge=0,
        le=MAX_DURATION_S,
        description="How long after a horizon's due time its funding may still be filled in "
        "as missing settlements arrive; after that it stays unknown (NULL), never 0",
    )
    outcomes_mss_threshold: float = Field(default=60.0, description="Store MSS results >= this")
    outcomes_candle_timeframes: str = Field(
        default="1m,5m,15m,1h", description="Closed-candle timeframes kept for evaluation"
    )
    outcomes_batch_size: int = Field(default=200, ge=1, description="Due rows claimed per batch")
    outcomes_poll_interval_s: float = Field(default=1.0, gt=0)
    outcomes_settle_s: float = Field(
        default=30.0,
        ge=0,
        le=MAX_DURATION_S,
        description="Wait after the due time for the last candle to arrive",
    )
    outcomes_retry_s: float = Field(
        default=60.0,
        gt=0,
        le=MAX_DURATION_S,
        description="Retry delay (wall time) of a row whose prices are missing; also how long "
        "a row stays leased to the replica fetching its klines",
    )
    outcomes_give_up_after_s: float = Field(
        default=3 * 86_400.0,
        gt=0,
        le=MAX_DURATION_S,
        description="Mark a row failed this long after its due time",
    )
    outcomes_candle_retention_s: float = Field(
        default=5 * 86_400.0,
        gt=0,
        le=MAX_DURATION_S,
        description="Prune stored candles older than this",
    )
    outcomes_clock: Literal["wall", "event"] = Field(
        default="wall",
        description="wall: a horizon is due by this machine's clock; event: by market time, "
        "the latest candle close stored (replays and `perpsignal demo`)",
    )
    outcomes_klines_fallback: bool = Field(
        default=True, description="Fetch missing candles from the exchange's klines endpoint"
    )
    outcomes_binance_base_url: str = "https://fapi.binance.com"
    outcomes_klines_timeframe: str = Field(
        default="5m", description="Timeframe requested from the klines endpoint"
    )

    @field_validator("outcomes_horizons")
    @classmethod
    def _known_horizons(cls, value: str) -> str:
        names = [h.strip() for h in value.split(",") if h.strip()]
        unknown = [h for h in names if h not in HORIZON_SECONDS]
        if unknown or not names:
            raise ValueError(f"OUTCOMES_HORIZONS: unknown {unknown}; use {list(HORIZON_SECONDS)}")
        return ",".join(names)

    @field_validator("outcomes_candle_timeframes")
    @classmethod
    def _known_timeframes(cls, value: str) -> str:
        names = [t.strip() for t in value.split(",") if t.strip()]
        unknown = [t for t in names if t not in TIMEFRAME_SECONDS]
        if unknown or not names:
            raise ValueError(f"unknown timeframe(s) {unknown}; use {list(TIMEFRAME_SECONDS)}")
        return ",".join(names)

    @field_validator("outcomes_klines_timeframe")
    @classmethod
    def _one_timeframe(cls, value: str) -> str:
        # one timeframe: the klines are requested, stored and read as that one
        name = value.strip()
        if name not in TIMEFRAME_SECONDS:
            raise ValueError(
                f"{value!r} is not one timeframe; use one of {list(TIMEFRAME_SECONDS)}"
            )
        return name

    def horizons(self) -> dict[str, int]:
        """Return horizon label -> seconds (after the time scale), shortest first."""
        return {
            h: max(1, round(HORIZON_SECONDS[h] * self.outcomes_time_scale))
            for h in sorted(self.outcomes_horizons.split(","), key=HORIZON_SECONDS.__getitem__)
        }

    def candle_timeframes(self) -> dict[str, timedelta]:
        """Return the stored timeframes, finest first."""
        names = self.outcomes_candle_timeframes.split(",")
        names.sort(key=TIMEFRAME_SECONDS.__getitem__)
        return {t: timedelta(seconds=TIMEFRAME_SECONDS[t]) for t in names}
