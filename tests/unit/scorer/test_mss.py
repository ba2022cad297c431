"""MSS: worked phase scores and tier, bounds, threshold and cadence."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from perpsignal_common.events.market import (
    CoinProfileV1,
    FundingRateV1,
    ListingDetectedV1,
    OpenInterestV1,
    SocialMetricsV1,
    WhaleTradeV1,
)
from perpsignal_domain.scoring.mss import (
    DAY_S,
    PARTS,
    CoinInputs,
    MssConfig,
    MssScanner,
    confidence,
    discovery,
    institutional,
    score_coin,
    social_momentum,
    tier,
)
from perpsignal_domain.scoring.state import Point

NOW = datetime(2024, 6, 1, tzinfo=UTC)
NOW_S = NOW.timestamp()


def _events() -> list:
    """A coin observed from every source the scanner reads (none from Binance's stream)."""
    env = {"source": "test", "symbol": "PEPE"}
    at = NOW - timedelta(days=3)  # profiled first: market data of other coins is not kept
    out: list = [
        CoinProfileV1(
            event_id="p",
            observed_at=at,
            venue="coingecko",
            name="Pepe",
            market_cap=100e6,
            fdv=200e6,
            circulating_supply=40e6,
            max_supply=100e6,
            total_supply=90e6,
            volume_24h=20e6,
            genesis_at=NOW - timedelta(days=365),  # one year old at NOW
            **env,
        ),
        SocialMetricsV1(
            event_id="s",
            observed_at=at,
            venue="lunarcrush",
            galaxy_score=70,
            alt_rank=100,
            alt_rank_previous=200,
            social_volume_change_pct=50,
            sentiment=80,
            **env,
        ),
        # OI 24 h ago (80 M) and now (100 M), not on Binance: listing comes from its own event
        OpenInterestV1(
            event_id="oi0",
            observed_at=NOW - timedelta(days=1, minutes=5),
            venue="bybit",
            open_interest_usd=80e6,
            source="test",
            symbol="PEPEUSDT",
        ),
        OpenInterestV1(
            event_id="oi1",
            observed_at=NOW - timedelta(minutes=5),
            venue="bybit",
            open_interest_usd=100e6,
            source="test",
            symbol="PEPEUSDT",
        ),
        FundingRateV1(
            event_id="f",
            observed_at=at,
            venue="bybit",
            rate=0.0001,
            source="test",
            symbol="PEPEUSDT",
        ),
        ListingDetectedV1(
            event_id="l",
            observed_at=at,
            base_asset="PEPE",
            quote_asset="USDT",
            onboard_at=at,
            detected_at=at,
            detection_latency_s=0.0,
            source="test",
            symbol="PEPEUSDT",
        ),
    ]
    # 10 whale trades in the last day, and 3 older ones that no longer count
    for k, hours in enumerate([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 25, 30, 48]):
        out.append(
            WhaleTradeV1(
                event_id=f"w{k}",
                observed_at=NOW - timedelta(hours=hours),
                venue="bybit",
                price=1.0,
                size=1e6,
                notional_usd=1e6,
                side="BUY",
                source="test",
                symbol="PEPEUSDT",
            )
        )
    return out


def _scanner(cfg: MssConfig | None = None) -> MssScanner:
    scanner = MssScanner(cfg)
    for ev in sorted(_events(), key=lambda e: e.observed_at):
        scanner.observe(ev)
    return scanner


# worked by hand from the inputs above
DISCOVERY = {
    "market_cap_band": 100.0,  # 10 M <= 100 M <= 500 M
    "fdv_ratio": 75.0,  # FDV / market cap = 2: 100 - 25 x (2 - 1)
    "circulating_share": 40.0,  # 40 M of a 100 M max supply (max wins over total)
    "age": 100.0,  # one year old: 30 d <= age < 2 y
    "volume_to_mcap": 40.0,  # 200 x 20 M / 100 M
}
SOCIAL = {
    "galaxy_score": 70.0,
    "alt_rank": 100 * (1 - 99 / 999),  # rank 100 -> 90.09
    "alt_rank_improvement": 100.0,  # 200 -> 100: improved by half of 200 = full pull
    "social_volume_growth": 75.0,  # +50 %: 50 + 50 x 0.5
    "sentiment": 80.0,
}
INSTITUTIONAL = {
    "open_interest": 100 * (8 - 6) / 3,  # 100 M USD: log10 = 8 -> 66.67
    "oi_growth": 75.0,  # 80 M -> 100 M = +25 %: 50 + 50 x 0.25 / 0.5
    "funding": 100.0,  # exactly the neutral 0.01 %
    "whale_trades": 50.0,  # 10 in the last 24 h of the 20 that count fully
    "listed_binance_futures": 100.0,  # from the listing event
}


def _mean(parts: dict[str, float]) -> float:
    return sum(parts.values()) / len(parts)


def test_worked_phase_scores_mss_and_tier() -> None:
    scanner = _scanner()
    c = scanner.coins["PEPE"]
    d, s, i = discovery(c, NOW_S), social_momentum(c), institutional(c, NOW_S)
    assert d[0] == pytest.approx(71.0)
    assert s[0] == pytest.approx(83.018, abs=1e-4)
    assert i[0] == pytest.approx(78.3333, abs=1e-4)
    for phase, parts in ((d, DISCOVERY), (s, SOCIAL), (i, INSTITUTIONAL)):
        assert phase[0] == pytest.approx(round(_mean(parts), 4))
        assert phase[2] == ()  # nothing missing
        for k, v in parts.items():
            assert phase[1][f"{k}_score"] == pytest.approx(round(v, 3))
    assert i[1]["whale_trades_24h"] == 10 and i[1]["oi_growth_24h"] == pytest.approx(0.25)
    mss, *_ = score_coin(c, NOW_S, MssConfig())
    expected = (30 * _mean(DISCOVERY) + 35 * _mean(SOCIAL) + 35 * _mean(INSTITUTIONAL)) / 100
    assert mss == pytest.approx(expected, abs=1e-3)
    assert mss == pytest.approx(77.773, abs=1e-3)
    assert tier(mss) == "B"

    (event,) = scanner.scan(NOW_S)
    assert event.coin == "PEPE" and event.name == "Pepe" and event.tier == "B"
    assert event.mss == mss
    assert event.binance_symbol == "PEPEUSDT"
    assert event.discovery.score == d[0]
    assert event.social_momentum.score == s[0]
    assert event.institutional_validation.score == i[0]
    assert event.observed_at == NOW


def test_phase_without_inputs_is_neutral_and_lists_what_is_missing() -> None:
    c = CoinInputs("NEW")
    d, s, i = discovery(c, NOW_S), social_momentum(c), institutional(c, NOW_S)
    assert d[0] == 50.0 and set(d[2]) == set(DISCOVERY)
    assert s[0] == 50.0 and set(s[2]) == set(SOCIAL)
    # no whale trade and no listing ever seen is missing, not 0 (audit defect 4)
    assert set(i[2]) == set(INSTITUTIONAL) and i[0] == 50.0
    assert i[1]["whale_trades_24h"] is None and i[1]["listed_binance_futures"] is None
    assert score_coin(c, NOW_S, MssConfig())[0] == 50.0
    assert confidence((d, s, i), MssConfig()) == 0.0
    for phase, parts in zip((d, s, i), PARTS, strict=True):
        assert set(phase[2]) == set(parts)  # what confidence counts is every sub-score


def test_unknown_whales_and_listing_lower_confidence_not_the_score() -> None:
    """Regression (audit defect 4): a coin with no whale feed and not seen on Binance was
    scored 0 on both, which dragged a good coin's MSS down as if it had been observed."""
    events = [e for e in _events() if not isinstance(e, WhaleTradeV1 | ListingDetectedV1)]
    scanner = MssScanner(MssConfig(threshold=0))
    for ev in events:
        scanner.observe(ev)
    (event,) = scanner.scan(NOW_S)
    inst = event.institutional_validation
    assert inst.missing == ("whale_trades", "listed_binance_futures")
    assert inst.inputs["whale_trades_score"] is None
    assert inst.inputs["listed_binance_futures_score"] is None
    # the phase is the mean of what is known: OI 66.67, OI growth 75, funding 100
    assert inst.score == pytest.approx((100 * 2 / 3 + 75 + 100) / 3, abs=1e-3)
    # 2 of the 5 institutional sub-scores missing: 35 % weight x 2/5 = 14 points
    assert event.confidence == pytest.approx(86.0)
    (full,) = _scanner(MssConfig(threshold=0)).scan(NOW_S)
    assert full.confidence == 100.0
    assert event.binance_symbol is None


def test_a_whale_feed_that_saw_the_coin_counts_a_quiet_day_as_zero() -> None:
    c = CoinInputs("X")
    c.whales.append(NOW_S - 3 * DAY_S)  # covered by the feed, but nothing in the last 24 h
    _, inputs, missing = institutional(c, NOW_S)
    assert "whale_trades" not in missing and inputs["whale_trades_score"] == 0.0


def test_non_positive_open_interest_is_missing_not_an_error() -> None:
    c = CoinInputs("X")
    for value in (0.0, -5.0):
        c.oi_usd.clear()
        c.oi_usd.append(Point(NOW_S - 60, value))
        _, inputs, missing = institutional(c, NOW_S)
        assert "open_interest" in missing and inputs["open_interest_score"] is None


@pytest.mark.parametrize(
    ("mss", "letter"),
    [
        (100, "A"),
        (80, "A"),
        (79.9999, "B"),
        (65, "B"),
        (64.9999, "C"),
        (50, "C"),
        (49.9999, "D"),
        (0, "D"),
    ],
)
def test_tier_thresholds(mss: float, letter: str) -> None:
    assert tier(mss) == letter


def test_published_at_the_threshold_and_not_below() -> None:
    mss = score_coin(_scanner().coins["PEPE"], NOW_S, MssConfig())[0]
    assert len(_scanner(MssConfig(threshold=mss)).scan(NOW_S)) == 1
    assert _scanner(MssConfig(threshold=mss + 1e-4)).scan(NOW_S) == []


def test_only_profiled_coins_are_scored() -> None:
    scanner = MssScanner(MssConfig(threshold=0))
    # market data alone does not put a coin in the discovery universe
    scanner.observe(_events()[2])
    assert scanner.coins == {}
    scanner.observe(_events()[-1])  # a whale trade of an unknown coin is ignored too
    assert scanner.scan(NOW_S) == []


def test_cadence_is_event_time() -> None:
    scanner = _scanner(MssConfig(threshold=0, interval_s=900))
    start = 900 * 1_900_000  # 2024: event times cannot be ahead of now
    assert scanner.due(start + 10) == []  # first bucket seen: nothing yet
    assert scanner.due(start + 899) == []  # same bucket
    (ev,) = scanner.due(start + 905)  # next bucket: scored at its start
    assert ev.observed_at.timestamp() == start + 900
    assert scanner.due(start + 1000) == []


finite = st.floats(allow_nan=False, allow_infinity=False, min_value=-1e15, max_value=1e15)
maybe = st.none() | finite
positive = st.none() | st.floats(min_value=-1e6, max_value=1e13, allow_nan=False)


@settings(max_examples=300, deadline=None)
@given(
    market_cap=maybe,
    fdv=maybe,
    circulating=maybe,
    total=maybe,
    max_supply=maybe,
    volume=maybe,
    age_days=st.none() | st.floats(min_value=-100, max_value=10_000),
    galaxy=maybe,
    rank=st.none() | st.integers(-10, 100_000),
    previous=st.none() | st.integers(-10, 100_000),
    social_change=maybe,
    sentiment=maybe,
    oi_then=positive,
    oi_now=positive,
    funding=maybe,
    whales=st.integers(0, 60),
    listed=st.booleans(),
)
def test_phase_scores_and_mss_stay_in_bounds(
    market_cap: float | None,
    fdv: float | None,
    circulating: float | None,
    total: float | None,
    max_supply: float | None,
    volume: float | None,
    age_days: float | None,
    galaxy: float | None,
    rank: int | None,
    previous: int | None,
    social_change: float | None,
    sentiment: float | None,
    oi_then: float | None,
    oi_now: float | None,
    funding: float | None,
    whales: int,
    listed: bool,
) -> None:
    c = CoinInputs(
        "X",
        market_cap=market_cap,
        fdv=fdv,
        circulating_supply=circulating,
        total_supply=total,
        max_supply=max_supply,
        volume_24h=volume,
        genesis_s=None if age_days is None else NOW_S - age_days * DAY_S,
        galaxy_score=galaxy,
        alt_rank=rank,
        alt_rank_previous=previous,
        social_volume_change_pct=social_change,
        sentiment=sentiment,
        funding_rate=funding,
        listed=listed,
    )
    if oi_then is not None:
        c.oi_usd.append(Point(NOW_S - DAY_S - 60, oi_then))
    if oi_now is not None:
        c.oi_usd.append(Point(NOW_S - 60, oi_now))
    c.whales.extend(NOW_S - 3600 * k for k in range(whales))
    mss, *phases = score_coin(c, NOW_S, MssConfig())
    for (score, inputs, missing), parts in zip(
        phases, (DISCOVERY, SOCIAL, INSTITUTIONAL), strict=True
    ):
        assert 0 <= score <= 100 and not math.isnan(score)
        for part in parts:
            v = inputs[f"{part}_score"]
            assert v is None or 0 <= v <= 100, part
        assert all(inputs[f"{m}_score"] is None for m in missing)
    assert 0 <= mss <= 100
    assert tier(mss) == ("A" if mss >= 80 else "B" if mss >= 65 else "C" if mss >= 50 else "D")
