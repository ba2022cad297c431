"""What a Telegram user reads for each alert kind, and that Telegram would accept the HTML."""

from __future__ import annotations

from html import unescape

import pytest

from perpsignal_notifier.render import render_listing, render_mss, render_signal
from tests.fakes.telegram import TAG, check_html
from tests.unit.notifier.builders import judged, listing, mss


def visible(html: str) -> str:
    assert check_html(html) is None, check_html(html)
    return unescape(TAG.sub("", html))


def test_long_alert_shows_verdict_sizing_plan_and_factors() -> None:
    text = visible(render_signal(judged()))
    lines = text.splitlines()
    assert lines[0] == "🟢 LONG BTCUSDT · 1h"
    assert "Score 78.0/100 · Confidence 72%" in text
    assert "Verdict CONFIRM · Risk mode NORMAL" in text
    # position multiplier 0.8 from the judge, volatility multiplier 1.0 from the ATR class
    assert "risk x0.80" in text
    assert "volatility x1.00 (NORMAL, ATR 1.25%)" in text
    assert "Entry: 65,000.00" in text
    # stop 63,700 is 1,300 below 65,000 = -2 %; target 67,600 is 2,600 above = +4 %
    assert "Stop loss: 63,700.00 (-2.00%)" in text
    assert "Take profit: 67,600.00 (+4.00%)" in text
    assert "Risk/reward: 2.00" in text
    assert "Top factors: funding (81), momentum (74), liquidations (69)" in text
    assert "• funding supports LONG" in text
    assert "Conflicts:\n• social sentiment is bearish" in text
    assert "Funding and momentum agree; open interest is rising." in text


def test_short_alert_has_stop_above_and_target_below_entry() -> None:
    event = judged(
        "ETHUSDT", direction="SHORT", score=22.0, price=3000.0, stop=3090.0, target=2820.0
    )
    text = visible(render_signal(event))
    assert text.splitlines()[0] == "🔴 SHORT ETHUSDT · 1h"
    # 3090 is 90 above 3000 = +3 %; 2820 is 180 below = -6 %
    assert "Stop loss: 3,090.00 (+3.00%)" in text
    assert "Take profit: 2,820.00 (-6.00%)" in text


def test_missing_trade_plan_is_shown_as_unavailable_not_invented() -> None:
    text = visible(render_signal(judged(stop=None, target=None, risk_reward=None)))
    assert "Stop loss: n/a" in text
    assert "Take profit: n/a" in text
    assert "Risk/reward: n/a" in text


def test_external_strings_are_escaped() -> None:
    hostile = "<script>alert('x')</script> & <b>bold</b> &amp;"
    event = judged(summary=hostile, agreements=(hostile,), conflicts=("a < b && c > d",))
    html = render_signal(event)
    assert "<script>" not in html
    text = visible(html)  # Telegram accepts it ...
    assert hostile in text  # ... and shows the text exactly as the judge wrote it
    assert "a < b && c > d" in text


def test_huge_judge_output_still_fits_one_telegram_message() -> None:
    many = tuple(f"reason {i} " + "x" * 400 for i in range(40))
    text = visible(render_signal(judged(summary="y" * 10_000, agreements=many, conflicts=many)))
    assert len(text) <= 4096
    assert "… and 35 more" in text


def test_mss_alert_has_three_phases_and_tier() -> None:
    text = visible(render_mss(mss()))
    assert text.splitlines()[0] == "🚀 MSS PEPE (Pepe <Frog> & Co) · tier A"
    assert "MSS 82.0/100" in text
    assert "1. Discovery: 70.5" in text
    assert "2. Social momentum: 91.0 (missing: galaxy_score)" in text
    assert "3. Institutional validation: 64.2" in text
    assert "Binance: PEPEUSDT" in text


def test_listing_alert_has_onboard_time() -> None:
    text = visible(render_listing(listing()))
    assert text.splitlines()[0] == "🆕 New listing: NEWUSDT on binance"
    assert "Onboard: 2026-11-21 08:30 UTC" in text
    assert "Detected 42s after onboarding" in text
    assert "Last price: 0.01234" in text
    assert "24h volume: $3.40M" in text


@pytest.mark.parametrize(
    ("html", "ok"),
    [
        ("<b>x</b> &amp; <i>y</i>", True),
        ("a & b", False),
        ("<b>x", False),
        ("<div>x</div>", False),
        ("1 < 2", False),
    ],
)
def test_fake_server_html_check_matches_telegram_rules(html: str, ok: bool) -> None:
    assert (check_html(html) is None) is ok
