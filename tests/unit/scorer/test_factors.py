"""Each factor on hand-built inputs, with the expected sub-score worked out here."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from perpsignal_domain.scoring.config import EngineConfig
from perpsignal_domain.scoring.factors.base import EvalContext
from perpsignal_domain.scoring.factors.fear_greed import fear_greed_score, score_fear_greed
from perpsignal_domain.scoring.factors.funding import funding_strength, score_funding
from perpsignal_domain.scoring.factors.liquidations import liquidation_strength, score_liquidations
from perpsignal_domain.scoring.factors.long_short import long_short_strength, score_long_short
from perpsignal_domain.scoring.factors.momentum import momentum_strength, score_momentum
from perpsignal_domain.scoring.factors.oi_trend import oi_trend_strength, score_oi_trend
from perpsignal_domain.scoring.factors.smart_money import smart_money_strength
from perpsignal_domain.scoring.factors.social import social_strength
from perpsignal_domain.scoring.state import Bar, SymbolState, append_point

CFG = EngineConfig(primary_timeframe="5m", smc_timeframes=("5m",))
T0 = 1_700_000_100.0


def _state() -> SymbolState:
    return SymbolState("TESTUSDT", 300)


def test_liquidations_shorts_squeezed_is_bullish() -> None:
    s = _state()
    # 600k shorts and 200k longs liquidated in the last hour, 5M two hours ago (outside)
    for t, lo, sh in [(T0 - 7200, 5e6, 0.0), (T0 - 600, 200e3, 0.0), (T0 - 60, 0.0, 600e3)]:
        s.liquidations.add_order(t, "binance", "binance", t, lo, sh)
    s.liquidations_seen_at = T0 - 60
    r = score_liquidations(s, EvalContext(T0), CFG)
    # imbalance (600-200)/800 = 0.5; significance 800k/1M = 0.8 -> strength 0.4 -> 70
    assert r.status == "ok"
    assert r.score == pytest.approx(70.0)
    assert r.inputs["long_liquidations_usd"] == 200e3


def test_liquidations_never_seen_is_missing_and_neutral() -> None:
    r = score_liquidations(_state(), EvalContext(T0), CFG)
    assert (r.score, r.status) == (50.0, "missing")


def test_funding_crowded_longs_is_bearish() -> None:
    s = _state()
    for k in range(12):  # four days at the base rate, then a jump
        append_point(s.funding, T0 - (13 - k) * 8 * 3600, 0.0001)
    append_point(s.funding, T0 - 600, 0.0006)
    r = score_funding(s, EvalContext(T0), CFG)
    # rank: above all 12 earlier rates -> 2 * 12.5 / 13 - 1; change +0.0005 -> -1
    rank = 2 * 12.5 / 13 - 1
    assert r.score == pytest.approx(50 - 50 * (0.7 * rank + 0.3 * 1.0))
    assert r.inputs["rate_rank"] == pytest.approx(round(rank, 4))
    # without an earlier rate only the rank counts; without a rank only the change
    assert 50 + 50 * funding_strength(0.4, 0.0003, None, CFG) == pytest.approx(30.0)
    assert funding_strength(None, 0.0003, 0.0001, CFG) == pytest.approx(-0.4)


def test_funding_pinned_at_any_rate_is_neutral() -> None:
    """Regression: a coin whose funding sits at 0.03 % for weeks is not "crowded" on every
    bar; the old fixed 0.01 % neutral scored it 30 throughout."""
    s = _state()
    for k in range(40):
        append_point(s.funding, T0 - (40 - k) * 8 * 3600, 0.0003)
    r = score_funding(s, EvalContext(T0), CFG)
    assert (r.status, r.score) == ("ok", 50.0)


def test_funding_too_little_history_and_no_change_is_missing() -> None:
    s = _state()
    append_point(s.funding, T0 - 600, 0.0006)
    r = score_funding(s, EvalContext(T0), CFG)
    assert (r.status, r.score) == ("missing", 50.0)
    assert "fewer than 12" in (r.reason or "")


def test_funding_stale_after_limit() -> None:
    s = _state()
    append_point(s.funding, T0 - 10 * 3600, 0.001)
    r = score_funding(s, EvalContext(T0), CFG)
    assert (r.score, r.status) == (50.0, "stale")
    assert r.age_s == pytest.approx(36000.0)


def test_momentum_worked_example() -> None:
    # +0.4 % in 1 bar (full), +0.4 % in 4 bars (half of 0.8 %), RSI 60 (+0.5), gap 0.5 % (+0.5)
    strength = momentum_strength({1: 0.004, 4: 0.004}, 60.0, 0.005, CFG)
    assert strength == pytest.approx(0.4 * 0.75 + 0.3 * 0.5 + 0.3 * 0.5)


def test_momentum_warming_up_is_missing() -> None:
    s = _state()
    for i in range(10):
        s.add_bar("5m", Bar(T0 + i * 300, T0 + (i + 1) * 300, 1, 1, 1, 1, 1))
    r = score_momentum(s, EvalContext(T0 + 3000), CFG)
    assert r.status == "missing" and "10/15" in (r.reason or "")


def test_momentum_of_a_steady_rise_is_bullish() -> None:
    s = _state()
    for i in range(60):
        c = 100 * 1.001**i
        s.add_bar("5m", Bar(T0 + i * 300, T0 + (i + 1) * 300, c, c, c, c, 1))
    r = score_momentum(s, EvalContext(T0 + 60 * 300), CFG)
    # only gains: RSI 100 (full); 1-bar +0.1 % (0.25), 4-bar ~0.4 % (0.5), 16-bar ~1.6 % (1)
    assert r.inputs["rsi"] == pytest.approx(100.0)
    assert r.score > 80


def test_long_short_crowded_longs_is_bearish() -> None:
    s = _state()
    for k in range(12):  # an hour at 60 % long, then 70 % (top accounts: flat at 55 %)
        append_point(s.ls("global_account"), T0 - 3600 + k * 300 - 60, 0.60)
        append_point(s.ls("top_account"), T0 - 3600 + k * 300 - 60, 0.55)
    append_point(s.ls("global_account"), T0 - 60, 0.70)
    append_point(s.ls("top_account"), T0 - 60, 0.55)
    r = score_long_short(s, EvalContext(T0), CFG)
    # global rank 2 * 12.5/13 - 1, top rank 0 (all equal); crowd = 0.6 * g_rank;
    # change 0.70 - 0.60 = +0.10 -> 1; strength -(0.7 crowd + 0.3)
    g_rank = 2 * 12.5 / 13 - 1
    assert r.score == pytest.approx(50 - 50 * (0.7 * 0.6 * g_rank + 0.3 * 1.0))
    assert r.score < 50


def test_long_short_persistent_crowd_is_neutral_not_bearish() -> None:
    """Regression for the structural SHORT bias: two thirds of accounts long for days is the
    symbol's normal, not a crowd. The old 50 % neutral scored every such bar about 25."""
    s = _state()
    t = T0 - 300 * 600
    scores = []
    for k in range(600):  # two days of 5m ratios wobbling around 66 % long
        share = 0.66 + 0.01 * ((k * 7919) % 11 - 5) / 5
        append_point(s.ls("global_account"), t, share, 60.0)
        append_point(s.ls("top_account"), t, share - 0.01, 60.0)
        t += 300
        r = score_long_short(s, EvalContext(t), CFG)
        if r.status == "ok":
            scores.append(r.score)
    assert len(scores) > 550
    assert 45 < sum(scores) / len(scores) < 55


