"""Bot commands as plain async functions of (chat, arguments) -> HTML reply.

Kept apart from aiogram's router so the behaviour is one readable table and the router is
only glue; subscriptions live in PostgreSQL through the repository.

Arguments are untrusted: control, bidi and zero-width characters are removed first (PostgreSQL
refuses NUL, and a U+202E would reverse the reply), a coin is letters and digits of at most
`MAX_ASSET_LEN`, and every echo goes through `render.esc` (escaped, defused, capped), so any
argument gets a short reply Telegram accepts.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from perpsignal_notifier.filters import ALL, FilterRules, base_asset
from perpsignal_notifier.render import (
    HELP,
    TELEGRAM_MAX_CHARS,
    clean,
    esc,
    render_signal,
    visible_len,
)
from perpsignal_notifier.repository import NotifierRepository

log = logging.getLogger(__name__)

MAX_ASSETS = 50
# the longest base asset Binance lists is about half of this; below filters.MAX_ASSET_LEN, so
# an asset base_asset() had to cut is never taken for a coin
MAX_ASSET_LEN = 30
# commands that change who receives what: only admins may run them (anyone can find a bot)
ADMIN_COMMANDS = frozenset({"subscribe", "unsubscribe", "mute", "unmute"})
# coins of one /subscribe whose scaled contracts the reply names (a query each; the reply
# stays far below Telegram's 4096 characters)
MAX_SCALED_NOTES = 10


@dataclass(frozen=True)
class CommandContext:
    """Who sent a command and what the notifier is configured with."""

    chat_id: int
    chat_kind: str
    chat_title: str | None
    configured_chats: tuple[int, ...]
    rules: FilterRules
    user_id: int | None = None
    # chat or user ids allowed to run ADMIN_COMMANDS; None = unrestricted (library use)
    admins: frozenset[int] | None = None

    def may_administer(self) -> bool:
        """Return True when the sender or the chat is an admin."""
        if self.admins is None:
            return True
        return self.chat_id in self.admins or (
            self.user_id is not None and self.user_id in self.admins
        )


def check_asset(asset: str) -> str:
    """Return `asset` when it can be a coin (letters and digits, not too long); else raise."""
    if asset != ALL and not (asset.isalnum() and len(asset) <= MAX_ASSET_LEN):
        raise ValueError(f"not a coin: {asset}")
    return asset


def parse_assets(tokens: list[str]) -> list[str]:
    """Return the checked, sorted base assets of command tokens (`*`/`all` = every coin)."""
    if len(tokens) > MAX_ASSETS:
        raise ValueError(f"at most {MAX_ASSETS} coins per command")
    return sorted({check_asset(ALL if t in ("*", "all", "ALL") else base_asset(t)) for t in tokens})


def parse_subscribe_args(args: str | None) -> tuple[list[str], float | None]:
    """Split `/subscribe` arguments into assets and an optional trailing minimum score."""
    tokens = [t.strip(",") for t in clean(args or "").split() if t.strip(",")]
    min_score: float | None = None
    if tokens:
        try:
            min_score = float(tokens[-1])
        except ValueError:
            min_score = None
        else:
            tokens = tokens[:-1]
            if not 0 <= min_score <= 100:
                raise ValueError("the minimum score must be between 0 and 100")
    assets = parse_assets(tokens)
    return (assets or [ALL]), min_score


class Commands:
    """Implement /start /help /subscribe /unsubscribe /signal /status /mute /unmute."""

    def __init__(self, repo: NotifierRepository) -> None:
        self._repo = repo

    async def handle(self, ctx: CommandContext, command: str, args: str | None) -> str:
        """Run one command and return the reply (HTML)."""
        command = command.lower()
        if command in ADMIN_COMMANDS and not await self._may_administer(ctx):
            who = ctx.user_id if ctx.user_id is not None else ctx.chat_id
            return (
                "⛔ Only the bot's admins can change alerts here. Ask the operator to add "
                f"your id ({who}) or this chat's ({ctx.chat_id}) to TELEGRAM_ADMIN_IDS."
            )
        if command in ("start", "help"):
            await self._repo.ensure_chat(ctx.chat_id, ctx.chat_kind, ctx.chat_title)
            return HELP
        if command == "subscribe":
            return await self._subscribe(ctx, args)
        if command == "unsubscribe":
            return await self._unsubscribe(ctx, args)
        if command == "signal":
            return await self._signal(args)
        if command == "status":
            return await self._status(ctx)
        if command in ("mute", "unmute"):
            await self._repo.set_muted(ctx.chat_id, command == "mute")
            return "🔕 Alerts muted in this chat." if command == "mute" else "🔔 Alerts resumed."
        return "Unknown command. " + HELP

    async def chat_upgraded(self, old: int, new: int) -> None:
        """Follow a group Telegram upgraded to a supergroup (its service message said so)."""
        await self._repo.migrate_chat(old, new)
        log.info(
            "group upgraded to a supergroup; following it",
            extra={"chat_id": old, "new_chat_id": new},
        )

    async def _may_administer(self, ctx: CommandContext) -> bool:
        """Return True for an admin, also in a group Telegram upgraded to a supergroup.

        The upgrade gives the chat a new id, while TELEGRAM_ADMIN_IDS (and TELEGRAM_CHAT_IDS)
        still name the old one: the chat is known by both once the notifier has followed it.
        """
        if ctx.may_administer():
            return True
        if ctx.admins is None:
            return False
        return any(old in ctx.admins for old in await self._repo.former_ids(ctx.chat_id))

    async def _subscribe(self, ctx: CommandContext, args: str | None) -> str:
        try:
            assets, min_score = parse_subscribe_args(args)
        except ValueError as exc:
            return f"⚠️ {esc(exc)}"
        await self._repo.ensure_chat(ctx.chat_id, ctx.chat_kind, ctx.chat_title)
        await self._repo.subscribe(ctx.chat_id, assets, min_score)
        what = "every coin" if assets == [ALL] else ", ".join(esc(a) for a in assets)
        floor = f" with score ≥ {min_score:g}" if min_score is not None else ""
        return f"✅ Subscribed to {what}{floor}." + await self._scaled_note(assets)

    async def _scaled_note(self, assets: list[str]) -> str:
        """Name the scaled contracts (1000PEPEUSDT for PEPE) a subscription covers, as far as
        the notifier has seen them: otherwise a user cannot tell PEPE includes them."""
        lines = []
        for asset in assets[:MAX_SCALED_NOTES]:
            if asset == ALL:
                continue
            scaled = [s for s in await self._repo.covered_symbols(asset) if base_asset(s) != asset]
            if scaled:
                shown = ", ".join(esc(s) for s in scaled[:5])
                more = f" and {len(scaled) - 5} more" if len(scaled) > 5 else ""
                lines.append(f"\n{esc(asset)} includes its contracts {shown}{more}.")
        return "".join(lines)

    async def _unsubscribe(self, ctx: CommandContext, args: str | None) -> str:
        try:
            assets = parse_assets(clean(args or "").replace(",", " ").split()) or None
        except ValueError as exc:
            return f"⚠️ {esc(exc)}"
        removed = await self._repo.unsubscribe(ctx.chat_id, assets)
        if assets is None:
            return f"Removed all {len(removed)} subscription(s)."
        if not removed:
            asked = ", ".join("every coin" if a == ALL else a for a in assets)
            return f"No subscription to remove: {esc(asked)}."
        # what was removed, not what was asked: `PEPE` removes `1000PEPE` too
        shown = ", ".join("every coin" if a == ALL else a for a in removed)
        return f"Removed {len(removed)} subscription(s): {esc(shown)}."

    async def _signal(self, args: str | None) -> str:
        token = clean(args or "").split()
        if not token:
            return "Usage: /signal BTC"
        try:
            asset = check_asset(base_asset(token[0]))
        except ValueError as exc:
            return f"⚠️ {esc(exc)}"
        signal = await self._repo.latest_signal(asset)
        if signal is None:
            return f"No judged signal for {esc(asset)} yet."
        return render_signal(signal)

    async def _status(self, ctx: CommandContext) -> str:
        info = await self._repo.chat_info(ctx.chat_id)
        rules = ctx.rules
        configured = ctx.chat_id in ctx.configured_chats or any(
            old in ctx.configured_chats for old in await self._repo.former_ids(ctx.chat_id)
        )  # a configured group that became a supergroup is reached under its new id
        lines = [
            "<b>Status</b>",
            "Alerts: " + ("🔕 muted" if info.muted else "🔔 on"),
            "Default destination: " + ("yes" if configured else "no"),
        ]
        filters = (
            f"Filters: score ≥ {rules.min_score:g}, confidence ≥ {rules.min_confidence:g}, "
            f"SKIP/AVOID {'suppressed' if rules.suppress_skip_avoid else 'sent'}, "
            f"cooldown {rules.cooldown_s:g}s per symbol"
        )
        if not info.subscriptions:
            lines.append("Subscriptions: none (use /subscribe BTC ETH)")
            return "\n".join([*lines, filters])
        lines.append(f"Subscriptions ({len(info.subscriptions)}):")
        items = [
            f"• {'every coin' if asset == ALL else esc(asset)}"
            + (f" (score ≥ {floor:g})" if floor is not None else "")
            for asset, floor in info.subscriptions
        ]
        return "\n".join([*lines, *_fitting(lines, items, filters), filters])


def _fitting(head: list[str], items: list[str], tail: str) -> list[str]:
    """Return as many of `items` as fit one Telegram message between `head` and `tail`.

    A chat may hold any number of subscriptions (50 coins per /subscribe, as often as it
    likes): listing them all made a /status reply Telegram refuses as too long, so the user
    got no answer at all. The rest is counted in a last line instead.
    """
    # room for the "… and N more" line, whose visible text is at most 40 units
    room = TELEGRAM_MAX_CHARS - visible_len("\n".join([*head, tail])) - 40
    kept: list[str] = []
    for item in items:
        room -= visible_len(item) + 1
        if room < 0:
            return [*kept, f"• … and {len(items) - len(kept)} more"]
        kept.append(item)
    return kept
