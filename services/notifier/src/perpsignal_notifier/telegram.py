"""aiogram glue: the Bot client (pointed at any Bot API server), the sender and commands.

Bot commands arrive by long-polling `getUpdates` in a background task of the service; the
router turns each command message into a `Commands.handle` call and answers in the chat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from aiogram import Bot, Dispatcher, F, Router
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import (
    AiogramError,
    ClientDecodeError,
    DetailedAiogramError,
    TelegramAPIError,
    TelegramConflictError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.filters import Command, CommandObject
from aiogram.methods import TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import BotCommand, LinkPreviewOptions, Message
from aiohttp import ClientPayloadError

from perpsignal_common.errors import ConfigError, DependencyUnavailable
from perpsignal_common.retry import RetryPolicy
from perpsignal_notifier.commands import CommandContext, Commands
from perpsignal_notifier.filters import FilterRules
from perpsignal_notifier.metrics import COMMAND_REPLIES_SKIPPED
from perpsignal_notifier.ratelimit import TelegramLimits

log = logging.getLogger(__name__)

COMMANDS = ("start", "help", "subscribe", "unsubscribe", "signal", "status", "mute", "unmute")
# The command menu Telegram clients show (setMyCommands): every command but /start, which
# the client sends by itself when a user opens the bot
MENU: tuple[BotCommand, ...] = (
    BotCommand(command="subscribe", description="Alerts for coins: /subscribe BTC ETH [min]"),
    BotCommand(command="unsubscribe", description="Stop some or all subscriptions"),
    BotCommand(command="signal", description="Latest judged signal: /signal BTC"),
    BotCommand(command="status", description="This chat's subscriptions and filters"),
    BotCommand(command="mute", description="Pause every alert in this chat"),
    BotCommand(command="unmute", description="Resume alerts in this chat"),
    BotCommand(command="help", description="What the bot can do"),
)
NO_PREVIEW = LinkPreviewOptions(is_disabled=True)
# what a Bot API call raises when it fails: a Telegram error, or an answer that is not the Bot
# API's JSON (an HTML error page from nginx or a proxy), which aiogram does not count as one
BOT_API_ERRORS = (TelegramAPIError, ClientDecodeError)


def brief(exc: BaseException) -> str:
    """Return a one-line description of a Bot API failure (no HTML page in the logs)."""
    if isinstance(exc, ClientDecodeError):
        return f"ClientDecodeError: {exc.message} ({type(exc.original).__name__})"
    return str(exc)


REDACTED = "<token>"


class TelegramAnswerCut(TelegramNetworkError):
    """Telegram's answer began but its body was cut: the request was processed (sent)."""


def redact(exc: AiogramError, token: str) -> AiogramError:
    """Remove the bot token from an aiogram error's text, in place; return the error."""
    secrets = [t for t in (token, token.partition(":")[2]) if len(t) >= 8]

    def scrub(text: str) -> str:
        for secret in secrets:
            text = text.replace(secret, REDACTED)
        return text

    if isinstance(exc, DetailedAiogramError | ClientDecodeError):
        exc.message = scrub(exc.message)
    if isinstance(exc, ClientDecodeError) and isinstance(exc.data, str):
        exc.data = scrub(exc.data)  # a proxy's error page may quote the request path
    return exc


class RedactingSession(AiohttpSession):
    """An aiohttp session whose errors never carry the bot token.

    The token is part of every request URL (`/bot<token>/sendMessage`). aiohttp names that
    URL in some errors (a redirect loop, a TELEGRAM_API_BASE without its scheme), aiogram
    copies their text into `TelegramNetworkError` and chains the original as its cause, and
    the notifier writes error texts to logs, the ledger and the DLQ header.
    """

    async def make_request(
        self,
        bot: Bot,
        method: TelegramMethod[TelegramType],
        timeout: int | None = None,  # noqa: ASYNC109 - aiogram's signature
    ) -> TelegramType:
        """Make the request; an error is re-raised with the token removed, unchained."""
        try:
            return await super().make_request(bot, method, timeout)
        except AiogramError as exc:
            if isinstance(exc, TelegramNetworkError) and isinstance(
                exc.__cause__, ClientPayloadError
            ):  # the status line and headers came: Telegram has handled the request
                exc = TelegramAnswerCut(method=exc.method, message=exc.message)
            raise redact(exc, bot.token) from None


