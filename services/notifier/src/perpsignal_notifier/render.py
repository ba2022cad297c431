"""Pure HTML rendering of alerts and command replies (Telegram's HTML parse mode).

Every string that comes from outside this module (symbols, coin names, timeframes, the judge's
summary, agreements, conflicts, factor names, trade-plan text, command arguments) goes through
`esc`, which, in this order:

1. removes invisible and bidi control characters (Unicode categories Cc, Cf and Cs: U+202A-E
   embeddings and overrides, U+2066-9 isolates, U+200B-F zero-width characters and marks,
   U+2060-4, U+FEFF, soft hyphens...) and collapses whitespace and newlines to one space, so
   upstream text can neither reverse the symbol or the direction on screen, nor hide text,
   nor start a line of its own; a run of combining marks is cut to 4 ("Zalgo" text would
   draw over the lines around it);
2. defuses what Telegram would turn into a link or an action by itself: Telegram finds URLs,
   e-mail addresses, `tg://` links, @mentions and /commands in plain text, even inside
   `<i>`/`<b>` (tdlib's `find_entities`, merged into every sent text; only `<code>`/`<pre>`/
   `<a>` spans are spared), and would make `https://evil.example`, `t.me/x` or `@admin` in an
   LLM summary tappable. A WORD JOINER (U+2060, invisible) goes after each `.` that is
   followed by a character other than a digit (a top-level domain has letters) and after the
   first dot of an IPv4 address, between `:` and `//`, after each `@` and after a `/` that would
   start a command: none of these is a URL, mention or command to Telegram any more (U+2060
   is not a domain character there; U+200D ZERO WIDTH JOINER is, so it would not do), and
   the text still reads the same. Link previews are also disabled on every send
   (`telegram.NO_PREVIEW`);
3. cuts it to a length (UTF-16 code units, Telegram's unit) with `…`, before escaping, so an
   HTML entity is never split;
4. escapes `&`, `<`, `>` and quotes (`html.escape`), so tags in upstream text are shown as
   text and never parsed.

Lists are capped at 5 items, and `fit` is the last guard: a message whose visible text would
pass Telegram's 4096 characters (counted, like Telegram does, in UTF-16 code units after the
tags are parsed) loses whole lines from the end (every line is balanced markup of its own) and
says so, so it is always accepted and never cut inside a tag or an entity.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Iterable
from datetime import datetime
from html import escape, unescape

from perpsignal_common.events.market import ListingDetectedV1
from perpsignal_common.events.signals import (
    MssScoredV1,
    PhaseScore,
    SignalJudgedV1,
    VolatilityMetrics,
)

MAX_ITEMS = 5
MAX_TEXT = 700
MAX_FIELD = 120  # any other upstream string (a symbol is at most 64 by the event contract)
TELEGRAM_MAX_CHARS = 4096
WORD_JOINER = "\u2060"
# where Telegram would start a URL, a mention or a bot command (see the module docstring)
_LINKISH = re.compile(
    r"\.(?=[^\s.\d])"  # a domain's dot: evil.example, t.me, a@b.co (not 3.91)
    r"|(?<=\d)\.(?=\d+\.\d+\.\d)"  # the first dot of an IPv4 address, 1.2.3.4
    r"|:(?=//)"  # a scheme: https://, tg://
    r"|@(?=[A-Za-z0-9_])"  # @mention, user@host
    r"|(?<![\w/<>])/(?=[A-Za-z0-9_])"  # /command (not a/b, </b>, //)
)
_TAG = re.compile(r"<[^>]*>")
# control, format (bidi, zero-width, BOM...) and lone surrogates; not unassigned (Cn): an
# emoji newer than Python's Unicode tables must still show
_INVISIBLE = frozenset({"Cc", "Cf", "Cs"})
# non-spacing and enclosing combining marks: a run longer than MAX_MARKS is "Zalgo" text
_MARKS = frozenset({"Mn", "Me"})
MAX_MARKS = 4  # Vietnamese and Indic text stack 2-3
DIRECTION_ICON = {"LONG": "🟢", "SHORT": "🔴", "NEUTRAL": "⚪"}


def clean(value: object) -> str:
    """Return `value` as one line without control, format (bidi, zero-width) or lone surrogates.

    Whitespace runs (newlines, tabs, U+2028...) become one space; categories Cc, Cf and Cs
    are removed (the ZERO WIDTH JOINER of emoji sequences too: a family emoji shows as its
    members, which is the price of removing every invisible character).
    """
    text = str(value)
    if not text.isprintable():  # fast path: printable text has no Cc, Cf or Cs character
        text = "".join(
            ch if ch.isspace() or unicodedata.category(ch) not in _INVISIBLE else "" for ch in text
        )
    if not text.isascii():
        text = _cap_marks(text)
    return " ".join(text.split())


def _cap_marks(text: str) -> str:
    """Keep at most `MAX_MARKS` combining marks in a row ("Zalgo" text is cut, not removed).

    A letter under hundreds of accents draws over the lines above and below it in every
    Telegram client: a coin name from CoinGecko reaches an MSS alert as the vendor wrote
    it, and only the judge's own texts were capped. No script stacks more than 4.
    """
    kept: list[str] = []
    run = 0
    for ch in text:
        run = run + 1 if unicodedata.category(ch) in _MARKS else 0
        if run <= MAX_MARKS:
            kept.append(ch)
    return "".join(kept)


def defuse(text: str) -> str:
    """Insert a WORD JOINER where Telegram would auto-link a URL, mention or command."""
    return _LINKISH.sub(lambda m: m.group(0) + WORD_JOINER, text)


def esc(value: object, limit: int = MAX_FIELD, *, code: bool = False) -> str:
    """Return upstream `value` as inert Telegram HTML text: cleaned, defused, cut, escaped.

    `code=True`: for the inside of `<code>`, where Telegram links nothing (not defused, so a
    copied value has no invisible characters in it).
    """
    # only a window of a huge value is cleaned (a 1 MB summary took a quarter second):
    # enough to fill `limit` unless the value is mostly invisible characters, blanks or
    # combining marks, and then the "…" still says that the rest was left out
    raw = str(value)
    window = 8 * limit + 256
    text = clean(raw[:window]) + ("…" if len(raw) > window else "")
    return escape(_cut(text if code else defuse(text), limit), quote=True)


def visible_len(html: str) -> int:
    """Return the length Telegram counts for an HTML message: its text after parsing."""
    return utf16_len(unescape(_TAG.sub("", html)))


def utf16_len(text: str) -> int:
    """Return the length Telegram counts: UTF-16 code units (an emoji is two)."""
    return len(text.encode("utf-16-le")) // 2


def _cut(text: str, limit: int) -> str:
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


TRUNCATED = "… (cut: too long for one Telegram message)"


def fit(lines: list[str], last: str | None = None, limit: int = TELEGRAM_MAX_CHARS) -> str:
    """Join balanced HTML `lines` (and `last`, always kept) into one message Telegram accepts.

    Lines are dropped from the end, whole, until the visible text fits `limit` UTF-16 units,
    and a note says so: no tag or entity is ever cut. The per-field caps keep every alert far
    below the limit; this only guards against a producer nobody foresaw.
    """
    tail = [] if last is None else [last]
    text = "\n".join([*lines, *tail])
    if visible_len(text) <= limit:
        return text
    kept = list(lines)
    while kept:
        kept.pop()
        text = "\n".join([*kept, TRUNCATED, *tail])
        if visible_len(text) <= limit:
            return text
    return _cut(TRUNCATED, limit)


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
    # 8 decimals, or 5 significant digits when that needs more: 8 decimals showed a memecoin
    # quoted at 3e-9 (the contract allows 1e-12) as entry 0, stop 0 and target 0, and one at
    # 1.2e-6 with 3 digits, not enough to tell its entry from a tight stop
    decimals = max(8, 4 - math.floor(math.log10(magnitude)))
    return f"{value:.{decimals}f}".rstrip("0").rstrip(".")


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
    out = [f"• {esc(item, 200)}" for item in items[:MAX_ITEMS]]
    if len(items) > MAX_ITEMS:
        out.append(f"• … and {len(items) - MAX_ITEMS} more")
    return out


def _top_factors(event: SignalJudgedV1) -> str:
    by_name = {f.name: f for f in event.factors}
    parts = []
    for name in event.top_factors[:3]:
        f = by_name.get(name)  # type: ignore[call-overload]
        label = esc(name.replace("_", " "), 40)
        parts.append(f"{label} ({f.score:.0f})" if f is not None else label)
    return ", ".join(parts) if parts else "n/a"


def _sizing(position_multiplier: float, vol: VolatilityMetrics) -> str:
    line = f"Size: risk x{position_multiplier:.2f} · volatility "
    multiplier = vol.recommended_position_multiplier  # none without an ATR ("xn/a" read odd)
    line += "n/a" if multiplier is None else f"x{multiplier:.2f}"
    if vol.volatility_class:
        atr = f", ATR {vol.atr_pct:.2f}%" if vol.atr_pct is not None else ""
        line += f" ({esc(vol.volatility_class)}{atr})"
    return line


# how the rule judge's conflict listing the factors without usable data begins
# (perpsignal_domain.judging.rules._gaps)
GAPS_CONFLICT = "missing/stale data:"


def render_signal(event: SignalJudgedV1) -> str:
    """Render a judged LONG/SHORT signal: verdict, sizing, trade plan, factors, summary."""
    layer = event.ai_verdict_layer
    vol = layer.volatility_metrics
    icon = DIRECTION_ICON.get(event.direction, "⚪")
    lines = [
        f"{icon} <b>{esc(event.direction)} {esc(event.symbol)}</b> · {esc(event.timeframe, 16)}",
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
        lines += ["", f"<i>{esc(layer.ai_summary, MAX_TEXT)}</i>"]
    if vol.trade_plan_summary:
        lines.append(esc(vol.trade_plan_summary, 300))
    # the rule judge already lists them (sorted, with any factor not ok) as a conflict: the
    # alert said it twice, in two orders; the line is kept for a judge (an LLM) that does not
    missing = sorted({*event.missing_factors, *event.stale_factors})
    said = any(c.startswith(GAPS_CONFLICT) for c in layer.layer_checks.conflicts)
    if missing and not said:
        lines.append("Missing or stale data: " + esc(", ".join(missing), 300))
    return fit(lines, f"<i>{fmt_time(event.observed_at)}</i>")


def _phase(label: str, phase: PhaseScore) -> str:
    line = f"{label}: <b>{phase.score:.1f}</b>"
    if phase.missing:
        line += f" (missing: {esc(', '.join(phase.missing), 300)})"
    return line


def render_mss(event: MssScoredV1) -> str:
    """Render an MSS result with its three phases and tier."""
    name = f" ({esc(event.name, 80)})" if event.name else ""
    lines = [
        f"🚀 <b>MSS {esc(event.coin)}</b>{name} · tier <b>{esc(event.tier)}</b>",
        f"MSS <b>{event.mss:.1f}</b>/100",
        _phase("1. Discovery", event.discovery),
        _phase("2. Social momentum", event.social_momentum),
        _phase("3. Institutional validation", event.institutional_validation),
    ]
    if event.binance_symbol:
        lines.append(f"Binance: <code>{esc(event.binance_symbol, code=True)}</code>")
    return fit(lines, f"<i>{fmt_time(event.observed_at)}</i>")


def render_listing(event: ListingDetectedV1) -> str:
    """Render a new-listing alert with its onboard time."""
    lines = [
        f"🆕 <b>New listing: {esc(event.symbol)}</b> on {esc(event.venue)}",
        # one string: a cut or odd base asset must not leave "/USDT" a tappable /command
        f"Pair: {esc(f'{event.base_asset}/{event.quote_asset}', 2 * MAX_FIELD)}",
        f"Onboard: <b>{fmt_time(event.onboard_at)}</b>",
        # Binance lists a perpetual ahead of its launch: the ingestor then sees it before
        # the onboard time (a negative delay, shown as "Detected -7200s after onboarding")
        f"Detected {event.detection_latency_s:.0f}s after onboarding"
        if event.detection_latency_s >= 0
        else f"Announced {fmt_duration(-event.detection_latency_s)} before trading opens",
    ]
    if event.last_price == 0:  # the contract's "no trade yet": no price, change or volume
        lines.append("Last price: no trade yet")
    else:
        if event.last_price is not None:
            lines.append(f"Last price: <code>{fmt_price(event.last_price)}</code>")
        if event.price_change_pct_24h is not None:
            lines.append(f"24h change: {event.price_change_pct_24h:+.2f}%")
        if event.quote_volume_24h is not None:
            lines.append(f"24h volume: {fmt_usd(event.quote_volume_24h)}")
    return fit(lines)


def fmt_duration(seconds: float) -> str:
    """Format a duration the way a reader counts it: 45s, 12m, 3h 5m, 2d 4h."""
    s = round(seconds)
    if s < 120:
        return f"{s}s"
    if s < 7200:
        return f"{s // 60}m"
    if s < 2 * 86400:
        return f"{s // 3600}h {s % 3600 // 60}m"
    return f"{s // 86400}d {s % 86400 // 3600}h"


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
