"""What a Telegram user reads for each alert kind, and that Telegram would accept the HTML."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from html import unescape
from pathlib import Path

import pytest

from perpsignal_common.db.models.ingestor import KnownSymbol
from perpsignal_common.events.market import ListingDetectedV1
from perpsignal_connectors.binance_usdm.schemas import Ticker24h
from perpsignal_ingestor.listings import listing_event
from perpsignal_ingestor.universe import Universe
from perpsignal_notifier.filters import FilterRules, suppression_reason
from perpsignal_notifier.render import render_listing, render_mss, render_signal
from tests.fakes.telegram import TAG, check_html
from tests.unit.notifier.builders import judged, listing, mss


def visible(html: str) -> str:
    assert check_html(html) is None, check_html(html)
    return unescape(TAG.sub("", html))


def test_long_alert_shows_verdict_sizing_plan_and_factors() -> None:
    event = judged()  # the rule judge's strongest CONFIRM LONG, scored at 65,000
    layer = event.ai_verdict_layer
    vol = layer.volatility_metrics
    assert vol.stop_loss_price is not None and vol.take_profit_price is not None
    assert vol.risk_reward is not None and vol.atr_pct is not None
    stop, target = vol.stop_loss_price, vol.take_profit_price
    text = visible(render_signal(event))
    lines = text.splitlines()
    assert lines[0] == "🟢 LONG BTCUSDT · 1h"
    assert f"Score {event.score:.1f}/100 · Confidence {event.confidence:.0f}%" in text
    assert f"Verdict CONFIRM · Risk mode {layer.risk_mode}" in text
    # the judge's position multiplier, then the volatility class's
    assert f"risk x{layer.position_multiplier:.2f}" in text
    assert (
        f"volatility x{vol.recommended_position_multiplier:.2f} "
        f"({vol.volatility_class}, ATR {vol.atr_pct:.2f}%)"
    ) in text
    assert "Entry: 65,000.00" in text
    # a LONG's stop is below the entry, its target above, each with its distance in %
    assert stop < 65000 < target
    assert f"Stop loss: {stop:,.2f} ({(stop / 65000 - 1) * 100:+.2f}%)" in text
    assert f"Take profit: {target:,.2f} (+{(target / 65000 - 1) * 100:.2f}%)" in text
    assert f"Risk/reward: {vol.risk_reward:.2f}" in text
    scores: dict[str, float] = {f.name: f.score for f in event.factors}
    top = ", ".join(f"{n.replace('_', ' ')} ({scores[n]:.0f})" for n in event.top_factors)
    assert f"Top factors: {top}" in text
    assert f"• {layer.layer_checks.agreements[0]}" in text
    assert layer.ai_summary in text


def test_alert_lists_the_judges_conflicts() -> None:
    event = judged(verdict="DOWNSIZE")  # the rule judge downsizes because of conflicts
    conflicts = event.ai_verdict_layer.layer_checks.conflicts
    assert conflicts
    assert f"Conflicts:\n• {conflicts[0]}" in visible(render_signal(event))


def test_short_alert_has_stop_above_and_target_below_entry() -> None:
    event = judged("ETHUSDT", direction="SHORT", score=22.0, price=3000.0)
    vol = event.ai_verdict_layer.volatility_metrics
    assert vol.stop_loss_price is not None and vol.take_profit_price is not None
    stop, target = vol.stop_loss_price, vol.take_profit_price
    text = visible(render_signal(event))
    assert text.splitlines()[0] == "🔴 SHORT ETHUSDT · 1h"
    assert target < 3000 < stop
    assert f"Stop loss: {stop:,.2f} (+{(stop / 3000 - 1) * 100:.2f}%)" in text
    assert f"Take profit: {target:,.2f} ({(target / 3000 - 1) * 100:.2f}%)" in text


@pytest.mark.parametrize("price", [3e-9, 1.2345e-6])
def test_a_memecoin_price_keeps_its_significant_digits(price: float) -> None:
    """Prices were cut to 8 decimals: a coin quoted at 3e-9 (the contract goes down to 1e-12)
    read entry 0, stop 0 and target 0, and one at 1.2e-6 kept 3 digits."""
    event = judged("TINYUSDT", price=price)  # the real scorer and judge at that price level
    vol = event.ai_verdict_layer.volatility_metrics
    assert vol.stop_loss_price is not None and vol.take_profit_price is not None
    text = visible(render_signal(event))
    shown = {
        label: float(line.split(": ")[1].split(" ")[0])
        for line in text.splitlines()
        for label in ("Entry", "Stop loss", "Take profit")
        if line.startswith(label + ": ")
    }
    for label, level in (
        ("Entry", event.price),
        ("Stop loss", vol.stop_loss_price),
        ("Take profit", vol.take_profit_price),
    ):
        assert shown[label] == pytest.approx(level, rel=1e-4), label  # 5 significant digits
    assert shown["Stop loss"] < shown["Entry"] < shown["Take profit"]
    plan = [line for line in text.splitlines() if line.split(":")[0] in shown]
    assert not [line for line in plan if "e-" in line]  # decimals, as an order form takes them


def test_missing_trade_plan_is_shown_as_unavailable_not_invented() -> None:
    # the rule judge gives no plan when too few candles for an ATR (early signals: it then
    # takes no trade, WAIT `no_trade_plan`, and its alert must not invent one either)
    event = judged(verdict="WAIT", direction="SHORT", plan=False)
    assert event.ai_verdict_layer.volatility_metrics.stop_loss_price is None
    text = visible(render_signal(event))
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


def utf16_len(text: str) -> int:
    """Telegram counts message length in UTF-16 code units (an emoji is two)."""
    return len(text.encode("utf-16-le")) // 2


def test_emoji_heavy_judge_output_still_fits_telegrams_utf16_limit() -> None:
    # LLM judges like emoji and math-bold letters: each is one code point but two UTF-16
    # units, and Telegram's 4096 limit counts UTF-16 units ("message is too long" otherwise)
    bold = "\U0001d401\U0001d414\U0001d40b\U0001d40b"  # math-bold BULL
    many = tuple(f"📈 {bold} " * 60 for _ in range(40))
    event = judged(summary="🚀 " * 5000, agreements=many, conflicts=many)
    event = event.model_copy(
        update={
            "ai_verdict_layer": event.ai_verdict_layer.model_copy(
                update={
                    "volatility_metrics": event.ai_verdict_layer.volatility_metrics.model_copy(
                        update={"trade_plan_summary": "🎯" * 2000}
                    )
                }
            )
        }
    )
    text = visible(render_signal(event))
    assert utf16_len(text) <= 4096
    assert "… and 35 more" in text
    assert text.splitlines()[0] == "🟢 LONG BTCUSDT · 1h"
    assert "🚀 🚀" in text and "🎯🎯" in text  # the judge's text is cut, not dropped


def test_a_listing_announced_ahead_of_its_launch_says_so(shared_data: Path) -> None:
    """Binance lists a perpetual before trading opens: the ingestor's event then has a
    negative detection delay and, from the ticker, a last price of 0 (the contract's "no
    trade yet"). The alert read "Detected -7200s after onboarding", "Last price: 0",
    "24h change: +0.00%" and "24h volume: $0.00"."""
    now = datetime.now(UTC).replace(microsecond=0)
    row = KnownSymbol(
        venue="binance",
        symbol="币安人生USDT",
        base_asset="币安人生",
        quote_asset="USDT",
        onboard_at=now + timedelta(hours=2),
        first_seen_at=now,
        announce=True,
    )
    doc = json.loads(
        (shared_data / "api/binance_usdm/fapi_v1_ticker_24hr.doc_current.json").read_text()
    )
    pending = {**doc, "symbol": row.symbol, "lastPrice": "0.0000000", "priceChange": "0"}
    pending |= {"priceChangePercent": "0.000", "volume": "0", "quoteVolume": "0", "count": 0}
    universe = Universe(["*"])
    universe.update_tickers([Ticker24h.model_validate(pending)])
    event = listing_event(row, universe)  # the ingestor's own event
    event = ListingDetectedV1.model_validate_json(event.model_dump_json())
    assert event.detection_latency_s == -7200 and event.last_price == 0
    text = visible(render_listing(event))
    assert "Announced 2h 0m before trading opens" in text
    assert f"Onboard: {(now + timedelta(hours=2)):%Y-%m-%d %H:%M} UTC" in text
    assert "Last price: no trade yet" in text
    assert "-7200" not in text and "24h" not in text
    # once trading: the delay and the ticker's numbers as before
    traded = {**pending, "lastPrice": "0.01234", "priceChangePercent": "12.5"}
    universe.update_tickers([Ticker24h.model_validate(traded | {"quoteVolume": "3400000"})])
    row.onboard_at, row.first_seen_at = now - timedelta(seconds=42), now
    text = visible(render_listing(listing_event(row, universe)))
    assert "Detected 42s after onboarding" in text
    assert "Last price: 0.01234" in text and "24h change: +12.50%" in text


def test_a_wait_without_a_trade_plan_is_alerted_with_its_reason_and_no_invented_sizes() -> None:
    """The rule judge's WAIT `no_trade_plan` (no ATR yet: too few candles) is published
    unsuppressed so the alert says why; its volatility multiplier is absent and read
    "volatility xn/a"."""
    event = judged(verdict="WAIT", plan=False)
    layer = event.ai_verdict_layer
    assert layer.risk_mode == "REDUCED" and not layer.suppressed
    assert suppression_reason(event, FilterRules()) is None  # it is sent
    text = visible(render_signal(event))
    assert "Verdict WAIT · Risk mode REDUCED" in text
    assert "Size: risk x0.00 · volatility n/a\n" in text
    assert "no stop loss can be set" in text  # the judge's reason, in its summary