def create_bot(token: str, api_base: str, timeout_s: float) -> Bot:
    """Return a Bot that talks HTML to `api_base` (api.telegram.org or a local server)."""
    session = RedactingSession(api=TelegramAPIServer.from_base(api_base), timeout=timeout_s)
    return Bot(
        token=token,
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview=NO_PREVIEW),
    )


async def check_token(bot: Bot) -> str | None:
    """Ask Telegram who the bot is (getMe) at start-up; return its @username, or None when
    Telegram could not be asked.

    A revoked or mistyped token used to pass start-up and surface only at the first alert,
    maybe hours later, as a 401 that stopped the service mid-stream. A 401 now stops the
    start-up (ConfigError, exit 2) naming TELEGRAM_BOT_TOKEN, never its value. Telegram down
    or unreachable (network error, 5xx, a proxy's error page, a 429) is no verdict on the
    token and may pass: logged, and the start-up goes on.
    """
    try:
        me = await bot.get_me()
    except TelegramUnauthorizedError:
        raise ConfigError(
            "TELEGRAM_BOT_TOKEN is invalid or revoked: Telegram answered getMe with 401 "
            "Unauthorized (get a new token from @BotFather)"
        ) from None
    except BOT_API_ERRORS as exc:
        log.warning(
            "Telegram unreachable at start-up; the bot token is not checked yet",
            extra={"error": brief(redact(exc, bot.token))},
        )
        return None
    return me.username


class BotSender:
    """The `Sender` of the deliverer: one `sendMessage`, returning Telegram's message id."""

    def __init__(self, bot: Bot) -> None:
        self._bot = bot

    async def __call__(self, chat_id: int, text: str) -> int:
        """Send `text` as HTML to `chat_id`."""
        message = await self._bot.send_message(
            chat_id, text, parse_mode=ParseMode.HTML, link_preview_options=NO_PREVIEW
        )
        return message.message_id


def sender_id(message: Message) -> int | None:
    """Return the id a command's sender is known by: the user, or the chat it speaks for.

    A message sent on behalf of a chat (an anonymous group admin, a user posting as a
    channel, a channel post forwarded into its discussion group) carries that chat in
    `sender_chat` and, in `from`, a service account every such message shares
    (GroupAnonymousBot 1087968824, Channel_Bot 136817688, Telegram 777000). Taking that id
    told each anonymous admin to have it added to TELEGRAM_ADMIN_IDS, which would have let
    every anonymous admin and every channel on Telegram change alerts.
    """
    if message.sender_chat is not None:
        return message.sender_chat.id
    return message.from_user.id if message.from_user else None


COMMAND_FAILED = "⚠️ That command failed on our side; the operator's log says why."
# the longest a command reply waits for its share of the rate limits: the poller handles one
# update at a time, so a longer wait would hold up every other chat's commands
COMMAND_MAX_WAIT_S = 5.0