def test_long_short_hourly_ratios_stay_fresh_under_fast_scoring() -> None:
    """Freshness by the input's own cadence: hourly ratios are not stale 45 minutes after
    their last reading (the old fixed 1,800 s limit made them so), but are after 3 hours."""
    s = _state()
    for k in range(24):
        append_point(s.ls("global_account"), T0 - (24 - k) * 3600, 0.6 + 0.001 * k)
    last = T0 - 3600
    assert score_long_short(s, EvalContext(last + 2700), CFG).status == "ok"
    r = score_long_short(s, EvalContext(last + 3 * 3600 + 1), CFG)
    assert r.status == "stale" and "> 10800s" in (r.reason or "")
    # a 5-minute series keeps the configured floor (1,800 s), not 3 x 5 minutes
    s5 = _state()
    for k in range(24):
        append_point(s5.ls("global_account"), T0 - (24 - k) * 300, 0.6 + 0.001 * k)
    assert score_long_short(s5, EvalContext(T0 - 300 + 1700), CFG).status == "ok"
    assert score_long_short(s5, EvalContext(T0 - 300 + 1801), CFG).status == "stale"


def test_smart_money_follows_structure_and_top_traders() -> None:
    assert smart_money_strength(1.0, 1.0) == pytest.approx(1.0)
    assert smart_money_strength(-1.0, None) == pytest.approx(-1.0)
    assert smart_money_strength(None, -0.5) == pytest.approx(-0.5)


