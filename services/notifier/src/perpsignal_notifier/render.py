"""Pure HTML rendering of alerts and command replies (Telegram's HTML parse mode).

Every string that comes from outside this module (symbols, names, summaries, factor notes) goes
through `html.escape`; numbers are formatted here. Long free text is cut *before* escaping so
an entity is never split, and lists are capped so a message stays under Telegram's 4096 chars
(counted, like Telegram does, in UTF-16 code units).
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from html import escape

from perpsignal_common.events.market import ListingDetectedV1
from perpsignal_common.events.signals import (
    MssScoredV1,
    PhaseScore,
    SignalJudgedV1,
    VolatilityMetrics,
)

MAX_ITEMS = 5
MAX_TEXT = 700
TELEGRAM_MAX_CHARS = 4096
DIRECTION_ICON = {"LONG": "🟢", "SHORT": "🔴", "NEUTRAL": "⚪"}


def esc(value: object) -> str:
    """Escape any value for Telegram HTML."""
    return escape(str(value), quote=True)


def utf16_len(text: str) -> int:
    """Return the length Telegram counts: UTF-16 code units (an emoji is two)."""
    return len(text.encode("utf-16-le")) // 2


def _cut(text: str, limit: int = MAX_TEXT) -> str:
    """Collapse whitespace and cut to `limit` UTF-16 units (Telegram's unit), adding `…`.

    Counting code points instead let emoji-heavy judge text reach ~5,500 units: Telegram
    refuses that ("message is too long") and the alert was dead-lettered for every chat.
    """
    text = " ".join(text.split())
    if utf16_len(text) <= limit:
        return text
    units = 0
    for i, ch in enumerate(text):
        units += 2 if ord(ch) > 0xFFFF else 1
        if units > limit - 1:  # one unit is kept for the ellipsis
            return text[:i].rstrip() + "…"
    return text


def fmt_price(value: float | None) -> str:
    """Format a price with precision that suits its magnitude."""
    if value is None:
        return "n/a"
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.2f}"
    if magnitude >= 1:
        return f"{value:.4f}"
    if magnitude == 0:
        return "0"
    return f"{value:.8f}".rstrip("0").rstrip(".")


def fmt_pct_from(entry: float, level: float | None) -> str:
    """Return the signed distance of `level` from `entry` in percent."""
    if level is None or entry == 0:
        return ""
    return f" ({(level - entry) / entry * 100:+.2f}%)"


def fmt_num(value: float | None, digits: int = 1) -> str:
    """Format an optional number."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def fmt_usd(value: float | None) -> str:
    """Format a dollar amount compactly."""
    if value is None:
        return "n/a"
    for div, unit in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if abs(value) >= div:
            return f"${value / div:.2f}{unit}"
    return f"${value:.2f}"


def fmt_time(value: datetime) -> str:
    """Format an aware datetime as UTC minutes."""
    return value.strftime("%Y-%m-%d %H:%M UTC")


def _bullets(items: Iterable[str]) -> list[str]:
    items = list(items)
    out = [f"• {esc(_cut(item, 200))}" for item in items[:MAX_ITEMS]]
    if len(items) > MAX_ITEMS:
        out.append(f"• … and {len(items) - MAX_ITEMS} more")
    return out


def _top_factors(event: SignalJudgedV1) -> str:
    by_name = {f.name: f for f in event.factors}
    parts = []
    for name in event.top_factors[:3]:
        f = by_name.get(name)  # type: ignore[call-overload]
        label = esc(name.replace("_", " "))
        parts.append(f"{label} ({f.score:.0f})" if f is not None else label)
    return ", ".join(parts) if parts else "n/a"


def _sizing(position_multiplier: float, vol: VolatilityMetrics) -> str:
    line = f"Size: risk x{position_multiplier:.2f} · volatility x"
    line += fmt_num(vol.recommended_position_multiplier, 2)
    if vol.volatility_class:
        atr = f", ATR {vol.atr_pct:.2f}%" if vol.atr_pct is not None else ""
        line += f" ({esc(vol.volatility_class)}{atr})"
    return line


def render_signal(event: SignalJudgedV1) -> str:
    """Render a judged LONG/SHORT signal: verdict, sizing, trade plan, factors, summary."""
    layer = event.ai_verdict_layer
    vol = layer.volatility_metrics
    icon = DIRECTION_ICON.get(event.direction, "⚪")
    lines = [
        f"{icon} <b>{esc(event.direction)} {esc(event.symbol)}</b> · {esc(event.timeframe)}",
        f"Score <b>{event.score:.1f}</b>/100 · Confidence <b>{event.confidence:.0f}%</b>",
        f"Verdict <b>{esc(layer.verdict)}</b> · Risk mode <b>{esc(layer.risk_mode)}</b>"
        f" · judge: {esc(layer.judge)}",
        _sizing(layer.position_multiplier, vol),
        "",
        f"Entry: <code>{fmt_price(event.price)}</code>",
        f"Stop loss: <code>{fmt_price(vol.stop_loss_price)}</code>"
        + fmt_pct_from(event.price, vol.stop_loss_price),
        f"Take profit: <code>{fmt_price(vol.take_profit_price)}</code>"
        + fmt_pct_from(event.price, vol.take_profit_price),
        f"Risk/reward: <b>{fmt_num(vol.risk_reward, 2)}</b>",
        "",
        f"Top factors: {_top_factors(event)}",
    ]
    if layer.layer_checks.agreements:
        lines += ["✅ Supporting:", *_bullets(layer.layer_checks.agreements)]
    if layer.layer_checks.conflicts:
        lines += ["⚠️ Conflicts:", *_bullets(layer.layer_checks.conflicts)]
    if layer.ai_summary:
        lines += ["", f"<i>{esc(_cut(layer.ai_summary))}</i>"]
    if vol.trade_plan_summary:
        lines.append(esc(_cut(vol.trade_plan_summary, 300)))
    missing = [*event.missing_factors, *event.stale_factors]
    if missing:
        lines.append("Missing or stale data: " + esc(", ".join(missing)))
    lines.append(f"<i>{fmt_time(event.observed_at)}</i>")
    return "\n".join(lines)


def _phase(label: str, phase: PhaseScore) -> str:
    line = f"{label}: <b>{phase.score:.1f}</b>"
    if phase.missing:
        line += f" (missing: {esc(', '.join(phase.missing))})"
    return line


def render_mss(event: MssScoredV1) -> str:
    """Render an MSS result with its three phases and tier."""
    name = f" ({esc(_cut(event.name, 80))})" if event.name else ""
    lines = [
        f"🚀 <b>MSS {esc(event.coin)}</b>{name} · tier <b>{esc(event.tier)}</b>",
        f"MSS <b>{event.mss:.1f}</b>/100",
        _phase("1. Discovery", event.discovery),
        _phase("2. Social momentum", event.social_momentum),
        _phase("3. Institutional validation", event.institutional_validation),
    ]
    if event.binance_symbol:
        lines.append(f"Binance: <code>{esc(event.binance_symbol)}</code>")
    lines.append(f"<i>{fmt_time(event.observed_at)}</i>")
    return "\n".join(lines)


def render_listing(event: ListingDetectedV1) -> str:
    """Render a new-listing alert with its onboard time."""
    lines = [
        f"🆕 <b>New listing: {esc(event.symbol)}</b> on {esc(event.venue)}",
        f"Pair: {esc(event.base_asset)}/{esc(event.quote_asset)}",
        f"Onboard: <b>{fmt_time(event.onboard_at)}</b>",
        f"Detected {event.detection_latency_s:.0f}s after onboarding",
    ]
    if event.last_price is not None:
        lines.append(f"Last price: <code>{fmt_price(event.last_price)}</code>")
    if event.price_change_pct_24h is not None:
        lines.append(f"24h change: {event.price_change_pct_24h:+.2f}%")
    if event.quote_volume_24h is not None:
        lines.append(f"24h volume: {fmt_usd(event.quote_volume_24h)}")
    return "\n".join(lines)


HELP = "\n".join(
    [
        "<b>PerpSignal bot</b>",
        "/subscribe BTC ETH [min_score] — alerts for these coins (no coin = everything)",
        "/unsubscribe [BTC ...] — stop some or all subscriptions",
        "/signal BTC — latest judged signal",
        "/status — this chat's subscriptions and filters",
        "/mute, /unmute — pause or resume every alert in this chat",
        "/help — this message",
    ]
)
