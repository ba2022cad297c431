"""Scorer settings (`SCORER_*` env vars) and their mapping to the pure engine config."""

from __future__ import annotations

from typing import Self

from pydantic import Field, model_validator

from perpsignal_common.errors import ConfigError
from perpsignal_common.events.market import Timeframe
from perpsignal_common.settings import ServiceSettings
from perpsignal_domain.scoring.config import (
    DEFAULT_STALE_S,
    DEFAULT_WEIGHTS,
    EngineConfig,
    parse_mapping,
)
from perpsignal_domain.scoring.engine import PrimaryVenues
from perpsignal_domain.scoring.mss import MssConfig


def _fmt(d: dict[str, float]) -> str:
    return ",".join(f"{k}={v:g}" for k, v in d.items())


class ScorerSettings(ServiceSettings):
    """Everything the scorer reads from the environment."""

    service_name: str = "scorer"
    scorer_primary_timeframe: Timeframe = Field(
        default="15m", description="Signals are emitted on each closed candle of this timeframe"
    )
    scorer_smc_timeframes: str = Field(
        default="15m,1h,4h", description="SMC timeframes; missing ones are aggregated"
    )
    scorer_weights: str = Field(
        default=_fmt(DEFAULT_WEIGHTS),
        description="factor=weight, sum 100 (`perpsignal calibrate` fits them)",
    )
    scorer_long_threshold: float = 65.0
    scorer_short_threshold: float = 35.0
    scorer_stale_s: str = Field(
        default=_fmt(DEFAULT_STALE_S), description="factor=seconds staleness overrides"
    )
    scorer_candle_stale_bars: int = 3
    scorer_liquidation_window_s: float = 3600.0
    scorer_oi_window_s: float = 3600.0
    scorer_funding_change_window_s: float = 8 * 3600.0
    scorer_neutral_window: int = Field(
        default=288,
        ge=1,
        description="Observations of a symbol's own history its positioning/funding levels "
        "are ranked in (their neutral is that history's median)",
    )
    scorer_neutral_min_history: int = Field(
        default=12, ge=1, description="Fewer observations: the level is not scored"
    )
    scorer_fear_greed_neutral_readings: int = Field(
        default=2,
        ge=1,
        description="Fear & greed is scored against the median of this many daily readings "
        "before the newest (its neutral)",
    )
    scorer_fear_greed_full_change: float = Field(
        default=30.0,
        gt=0.0,
        description="Index points above/below that neutral that count as a full pull",
    )
    scorer_stale_cadence_multiple: float = Field(
        default=3.0,
        ge=0.0,
        description="A point input is stale after this many times its own observed cadence "
        "(never before its SCORER_STALE_S entry; 0 = the entry alone)",
    )
    scorer_smc_half_life_bars: float = Field(
        default=12.0,
        ge=0.0,
        description="A structure break's pull on smart money halves every this many bars of "
        "its timeframe (0 = the trend counts fully until the next break)",
    )
    scorer_swing_length: int = Field(default=3, ge=1, le=20)
    scorer_signal_candles: int = Field(default=30, ge=15, le=300)
    scorer_rewind_records: int = Field(
        default=20_000, description="Records per partition re-read at start (-1 = all)"
    )
    scorer_rewind_s: float = Field(
        default=86_400.0,
        ge=0.0,
        description="...and at least this much history (seconds, by record time) re-read at "
        "start: the state's windows are time, a record count is hours with hundreds of "
        "symbols (0 = by count alone)",
    )
    scorer_symbol_idle_s: float = Field(
        default=3 * 86_400.0,
        ge=0.0,
        description="A symbol without any event for this long (in event time, and none "
        "handled for as long) is forgotten, its memory (0.5-4 MB) freed; its next events "
        "start it afresh, as a restart would "
        "(0 = never forget; else at least a day and SCORER_REWIND_S)",
    )
    scorer_global_warmup_s: float = Field(
        default=5.0, description="Max wait for fear & greed history before scoring"
    )
    scorer_primary_venue: str = Field(
        default="binance",
        description="Venue whose candles drive signals (empty: the first venue to send one)",
    )
    scorer_primary_venues: str = Field(
        default="", description="Per-symbol primary venue, e.g. BTCUSDT:okx,ETHUSDT:okx"
    )
    scorer_mss_threshold: float = 65.0
    scorer_mss_interval_s: float = 900.0

    @model_validator(mode="after")
    def _idle_outlasts_the_rewind(self) -> Self:
        """Refuse an idle time short enough to forget symbols still sent: a candle gap of
        the primary timeframe, or the rewind's reach (a replay would forget what it
        rebuilds)."""
        idle = self.scorer_symbol_idle_s
        if idle and idle < max(86_400.0, self.scorer_rewind_s):
            raise ValueError(
                f"SCORER_SYMBOL_IDLE_S {idle:g} must be 0 (never forget) or at least a day "
                f"and SCORER_REWIND_S ({self.scorer_rewind_s:g})"
            )
        return self

    def engine_config(self) -> EngineConfig:
        """Build the engine config; raise ConfigError on inconsistent values."""
        try:
            weights = dict(DEFAULT_WEIGHTS) | parse_mapping(self.scorer_weights)
            return EngineConfig(
                primary_timeframe=self.scorer_primary_timeframe,
                smc_timeframes=tuple(
                    t.strip() for t in self.scorer_smc_timeframes.split(",") if t.strip()
                ),
                weights=weights,
                long_threshold=self.scorer_long_threshold,
                short_threshold=self.scorer_short_threshold,
                stale_s=dict(DEFAULT_STALE_S) | parse_mapping(self.scorer_stale_s),
                candle_stale_bars=self.scorer_candle_stale_bars,
                liquidation_window_s=self.scorer_liquidation_window_s,
                oi_window_s=self.scorer_oi_window_s,
                funding_change_window_s=self.scorer_funding_change_window_s,
                neutral_window=self.scorer_neutral_window,
                neutral_min_history=self.scorer_neutral_min_history,
                stale_cadence_multiple=self.scorer_stale_cadence_multiple,
                fear_greed_neutral_readings=self.scorer_fear_greed_neutral_readings,
                fear_greed_full_change=self.scorer_fear_greed_full_change,
                smc_half_life_bars=self.scorer_smc_half_life_bars,
                swing_length=self.scorer_swing_length,
                signal_candles=self.scorer_signal_candles,
            )
        except ValueError as exc:
            raise ConfigError(f"scorer settings: {exc}") from exc

    def primary_venues(self) -> PrimaryVenues:
        """Build the per-symbol primary venues; raise ConfigError on a malformed override."""
        overrides: dict[str, str] = {}
        for item in filter(None, (x.strip() for x in self.scorer_primary_venues.split(","))):
            symbol, sep, venue = item.partition(":")
            if not sep or not symbol.strip() or not venue.strip():
                raise ConfigError(f"SCORER_PRIMARY_VENUES: {item!r} is not SYMBOL:venue")
            overrides[symbol.strip().upper()] = venue.strip().lower()
        return PrimaryVenues(self.scorer_primary_venue.strip().lower() or None, overrides)

    def mss_config(self) -> MssConfig:
        """Build the MSS config."""
        return MssConfig(threshold=self.scorer_mss_threshold, interval_s=self.scorer_mss_interval_s)
