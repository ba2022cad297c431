"""ATR, volatility classes and the trade plan, checked against independent arithmetic."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pytest
import talib

from perpsignal_common.events.signals import JudgeRequestV1, Ohlc, VolatilityMetrics
from perpsignal_domain.judging.judge import caller_plan_conflicts
from perpsignal_domain.judging.volatility import (
    PlanParams,
    aggregate,
    atr,
    build_metrics,
    classify,
    fmt_price,
    true_ranges,
)
from tests.unit.judge.builders import load_candles


def wilder_atr_series(candles: list[Ohlc], n: int = 14) -> list[float | None]:
    """Reference ATR written from Wilder's definition (not from the code under test).

    TR_t = max(H-L, |H-C_prev|, |L-C_prev|) from the 2nd bar; the first ATR is the mean of
    the first n TRs; then ATR_t = (ATR_{t-1} * (n - 1) + TR_t) / n.
    """
    out: list[float | None] = [None] * len(candles)
    trs = []
    value = None
    for i in range(1, len(candles)):
        c, p = candles[i], candles[i - 1]
        tr = max(c.high - c.low, abs(c.high - p.close), abs(c.low - p.close))
        trs.append(tr)
        if len(trs) == n:
            value = sum(trs) / n
        elif len(trs) > n:
            assert value is not None
            value = (value * (n - 1) + tr) / n
        out[i] = value
    return out


def flat_candles(count: int, range_: float, close: float = 100.0, minutes: int = 60) -> list[Ohlc]:
    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    return [
        Ohlc(
            open_time=t0 + timedelta(minutes=minutes * i),
            open=close,
            high=close + range_ / 2,
            low=close - range_ / 2,
            close=close,
        )
        for i in range(count)
    ]


def test_atr_matches_wilder_reference_on_real_xrp_candles(shared_data: Path) -> None:
    candles = load_candles(shared_data)
    assert len(candles) == 100
    ref = wilder_atr_series(candles)
    for end in range(15, len(candles) + 1):
        expected = ref[end - 1]
        assert expected is not None
        assert atr(candles[:end]) == pytest.approx(expected, rel=1e-9), end


def test_atr_matches_talipp_when_installed(shared_data: Path) -> None:
    talipp = pytest.importorskip("talipp.indicators")
    from talipp.ohlcv import OHLCV

    candles = load_candles(shared_data)
    ind = talipp.ATR(14, [OHLCV(c.open, c.high, c.low, c.close, c.volume) for c in candles])
    assert atr(candles) == pytest.approx(float(ind[-1]), rel=1e-9)


def test_too_few_candles_give_no_atr_and_empty_metrics() -> None:
    candles = flat_candles(14, 2.0)
    assert atr(candles) is None
    m = build_metrics(
        symbol="X",
        direction="LONG",
        entry=100,
        confidence=60,
        candles=candles,
        timeframe="1h",
        params=PlanParams(),
    )
    assert m.atr is None and m.stop_loss_price is None and m.volatility_class is None


@pytest.mark.parametrize(
    ("timeframe", "expected"),
    # ATR 2 on price 100 = 2 %: HIGH at 1h; 5m bounds are x0.289 (VERY_HIGH); 4h x2 (NORMAL)
    [("1h", "HIGH"), ("5m", "VERY_HIGH"), ("4h", "NORMAL")],
)
def test_volatility_class_scales_with_timeframe(timeframe: str, expected: str) -> None:
    m = build_metrics(
        symbol="X",
        direction="NEUTRAL",
        entry=100,
        confidence=60,
        candles=flat_candles(30, 2.0),
        timeframe=timeframe,
        params=PlanParams(),
    )
    assert m.atr == pytest.approx(2.0)
    assert m.atr_pct == pytest.approx(2.0)
    assert m.volatility_class == expected


@pytest.mark.parametrize(
    ("pct", "cls"),
    [(0.2, "VERY_LOW"), (0.5, "LOW"), (1.0, "NORMAL"), (2.0, "HIGH"), (3.5, "VERY_HIGH")],
)
def test_documented_1h_thresholds(pct: float, cls: str) -> None:
    assert classify(pct, "1h") == cls


@pytest.mark.parametrize(("direction", "sign"), [("LONG", 1), ("SHORT", -1)])
def test_trade_plan_puts_stop_and_target_on_the_correct_side(
    shared_data: Path, direction: str, sign: int
) -> None:
    candles = load_candles(shared_data)
    entry = candles[-1].close
    expected_atr = wilder_atr_series(candles)[-1]
    assert expected_atr is not None
    m = build_metrics(
        symbol="XRPUSDT",
        direction=direction,
        entry=entry,
        confidence=70,  # type: ignore[arg-type]
        candles=candles,
        timeframe="1h",
        params=PlanParams(),
    )
    assert m.stop_loss_price is not None and m.take_profit_price is not None
    assert (entry - m.stop_loss_price) * sign > 0  # stop below a long, above a short
    assert (m.take_profit_price - entry) * sign > 0
    stop_atrs = abs(entry - m.stop_loss_price) / expected_atr
    assert 1.5 - 1e-6 <= stop_atrs <= 3.0 + 1e-6
    rr = abs(m.take_profit_price - entry) / abs(entry - m.stop_loss_price)
    assert rr == pytest.approx(m.risk_reward, rel=1e-4)
    # confidence 70 is half-way from 50 to 90: R:R half-way from 1.5 to 3.0
    assert m.risk_reward == pytest.approx(2.2, abs=0.06)
    assert 0.25 <= m.recommended_position_multiplier <= 2.0  # type: ignore[operator]
    assert m.trade_plan_summary and direction in m.trade_plan_summary
    assert f"{m.stop_loss_price:.6g}" in m.trade_plan_summary


def test_stop_widens_and_size_shrinks_as_volatility_rises() -> None:
    def plan(range_: float):  # type: ignore[no-untyped-def]
        return build_metrics(
            symbol="X",
            direction="LONG",
            entry=100,
            confidence=50,
            candles=flat_candles(30, range_),
            timeframe="1h",
            params=PlanParams(),
        )

    calm, wild = plan(0.2), plan(8.0)  # 0.2 % (VERY_LOW) vs 8 % (VERY_HIGH)
    assert calm.volatility_class == "VERY_LOW" and wild.volatility_class == "VERY_HIGH"
    assert (100 - calm.stop_loss_price) / 0.2 == pytest.approx(1.5)  # type: ignore[operator]
    assert (100 - wild.stop_loss_price) / 8.0 == pytest.approx(3.0)  # type: ignore[operator]
    assert calm.recommended_position_multiplier == 2.0  # 1 % / 0.2 % = 5, clamped to 2
    assert wild.recommended_position_multiplier == 0.25  # 1 % / 8 % = 0.125, clamped
    assert calm.risk_reward == 1.5  # confidence 50


def test_neutral_signal_carries_volatility_but_no_plan(shared_data: Path) -> None:
    candles = load_candles(shared_data)
    m = build_metrics(
        symbol="XRPUSDT",
        direction="NEUTRAL",
        entry=candles[-1].close,
        confidence=90,
        candles=candles,
        timeframe="1h",
        params=PlanParams(),
    )
    assert m.atr is not None and m.volatility_class is not None
    assert m.recommended_position_multiplier is not None
    assert m.stop_loss_price is None and m.take_profit_price is None
    assert m.risk_reward is None and m.trade_plan_summary is None


def test_aggregate_to_4h_matches_hand_merge(shared_data: Path) -> None:
    candles = load_candles(shared_data)
    merged = aggregate(candles, "1h", "4h")
    first = merged[0]
    assert first.open_time.hour % 4 == 0
    group = [
        c for c in candles if first.open_time <= c.open_time < first.open_time + timedelta(hours=4)
    ]
    assert len(group) == 4
    assert first.open == group[0].open and first.close == group[-1].close
    assert first.high == max(c.high for c in group) and first.low == min(c.low for c in group)
    assert all(m.open_time.hour % 4 == 0 for m in merged)
    with pytest.raises(ValueError, match="cannot build"):
        aggregate(candles, "1h", "90m")
    assert math.isfinite(atr(merged) or math.nan)


def _talib_atr(candles: list[Ohlc], period: int = 14) -> float | None:
    """TA-Lib's ATR of the candles' own highs, lows and closes (what `atr` must give)."""
    high, low, close = (
        np.array([getattr(c, k) for c in candles]) for k in ("high", "low", "close")
    )
    value = float(talib.ATR(high, low, close, timeperiod=period)[-1])
    return None if math.isnan(value) else value


def test_atr_is_talibs_bit_for_bit_on_real_and_odd_candles(shared_data: Path) -> None:
    candles = load_candles(shared_data)
    odd = (
        [
            c.model_copy(update=change)
            for c, change in zip(
                candles,
                [{"high": c.low - 0.01} for c in candles[:5]]  # high below low
                + [{"close": c.high * 3} for c in candles[5:8]]  # gaps both ways
                + [{"low": 0.0, "close": -0.0}, {"high": math.inf}, {"low": math.nan}],
                strict=False,
            )
        ]
        + candles[11:]
    )
    for series in (candles, odd):
        for end in range(15, len(series) + 1):
            window = series[max(0, end - 30) : end]
            for period in (14, 5):
                expected = _talib_atr(window, period)
                for got in (atr(window, period), atr(window, period, true_ranges(window))):
                    assert got == expected or (got is None and expected is None), (end, period)


def _long_plan_requoted(shared_data: Path, scale: float) -> tuple[list[Ohlc], VolatilityMetrics]:
    """The recorded XRP 1h candles with every price times `scale`, and a LONG's plan at the
    last close."""
    candles = [
        c.model_copy(update={k: getattr(c, k) * scale for k in ("open", "high", "low", "close")})
        for c in load_candles(shared_data)
    ]
    plan = build_metrics(
        symbol="XRPUSDT",
        direction="LONG",
        entry=candles[-1].close,
        confidence=70,
        candles=candles,
        timeframe="1h",
        params=PlanParams(),
    )
    return candles, plan


@pytest.mark.parametrize("scale", [1e-9, 1e-5, 1e6])
def test_the_plan_summary_writes_prices_in_decimals_a_trader_can_read(
    shared_data: Path, scale: float
) -> None:
    """The recorded XRP candles re-quoted as a 1e-9 coin (the contract allows prices down to
    1e-12) and as a 1e6 quote: the plan's entry, stop and target read as plain decimals with
    six significant digits; `:g` wrote "3e-09" and "1.23457e+06"."""
    candles, m = _long_plan_requoted(shared_data, scale)
    entry = candles[-1].close
    summary = m.trade_plan_summary
    assert summary is not None and m.stop_loss_price is not None
    assert "e-" not in summary and "e+" not in summary, summary
    for price in (entry, m.stop_loss_price, m.take_profit_price):
        assert price is not None
        shown = re.findall(r"\d+(?:\.\d+)?", summary)
        # the figure in the text is the price to six significant digits
        assert any(float(s) == pytest.approx(price, rel=5e-6) for s in shown), (price, summary)


def test_a_callers_plan_on_a_tiny_price_coin_is_named_in_decimals(shared_data: Path) -> None:
    """`/judge/validate`'s conflicts quote the caller's own stop and target: a 1e-9 coin's
    wrong-side stop read "your stop 3.1e-09"."""
    candles, vol = _long_plan_requoted(shared_data, 1e-9)
    entry = candles[-1].close
    request = JudgeRequestV1(
        event_id="r1",
        source="gateway",
        symbol="XRPUSDT",
        observed_at=candles[-1].open_time,
        direction="LONG",
        entry_price=entry,
        stop_loss_price=entry * 1.05,  # above a long's entry: the wrong side
        take_profit_price=entry * 0.95,
    )
    texts = [text for text, _ in caller_plan_conflicts(request, vol)]
    assert len(texts) == 2 and all("wrong side" in t for t in texts)
    assert not any("e-" in t for t in texts), texts
    assert fmt_price(entry * 1.05) in texts[0] and fmt_price(entry * 0.95) in texts[1]
