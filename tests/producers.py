"""Judged signals made by the real producers, for the judge's consumers' tests.

The notifier, gateway and outcomes tests must see what the judge really publishes, not
what they assume it publishes. Every signal here is `RuleJudge.judge_rules` applied to a
`ScoringEngine` signal: the scorer runs on the recorded XRPUSDT 5m week (tests/recorded.py)
or on a synthetic market path from tests/unit/judge/builders.py where the recording lacks
the regime (the recording only yields WAIT: no positioning or liquidations were recorded).

`real_judged(verdict=..., direction=..., plan=...)` picks one from the catalogue. A synthetic
path can be run for any symbol and price level (the scorer is scale-free: the same path at
another start price gives the same factors, verdict and relative plan), so the symbol and
price are real scorer inputs, not overwritten fields. Everything is deterministic and
cached per process.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from perpsignal_common.events.signals import SignalJudgedV1
from perpsignal_domain.judging.judge import JudgeConfig, RuleJudge
from perpsignal_domain.scoring.config import EngineConfig
from tests.recorded import recorded_data_dir
from tests.unit.judge.builders import (
    BEAR,
    BULL,
    CFG_1H,
    LOOSE,
    LOOSEST,
    T0,
    Market,
    full_market,
    recorded_signals,
)

RECORDED = "recorded XRPUSDT 5m"


def _produced_at() -> Any:
    return T0  # a fixed clock: the judged events are reproducible bit for bit


JUDGE = RuleJudge(JudgeConfig(), clock=_produced_at)

# Synthetic paths (see tests/unit/judge/builders.py SCENARIOS) that between them make the
# rule judge say every verdict in every direction it can: name -> (market, scorer config).
PATHS: dict[str, tuple[dict[str, Any], EngineConfig]] = {
    "bull": (BULL, CFG_1H),
    "bear": (BEAR, CFG_1H),
    "bull, crowded longs": (BULL | {"long_share": 0.7}, CFG_1H),
    "bull, longs pay extreme funding": (BULL | {"funding_rate": 0.001}, CFG_1H),
    "bear, shorts pay extreme funding": (BEAR | {"funding_rate": -0.001}, CFG_1H),
    "bear, very crowded shorts": (BEAR | {"long_share": 0.2}, CFG_1H),
    "wild (6 % ranges)": (BULL | {"range_pct": 6.0}, CFG_1H),
    "price up, every flow against it": (
        BULL
        | {
            "liquidated": ("LONG", 2e6),
            "top_position_share": 0.3,
            "fear_greed": 90,
            "sentiment": 20.0,
            "oi_growth_pct": -1.0,
            "funding_rate": 0.0004,
            "long_share": 0.6,
        },
        LOOSE,
    ),
    "mild uptrend against most flows": (
        BULL
        | {
            "drift_pct": 0.3,
            "liquidated": ("LONG", 2e6),
            "top_position_share": 0.45,
            "fear_greed": 90,
            "sentiment": 20.0,
            "oi_growth_pct": -1.0,
            "funding_rate": 0.0006,
            "long_share": 0.62,
        },
        LOOSEST,
    ),
}
START_PRICE = 100.0


@dataclass(frozen=True)
class Ref:
    """Where a catalogue signal comes from: a path (or RECORDED) and its index there."""

    path: str
    index: int


@cache
def run(
    path: str, symbol: str = "SYNUSDT", start: float = START_PRICE
) -> tuple[SignalJudgedV1, ...]:
    """Every judged signal of synthetic `path` for `symbol`, its first candle opening at `start`."""
    market, cfg = PATHS[path]
    signals = full_market(**market, into=Market(symbol=symbol, price=start)).signals(cfg)
    return tuple(JUDGE.judge_rules(s) for s in signals)


@cache
def recorded() -> tuple[SignalJudgedV1, ...]:
    """The judged signals of the recorded XRPUSDT 5m week (all WAIT; LONG, SHORT, NEUTRAL)."""
    data = recorded_data_dir()
    if data is None:  # pragma: no cover - the archive ships with the repository
        return ()
    return tuple(JUDGE.judge_rules(s) for s in recorded_signals(data))


def has_plan(j: SignalJudgedV1) -> bool:
    vol = j.ai_verdict_layer.volatility_metrics
    return vol.stop_loss_price is not None and vol.take_profit_price is not None


Key = tuple[str, str, bool]  # verdict, direction, with a trade plan


def _all() -> Iterator[tuple[Ref, SignalJudgedV1]]:
    for i, j in enumerate(recorded()):
        yield Ref(RECORDED, i), j
    for name in PATHS:
        for i, j in enumerate(run(name)):
            yield Ref(name, i), j


@cache
def catalogue() -> dict[Key, tuple[Ref, ...]]:
    """(verdict, direction, has a plan) -> where the real producer emits such a signal."""
    out: dict[Key, list[Ref]] = {}
    for ref, j in _all():
        key = (j.ai_verdict_layer.verdict, j.direction, has_plan(j))
        out.setdefault(key, []).append(ref)
    return {k: tuple(v) for k, v in out.items()}


def _get(ref: Ref, symbol: str | None, price: float | None) -> SignalJudgedV1:
    if ref.path == RECORDED:
        j = recorded()[ref.index]
        return j if symbol is None else j.model_copy(update={"symbol": symbol})
    base = run(ref.path)[ref.index]
    # the path is geometric: scale its start so that this signal's price is `price`
    start = START_PRICE if price is None else START_PRICE * price / base.price
    scaled = run(ref.path, symbol or base.symbol, start)[ref.index]
    if price is not None and abs(scaled.price / price - 1) < 1e-9:
        # the scorer's price is `price` to the last float bit or two: make it read as given
        scaled = scaled.model_copy(update={"price": price})
    return scaled


def real_judged(
    verdict: str | None = None,
    direction: str | None = None,
    plan: bool | None = None,
    *,
    symbol: str | None = None,
    price: float | None = None,
    score_near: float | None = None,
    recorded_only: bool = False,
    nth: int = 0,
) -> SignalJudgedV1:
    """A real judged signal with this verdict / direction / trade plan (None: any).

    `symbol` and `price` are fed to the scorer (a synthetic path; a signal only the
    recording has, i.e. WAIT LONG/SHORT, keeps its recorded price); `score_near` picks the
    matching signal whose score is closest; `nth` another of equal rank (distinct signals).
    Raises LookupError naming what the producer does emit when nothing matches.
    """
    refs = [
        ref
        for (v, d, p), refs in catalogue().items()
        if (verdict is None or v == verdict)
        and (direction is None or d == direction)
        and (plan is None or p == plan)
        for ref in refs
        if not (recorded_only and ref.path != RECORDED)
    ]
    if price is not None and any(r.path != RECORDED for r in refs):
        refs = [r for r in refs if r.path != RECORDED]
    else:
        price = None  # only the recording has such a signal: it keeps its recorded price
    if not refs:
        raise LookupError(
            f"the rule judge never emits {verdict}/{direction}/plan={plan} here; "
            f"it does emit {sorted(catalogue())}"
        )
    if score_near is not None:
        target = score_near
        refs.sort(key=lambda r: abs(_get(r, None, None).score - target))
    return _get(refs[nth % len(refs)], symbol, price)
