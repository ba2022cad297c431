"""Pure alert rules: which signals are worth a message, and symbol normalisation.

Score semantics: the scorer's `score` is bullishness (LONG >= its long threshold, SHORT <= its
short threshold), so filters compare the *directional strength*: `score` for LONG and
`100 - score` for SHORT. NEUTRAL signals carry no trade plan and never alert.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime

from perpsignal_common.events.signals import SignalJudgedV1

QUOTES = ("USDT", "USDC", "BUSD", "FDUSD", "USD")
ALL = "*"
# the asset columns (subscriptions, symbol state) hold 32 characters; a symbol may have 64
MAX_ASSET_LEN = 32


@dataclass(frozen=True)
class FilterRules:
    """Global suppression rules (settings), shared by every destination."""

    min_score: float = 0.0
    min_confidence: float = 0.0
    suppress_skip_avoid: bool = True
    cooldown_s: float = 900.0
    mss_min_score: float = 60.0


def base_asset(symbol: str) -> str:
    """Return the base asset of a symbol: `BTCUSDT` -> `BTC`, `btc` -> `BTC`.

    At most `MAX_ASSET_LEN` characters: a longer one (the contract allows 64-character
    symbols) is cut, which only ever merges two such freaks under one key.
    """
    s = symbol.strip().upper().replace("/", "").replace("-", "")
    for quote in QUOTES:
        if s.endswith(quote) and len(s) > len(quote):
            return s[: -len(quote)][:MAX_ASSET_LEN]
    return s[:MAX_ASSET_LEN]


# Venues list coins priced in fractions of a cent as contracts on a multiple of the coin:
# Binance's 1000PEPEUSDT is 1,000 PEPE, 1000000MOGUSDT a million MOG, 1MBABYDOGEUSDT a
# million BABYDOGE; Bybit adds 10000LADYSUSDT and the like. Only these exact multiples, and
# only before a letter: 1INCH stays 1INCH, and PEPECOIN (another coin) is never PEPE.
SCALES = ("1000000", "100000", "10000", "1000", "1M")
_SCALED = re.compile(rf"(?:{'|'.join(SCALES)})([^\W\d_]\w*)")


def unscaled(asset: str) -> str:
    """Return the coin a scaled contract's base asset counts (`1000PEPE` -> `PEPE`), else
    `asset` itself."""
    m = _SCALED.fullmatch(asset)
    return m.group(1) if m else asset


def subscription_keys(asset: str) -> list[str]:
    """Return the subscriptions an alert about `asset` reaches: its own and, for a scaled
    contract, its coin's (`/subscribe PEPE` covers 1000PEPEUSDT; `/subscribe 1000PEPE`
    names that contract alone)."""
    coin = unscaled(asset)
    return [asset] if coin == asset else [asset, coin]


def covered_assets(asset: str) -> list[str]:
    """Return the base assets a subscription to `asset` covers: itself and, for a coin, its
    scaled contracts (`PEPE` -> `PEPE`, `1000PEPE`, ...); the inverse of subscription_keys."""
    if unscaled(asset) != asset:
        return [asset]
    return [asset, *(f"{scale}{asset}" for scale in SCALES)]


def strength(event: SignalJudgedV1) -> float:
    """Return the directional strength 0-100 the score filters compare against."""
    if event.direction == "LONG":
        return event.score
    if event.direction == "SHORT":
        return 100.0 - event.score
    return 0.0


def suppression_reason(event: SignalJudgedV1, rules: FilterRules) -> str | None:
    """Return why a judged signal must not alert anyone, or None when it may."""
    layer = event.ai_verdict_layer
    if event.direction == "NEUTRAL":
        return "neutral"
    if rules.suppress_skip_avoid and (
        layer.suppressed or layer.verdict == "SKIP" or layer.risk_mode == "AVOID"
    ):
        return "skip_avoid"
    if strength(event) < rules.min_score:
        return "below_min_score"
    if event.confidence < rules.min_confidence:
        return "below_min_confidence"
    return None


def in_cooldown(
    *,
    event_id: str,
    observed_at: datetime,
    last_alert_event_id: str | None,
    last_alert_at: datetime | None,
    cooldown_s: float,
    call: str | None = None,
    last_call: str | None = None,
) -> bool:
    """Return True when another alert of the symbol is within `cooldown_s` of this event.

    Event time, not wall time, so replays decide the same way; the event that started the
    cooldown is never in its own cooldown, so a redelivered alert still reaches every chat.
    `call`/`last_call` ("LONG:WAIT", see `alert_call`): a call that upgrades the last one in
    the same direction (WAIT, then DOWNSIZE or CONFIRM) is not held back, or the "wait"
    would silence the "go" it announced; a reversal within the cooldown stays quiet (choppy).
    """
    if last_alert_at is None or last_alert_event_id == event_id or cooldown_s <= 0:
        return False
    if abs((observed_at - last_alert_at).total_seconds()) >= cooldown_s:
        return False
    return not _upgrades(call, last_call)


# how actionable a verdict is: a higher one upgrades the call within the cooldown
VERDICT_RANK = {"SKIP": 0, "WAIT": 1, "DOWNSIZE": 2, "CONFIRM": 3}


def alert_call(event: SignalJudgedV1) -> str:
    """Return a signal alert's call for the cooldown: `DIRECTION:VERDICT`."""
    return f"{event.direction}:{event.ai_verdict_layer.verdict}"


def _upgrades(call: str | None, last_call: str | None) -> bool:
    if call is None or last_call is None:
        return False  # an MSS alert, or a last alert from before calls were kept
    direction, _, verdict = call.partition(":")
    last_direction, _, last_verdict = last_call.partition(":")
    return direction == last_direction and VERDICT_RANK.get(verdict, -1) > VERDICT_RANK.get(
        last_verdict, 99
    )