def test_oi_trend_new_longs_vs_short_covering() -> None:
    # price +2 % (full) with OI +5 % (full conviction) -> 1; with OI -5 % -> 0
    assert oi_trend_strength(0.05, 0.02, CFG) == pytest.approx(1.0)
    assert oi_trend_strength(-0.05, 0.02, CFG) == pytest.approx(0.0)
    assert oi_trend_strength(0.0, -0.01, CFG) == pytest.approx(-0.25)


def test_oi_trend_from_state() -> None:
    s = _state()
    for i in range(13):  # one hour of 5m candles, price 100 -> 101
        c = 100 + i / 12
        s.add_bar("5m", Bar(T0 - 3900 + i * 300, T0 - 3600 + i * 300, c, c, c, c, 1))
    append_point(s.open_interest, T0 - 3700, 1000.0)
    append_point(s.open_interest, T0 - 30, 1050.0)
    r = score_oi_trend(s, EvalContext(T0), CFG)
    # price +1 % -> 0.5; OI +5 % -> conviction 1 -> strength 0.5 -> 75
    assert r.score == pytest.approx(75.0)


def test_social_worked_example() -> None:
    # sentiment rank +1, galaxy at its median (0), volume +50 % (+0.5) -> 0.4 + 0 + 0.1
    assert social_strength(1.0, 0.0, 50.0) == pytest.approx(0.5)
    assert social_strength(None, 1.0, None) == pytest.approx(1.0)


def test_social_high_but_usual_sentiment_is_neutral() -> None:
    """Regression: sentiment 80 and galaxy 70 every hour is this coin's normal; the old
    fixed midpoints (60 and 50) scored it 50 + 50 x 0.8 = 90 throughout."""
    from datetime import UTC, datetime

    from perpsignal_common.events.market import SocialMetricsV1
    from perpsignal_domain.scoring.engine import ScoringEngine

    engine = ScoringEngine(CFG)
    for k in range(48):
        engine.apply(
            SocialMetricsV1(
                event_id=f"s{k}",
                source="lunarcrush",
                symbol="BTC",
                observed_at=datetime.fromtimestamp(T0 + k * 3600, UTC),
                sentiment=80.0,
                galaxy_score=70.0,
            )
        )
    r = engine.evaluate("BTCUSDT", T0 + 47 * 3600 + 5400).results["social"]
    # hourly readings, 90 minutes old: fresh by their cadence (the old 2 h floor also holds)
    assert (r.status, r.score) == ("ok", 50.0)


