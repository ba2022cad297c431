"""Engine configuration: weights, thresholds, windows and staleness limits.

A plain frozen dataclass (no pydantic-settings) so the pure engine, the backtest and the
benchmarks build it directly; `settings.ScorerSettings.engine_config()` builds it from env.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

from perpsignal_common.events.market import TIMEFRAME_SECONDS
from perpsignal_common.events.signals import FACTOR_NAMES

DEFAULT_WEIGHTS: dict[str, float] = {
    "liquidations": 10.0,
    "funding": 15.0,
    "momentum": 20.0,
    "long_short": 10.0,
    "smart_money": 20.0,
    "oi_trend": 10.0,
    "social": 5.0,
    "fear_greed": 10.0,
}

# Seconds after which a factor's newest input no longer counts. Candle-based factors
# (momentum, smart_money) use `candle_stale_bars` x the primary timeframe instead
DEFAULT_STALE_S: dict[str, float] = {
    "liquidations": 4 * 3600.0,  # orders are sparse: an hour without any is normal
    "funding": 9 * 3600.0,  # settled every 8 h; live premium index far more often
    # floors: point inputs also get `stale_cadence_multiple` x their own observed cadence
    "long_short": 1800.0,  # Binance publishes 5m ratios (hourly elsewhere: cadence rule)
    "oi_trend": 1800.0,
    "social": 2 * 3600.0,  # LunarCrush refreshes about hourly
    "fear_greed": 2 * 86400.0,  # daily index
}


def parse_mapping(text: str) -> dict[str, float]:
    """Parse `a=1,b=2` into a dict (env-friendly mappings)."""
    out: dict[str, float] = {}
    for raw in text.split(","):
        part = raw.strip()
        if not part:
            continue
        key, sep, value = part.partition("=")
        if not sep:
            raise ValueError(f"expected name=value, got {part!r}")
        out[key.strip()] = float(value)
    return out


@dataclass(frozen=True, slots=True)
class EngineConfig:
    """Everything the scoring engine needs; defaults are the documented production values."""

    primary_timeframe: str = "15m"
    smc_timeframes: tuple[str, ...] = ("15m", "1h", "4h")
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    long_threshold: float = 65.0
    short_threshold: float = 35.0
    stale_s: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_STALE_S))
    candle_stale_bars: int = 3
    # windows
    liquidation_window_s: float = 3600.0
    liquidation_full_usd: float = 1_000_000.0  # total at which an imbalance counts fully
    funding_full_rate: float = 0.0005  # a 0.05 % per 8 h change = full pull
    funding_change_window_s: float = 8 * 3600.0
    momentum_horizons: tuple[int, ...] = (1, 4, 16)  # bars of the primary timeframe
    momentum_full_return: float = 0.004  # per sqrt(bar): 0.4 % in 1 bar, 0.8 % in 4 bars
    rsi_period: int = 14
    ema_fast: int = 20
    ema_slow: int = 50
    trend_full_gap: float = 0.01  # EMA gap of 1 % = full trend pull
    # levels without a universal neutral (positioning shares, funding) are ranked within
    # the symbol's own last `neutral_window` observations; with fewer than
    # `neutral_min_history` the level is not scored (see history.rank_strength)
    neutral_window: int = 288  # a day of 5m ratios, 96 days of 8h funding
    neutral_min_history: int = 12
    # point inputs are stale after this many times their own observed cadence (and never
    # before their `stale_s` entry): hourly ratios stay fresh under 15m scoring
    stale_cadence_multiple: float = 3.0
    ls_change_window_s: float = 3600.0
    ls_full_change: float = 0.05
    oi_window_s: float = 3600.0
    oi_full_change: float = 0.05
    oi_price_full_change: float = 0.02
    # fear & greed against its own recent readings: neutral = the median of the last
    # `fear_greed_neutral_readings` daily readings before the newest; a move of
    # `fear_greed_full_change` index points above it counts fully (bearish, contrarian)
    fear_greed_neutral_readings: int = 2
    fear_greed_full_change: float = 30.0
    swing_length: int = 3
    # a structure break's pull on smart money halves every this many bars of its timeframe
    # (0: no fading, the trend state counts fully until the next break)
    smc_half_life_bars: float = 12.0
    equal_level_tolerance: float = 0.001  # 0.1 % apart counts as equal highs/lows
    candle_history: int = 300
    signal_candles: int = 30
    limits: dict[str, float] = field(init=False, repr=False, compare=False)
    # derived once here for the per-bar code: (name, weight, weight / 100, staleness limit)
    # per factor in FACTOR_NAMES order, and (h, input key, full return over h bars) per
    # momentum horizon
    factor_table: tuple[tuple[str, float, float, float], ...] = field(
        init=False, repr=False, compare=False
    )
    horizon_table: tuple[tuple[int, str, float], ...] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        unknown = set(self.weights) - set(FACTOR_NAMES)
        if unknown:
            raise ValueError(f"unknown factor weights: {sorted(unknown)}")
        total = sum(self.weights.get(n, 0.0) for n in FACTOR_NAMES)
        if abs(total - 100.0) > 1e-6:
            raise ValueError(f"factor weights must sum to 100, got {total:g}")
        if any(w < 0 for w in self.weights.values()):
            raise ValueError("factor weights must be >= 0")
        if self.fear_greed_neutral_readings < 1 or self.fear_greed_full_change <= 0:
            raise ValueError("need fear_greed_neutral_readings >= 1, fear_greed_full_change > 0")
        if self.smc_half_life_bars < 0:
            raise ValueError("smc_half_life_bars must be >= 0")
        if self.neutral_window < 1 or not 1 <= self.neutral_min_history <= self.neutral_window:
            raise ValueError("need 1 <= neutral_min_history <= neutral_window")
        if not 0 <= self.short_threshold < 50 < self.long_threshold <= 100:
            raise ValueError("thresholds must satisfy 0 <= SHORT < 50 < LONG <= 100")
        for tf in (self.primary_timeframe, *self.smc_timeframes):
            if tf not in TIMEFRAME_SECONDS:
                raise ValueError(f"unknown timeframe {tf!r}")
            if TIMEFRAME_SECONDS[tf] % TIMEFRAME_SECONDS[self.primary_timeframe]:
                raise ValueError(f"SMC timeframe {tf} is not a multiple of the primary")
        candle_s = self.candle_stale_bars * float(TIMEFRAME_SECONDS[self.primary_timeframe])
        limits = {
            n: candle_s
            if n in ("momentum", "smart_money")
            else self.stale_s.get(n, DEFAULT_STALE_S.get(n, 3600.0))
            for n in FACTOR_NAMES
        }
        # frozen: computed once here
        object.__setattr__(self, "limits", limits)
        table = tuple(
            (n, self.weights.get(n, 0.0), self.weights.get(n, 0.0) / 100.0, limits[n])
            for n in FACTOR_NAMES
        )
        object.__setattr__(self, "factor_table", table)
        horizons = tuple(
            (h, f"return_{h}b", self.momentum_full_return * math.sqrt(h))
            for h in self.momentum_horizons
        )
        object.__setattr__(self, "horizon_table", horizons)

    @property
    def primary_s(self) -> int:
        """Return the primary timeframe in seconds."""
        return TIMEFRAME_SECONDS[self.primary_timeframe]

    @property
    def momentum_span(self) -> int:
        """Return the longest momentum horizon in bars (0: none): after a gap longer than
        it, momentum waits for that many contiguous candles and one more."""
        return max(self.momentum_horizons, default=0)

    def stale_limit(self, factor: str) -> float:
        """Return the staleness limit of `factor` in seconds."""
        return self.limits[factor]


def config_to_json(cfg: EngineConfig) -> dict[str, Any]:
    """Return the constructor arguments of `cfg` as JSON data (the scorer's
    `--print-config`: how the backtest runs the engine the scorer service would build)."""
    return {f.name: getattr(cfg, f.name) for f in fields(cfg) if f.init}


def config_from_json(data: dict[str, Any]) -> EngineConfig:
    """Rebuild an `EngineConfig` from `config_to_json` data (JSON lists back to tuples)."""
    args: dict[str, Any] = {
        f.name: tuple(data[f.name]) if isinstance(data[f.name], list) else data[f.name]
        for f in fields(EngineConfig)
        if f.init and f.name in data
    }
    return EngineConfig(**args)