def build_dispatcher(
    commands: Commands,
    *,
    configured_chats: tuple[int, ...],
    rules: FilterRules,
    admins: frozenset[int] | None = None,
    limits: TelegramLimits | None = None,
) -> Dispatcher:
    """Return a dispatcher whose router answers every bot command (`admins`: see Commands).

    `limits`: the alerts' limiter; replies go through its command shares (ratelimit), so
    commands can neither get the bot 429-limited nor hold back alerts. None: unpaced.
    """
    router = Router(name="notifier-commands")

    @router.message(Command(*COMMANDS))
    async def on_command(message: Message, command: CommandObject) -> None:
        ctx = CommandContext(
            chat_id=message.chat.id,
            chat_kind=str(message.chat.type),
            chat_title=message.chat.title or message.chat.username,
            configured_chats=configured_chats,
            rules=rules,
            user_id=sender_id(message),
            admins=admins,
        )
        try:
            reply = await commands.handle(ctx, command.command, command.args)
        except DependencyUnavailable:
            raise  # the poller pauses and this update is retried, not skipped
        except Exception:
            # a bug or a stored row the contract now refuses: the user hears so instead of
            # silence, the operator gets the traceback
            log.exception("command failed", extra={"command": command.command})
            reply = COMMAND_FAILED
        chat_id = message.chat.id
        if limits is not None and (
            await limits.acquire_command(chat_id, max_wait_s=COMMAND_MAX_WAIT_S) is None
        ):
            COMMAND_REPLIES_SKIPPED.inc()
            log.debug("command reply skipped: the chat is over its command share")
            return
        try:
            await message.answer(reply, parse_mode=ParseMode.HTML, link_preview_options=NO_PREVIEW)
        except TelegramRetryAfter as exc:
            if limits is not None:  # alerts to this chat hold off too, as after their own 429
                limits.chat(chat_id).pause(exc.retry_after)
            log.warning("command reply failed", extra={"error": brief(exc)})
        except BOT_API_ERRORS as exc:
            log.warning("command reply failed", extra={"error": brief(exc)})

    @router.message(F.migrate_from_chat_id | F.migrate_to_chat_id)
    async def on_upgrade(message: Message) -> None:
        # Telegram's service messages when a group becomes a supergroup (one in each chat):
        # followed at once, so the new id has the group's subscriptions and admin rights
        # before its first alert or command, not only after a send meets the old id's 400
        old, new = (
            (message.migrate_from_chat_id, message.chat.id)
            if message.migrate_from_chat_id
            else (message.chat.id, message.migrate_to_chat_id)
        )
        if old is None or new is None or old == new:
            return
        await commands.chat_upgraded(old, new)

    dispatcher = Dispatcher()
    dispatcher.include_router(router)
    return dispatcher


class CommandPoller:
    """Long-poll `getUpdates` and feed each update to the dispatcher until stopped."""

    def __init__(
        self,
        bot: Bot,
        dispatcher: Dispatcher,
        *,
        poll_timeout_s: int = 25,
        backoff: RetryPolicy | None = None,
    ) -> None:
        self._bot = bot
        self._dp = dispatcher
        self._timeout = poll_timeout_s
        self._backoff = backoff or RetryPolicy(base_delay_s=1.0, max_delay_s=30.0)
        self._offset: int | None = None
        self.handled = 0

    async def publish_menu(self) -> bool:
        """Publish the command menu (setMyCommands); a failure is logged, never fatal."""
        try:
            await self._bot.set_my_commands(list(MENU))
        except BOT_API_ERRORS as exc:
            log.warning("setMyCommands failed; no command menu", extra={"error": brief(exc)})
            return False
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop`; Telegram or database trouble pauses polling, never the service."""
        await self.publish_menu()
        failures = 0
        while not stop.is_set():
            try:
                await self._poll_once(stop)
                failures = 0
            except TelegramRetryAfter as exc:
                await _wait(stop, exc.retry_after)
            except TelegramConflictError as exc:
                # a webhook or another poller owns the updates: say so and keep trying slowly
                log.warning("getUpdates conflict; is a webhook set?", extra={"error": str(exc)})
                await _wait(stop, 30)
            except (*BOT_API_ERRORS, DependencyUnavailable) as exc:
                failures += 1
                log.warning("command polling failed", extra={"error": brief(exc)})
                await _wait(stop, self._backoff.delay(min(failures, 6)))

    async def _poll_once(self, stop: asyncio.Event) -> None:
        poll = asyncio.ensure_future(
            self._bot.get_updates(
                offset=self._offset,
                timeout=self._timeout,
                allowed_updates=["message"],
                request_timeout=self._timeout + 10,
            )
        )
        stopped = asyncio.ensure_future(stop.wait())
        try:
            await asyncio.wait({poll, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopped.cancel()
        if not poll.done():
            poll.cancel()
            with contextlib.suppress(asyncio.CancelledError, *BOT_API_ERRORS):
                await poll
            return
        for update in poll.result():
            try:
                await self._dp.feed_update(self._bot, update)
            except DependencyUnavailable:
                raise  # database outage: the command is retried from this update, not skipped
            except Exception:
                log.exception("command handler failed", extra={"update_id": update.update_id})
            self._offset = update.update_id + 1
            self.handled += 1


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), timeout=seconds)