@pytest.mark.parametrize(
    ("value", "neutral", "expected"),
    [(10, 10, 50.0), (80, 80, 50.0), (0, 30, 100.0), (10, 25, 75.0), (60, 45, 25.0), (95, 60, 0.0)],
)
def test_fear_greed_is_contrarian_to_its_move_from_its_neutral(
    value: int, neutral: float, expected: float
) -> None:
    # a reading at its own recent neutral is neutral however extreme it is
    assert fear_greed_score(value, neutral, CFG) == pytest.approx(expected)


def test_fear_greed_without_an_earlier_reading_is_missing() -> None:
    r = score_fear_greed(None, EvalContext(T0, (T0 - 3600, 10.0)), CFG)
    assert (r.score, r.status) == (50.0, "missing")
    r = score_fear_greed(None, EvalContext(T0, (T0 - 3600, 10.0), fear_greed_neutral=25.0), CFG)
    assert (r.score, r.status) == (75.0, "ok")


def test_fear_greed_stale_after_two_days() -> None:
    r = score_fear_greed(None, EvalContext(T0, (T0 - 3 * 86400, 10.0)), CFG)
    assert (r.score, r.status) == (50.0, "stale")


unit = st.floats(-5, 5, allow_nan=False)
share = st.floats(0, 1, allow_nan=False)


@given(st.floats(0, 1e9), st.floats(0, 1e9))
def test_liquidation_strength_bounded(long_usd: float, short_usd: float) -> None:
    assert -1 <= liquidation_strength(long_usd, short_usd, 1e6) <= 1


@given(st.floats(0, 1e7), st.floats(0, 1e7), st.floats(0, 1e7))
def test_liquidation_more_shorts_never_lowers(
    long_usd: float, short_usd: float, extra: float
) -> None:
    # adding short liquidations can only push the score up (monotone)
    a = liquidation_strength(long_usd, short_usd, 1e6)
    b = liquidation_strength(long_usd, short_usd + extra, 1e6)
    assert b >= a - 1e-12


@given(st.floats(-1, 1), st.floats(-0.01, 0.01), st.floats(-0.01, 0.01), st.floats(0, 0.01))
def test_funding_higher_rate_never_more_bullish(
    rank: float, rate: float, prev: float, bump: float
) -> None:
    higher = funding_strength(min(1.0, rank + bump * 100), rate + bump, prev, CFG)
    assert higher <= funding_strength(rank, rate, prev, CFG) + 1e-12


@given(st.floats(0, 100), st.floats(0, 100), st.floats(0, 100))
def test_fear_greed_bounded_and_non_increasing(v: float, w: float, neutral: float) -> None:
    lo, hi = min(v, w), max(v, w)
    assert 0 <= fear_greed_score(hi, neutral, CFG) <= fear_greed_score(lo, neutral, CFG) <= 100


@given(st.floats(-1, 1), st.floats(-1, 1), st.floats(-1, 1), st.floats(0, 0.5))
def test_long_short_more_longs_never_more_bullish(g: float, t: float, ch: float, d: float) -> None:
    a = long_short_strength(g, t, ch, CFG)
    b = long_short_strength(min(1.0, g + d), t, ch, CFG)
    assert -1 <= b <= a + 1e-12 <= 1 + 1e-12


@given(unit, unit, st.floats(0, 1))
def test_oi_trend_bounded_and_monotone_in_price(oi: float, price: float, d: float) -> None:
    a = oi_trend_strength(oi, price, CFG)
    assert -1 <= a <= 1
    assert oi_trend_strength(oi, price + d, CFG) >= a - 1e-12


@given(
    st.dictionaries(st.sampled_from([1, 4, 16]), st.floats(-1, 1), max_size=3),
    st.floats(0, 100),
    st.one_of(st.none(), st.floats(-1, 1)),
)
def test_momentum_bounded(returns: dict[int, float], rsi: float, gap: float | None) -> None:
    assert -1 <= momentum_strength(returns, rsi, gap, CFG) <= 1
