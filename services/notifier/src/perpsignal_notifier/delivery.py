"""Exactly-once effect of an alert per chat: the sent-message ledger around each send.

Protocol for one (event, chat):

1. Read the event's ledger rows once (`sent`, `blocked`, `uncertain` are final and skipped;
   `failed` from a dead-lettered run is retried), so a redelivery spends no rate quota.
2. Wait for the rate limiters (nothing is recorded or on the wire yet: a kill here is harmless).
3. Upsert the row as `sending` (one committed statement, refused if another run owns it), call
   Telegram, then mark `sent` with Telegram's message id. A refused attempt (429, 5xx, an
   error page, a timeout) sets the row back to `pending` before the wait to retry, so a kill
   during that wait does not read as a kill mid-send.

A SIGKILL between the send and the `sent` mark leaves `sending`: a redelivered event reads it,
records `uncertain` and does *not* resend, so the common crash (during the HTTP round trip or
just after it) never duplicates. The residual window: a kill after `sending` is committed but
before the request bytes leave the socket (microseconds) loses that one message for that chat.
Telegram has no idempotency key, so no design closes both sides; `NOTIFIER_RESEND_UNCERTAIN`
flips the trade-off (never miss, rarely duplicate). A timeout is retried like a 5xx and may
duplicate if Telegram did process the timed-out request: the same limitation. A database
that dies while the `sending` mark commits leaves it in doubt; the same process, which knows
it never called Telegram for it, takes its own mark over when the event is retried.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Protocol

from aiogram.exceptions import (
    ClientDecodeError,
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)

from perpsignal_common.errors import DependencyUnavailable
from perpsignal_common.events.base import utcnow
from perpsignal_common.observability.metrics import PIPELINE_LATENCY
from perpsignal_common.retry import RetryPolicy
from perpsignal_notifier.metrics import CHAT_MIGRATIONS, RETRIES, SENDS
from perpsignal_notifier.ratelimit import TelegramLimits
from perpsignal_notifier.repository import NotifierRepository
from perpsignal_notifier.telegram import TelegramAnswerCut

log = logging.getLogger(__name__)


class Sender(Protocol):
    """Sends one HTML message; raises aiogram's exceptions; returns Telegram's message id."""

    async def __call__(self, chat_id: int, text: str) -> int: ...


class Outcome(StrEnum):
    """What happened to one (alert, chat)."""

    SENT = "sent"
    ALREADY_SENT = "already_sent"
    UNCERTAIN = "uncertain"
    BLOCKED = "blocked"
    MIGRATED = "migrated"  # the group became a supergroup: delivered under its new id
    FAILED = "failed"


@dataclass(frozen=True)
class Alert:
    """A rendered alert, ready for delivery."""

    event_id: str
    kind: str  # signal | mss | listing
    symbol: str
    text: str
    # upstream time of the fact (candle close): the pipeline latency is measured from it
    observed_at: datetime | None = None


@dataclass(frozen=True)
class DeliveryResult:
    """Outcome of one (alert, chat) with the reason when it failed."""

    chat_id: int
    outcome: Outcome
    reason: str | None = None


class Deliverer:
    """Deliver alerts to chats through the ledger, the limiters and bounded retries."""

    def __init__(
        self,
        *,
        repo: NotifierRepository,
        send: Sender,
        limits: TelegramLimits,
        max_attempts: int = 5,
        max_retry_after_s: float = 60.0,
        resend_uncertain: bool = False,
        backoff: RetryPolicy | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self._repo = repo
        self._send = send
        self._limits = limits
        self._max_attempts = max(1, max_attempts)
        self._max_retry_after_s = max_retry_after_s
        self._resend_uncertain = resend_uncertain
        self._backoff = backoff or RetryPolicy(base_delay_s=0.5, max_delay_s=15.0)
        self._sleep = sleep
        self._clock = clock
        # sent by this process but the `sent` mark failed (database blip): never resend these
        self._unrecorded: dict[tuple[str, int], int | None] = {}
        # the `sending` mark failed in doubt (the database died mid-commit: it may have been
        # written) and this process never called Telegram for them: safe to take over
        self._unsent: set[tuple[str, int]] = set()
        # chats whose refusal (403, 400 "chat not found") was logged: a configured chat is
        # tried with every alert, and one warning per outage is enough (the metric counts all)
        self._unreachable: set[int] = set()

    async def deliver(self, alert: Alert, chat_ids: list[int]) -> list[DeliveryResult]:
        """Deliver to every chat concurrently; the limiters pace the actual sends."""
        if not chat_ids:
            return []
        # one read per event: a redelivered alert skips its sent chats without spending quota
        known = await self._repo.statuses(alert.event_id)
        # every chat's attempt ends before a failure is raised: a retry of the event must not
        # race a send still in flight from this attempt (it would read its `sending` mark)
        gathered = await asyncio.gather(
            *(self._one(alert, c, known.get(c)) for c in chat_ids), return_exceptions=True
        )
        for result in gathered:
            if isinstance(result, BaseException):
                raise result
        results = [r for r in gathered if isinstance(r, DeliveryResult)]
        for r in results:
            SENDS.labels(alert.kind, r.outcome.value).inc()
        if alert.observed_at is not None and any(r.outcome is Outcome.SENT for r in results):
            age = (self._clock() - alert.observed_at).total_seconds()
            PIPELINE_LATENCY.labels("notified").observe(age)
        return results

    async def _one(self, alert: Alert, chat_id: int, status: str | None) -> DeliveryResult:
        key = (alert.event_id, chat_id)
        if key in self._unrecorded:
            await self._repo.set_status(*key, "sent", message_id=self._unrecorded.pop(key))
            return DeliveryResult(chat_id, Outcome.SENT)
        if status == "sent":
            return DeliveryResult(chat_id, Outcome.ALREADY_SENT)
        if status == "blocked":
            return DeliveryResult(chat_id, Outcome.BLOCKED)
        if status == "migrated":
            return DeliveryResult(chat_id, Outcome.MIGRATED)
        if status == "sending" and key in self._unsent:
            return await self._send_with_retries(alert, chat_id)  # our own mark, never sent
        if status in ("sending", "uncertain") and not self._resend_uncertain:
            if status == "sending":
                log.warning(
                    "delivery interrupted by a crash; not resending",
                    extra={"event_id": alert.event_id, "chat_id": chat_id},
                )
                await self._repo.set_status(*key, "uncertain")
            return DeliveryResult(chat_id, Outcome.UNCERTAIN)
        return await self._send_with_retries(alert, chat_id)

    async def _follow_migration(
        self, alert: Alert, chat_id: int, exc: TelegramMigrateToChat, attempt: int
    ) -> DeliveryResult:
        new_id = exc.migrate_to_chat_id
        await self._repo.migrate_chat(chat_id, new_id)
        await self._repo.set_status(
            alert.event_id, chat_id, "migrated", error=f"to {new_id}", attempts=attempt
        )
        CHAT_MIGRATIONS.inc()
        log.info(
            "group upgraded to a supergroup; following it",
            extra={"event_id": alert.event_id, "chat_id": chat_id, "new_chat_id": new_id},
        )
        if new_id == chat_id:
            return DeliveryResult(chat_id, Outcome.FAILED, "migrated to itself")
        # the new id has its own ledger row: a concurrent or earlier send to it is not repeated
        moved = await self._one(alert, new_id, None)
        SENDS.labels(alert.kind, moved.outcome.value).inc()
        if moved.outcome is Outcome.FAILED:
            return moved  # dead-lettered; a replay retries the new chat, not the old one
        return DeliveryResult(chat_id, Outcome.MIGRATED, f"to {new_id}: {moved.outcome.value}")

    async def _unmark(self, key: tuple[str, int], reason: str, attempt: int) -> bool:
        """Set the row back to `pending` before waiting to retry; return the new `marked`.

        The attempt was refused (429, 5xx, an error page) or is treated as lost (a timeout,
        retried anyway): a kill or a handler timeout during the wait must leave a row the
        next run sends, not a `sending` mark that reads as "killed mid-send, do not resend".
        """
        try:
            await self._repo.set_status(*key, "pending", error=reason, attempts=attempt)
        except Exception:
            self._unsent.add(key)  # still `sending`, but this process knows it is not sent
            raise
        return False

    async def _send_with_retries(self, alert: Alert, chat_id: int) -> DeliveryResult:
        key = (alert.event_id, chat_id)
        takeover: tuple[str, ...] = ("pending", "failed")
        if self._resend_uncertain:
            takeover += ("sending", "uncertain")
        elif key in self._unsent:
            takeover += ("sending",)
        reason = "no attempt made"
        marked = False
        attempt = 0
        for attempt in range(1, self._max_attempts + 1):
            slots = await self._limits.acquire(chat_id)
            if not marked:
                # committed before the request: a crash from here on never resends
                try:
                    blocking = await self._repo.begin_send(
                        alert.event_id, chat_id, alert.kind, alert.symbol, takeover=takeover
                    )
                except Exception:
                    self._unsent.add(key)  # the mark may be written; nothing was sent
                    raise
                self._unsent.discard(key)
                if blocking is not None:  # another replica or a crashed run got there first
                    return DeliveryResult(
                        chat_id,
                        Outcome.ALREADY_SENT if blocking == "sent" else Outcome.UNCERTAIN,
                    )
                marked = True
            for slot in slots:
                slot.touch()
            message_id: int | None
            try:
                message_id = await self._send(chat_id, alert.text)
            except ClientDecodeError as exc:
                # not the Bot API's JSON (a proxy's or nginx's error page during an outage):
                # no TelegramAPIError, but a server fault like a 5xx; unless the JSON said ok
                sent, message_id = _sent_despite(exc)
                if not sent:
                    reason = f"ClientDecodeError: {exc.message} ({type(exc.original).__name__})"
                    if attempt < self._max_attempts:
                        RETRIES.labels("server").inc()
                        marked = await self._unmark(key, reason, attempt)
                        await self._sleep(self._backoff.delay(attempt))
                    continue
            except TelegramRetryAfter as exc:
                reason = f"429 retry_after={exc.retry_after}s"
                self._limits.chat(chat_id).pause(exc.retry_after)
                if exc.retry_after > self._max_retry_after_s or attempt >= self._max_attempts:
                    break  # no attempt left to wait for (the chat's limiter keeps the pause)
                log.info("telegram asked to slow down", extra={"retry_after_s": exc.retry_after})
                RETRIES.labels("retry_after").inc()
                marked = await self._unmark(key, reason, attempt)
                await self._sleep(exc.retry_after)
                continue
            except TelegramMigrateToChat as exc:
                return await self._follow_migration(alert, chat_id, exc, attempt)
            except (TelegramForbiddenError, TelegramBadRequest) as exc:
                if isinstance(exc, TelegramBadRequest) and not _chat_gone(exc):
                    reason = f"{type(exc).__name__}: {exc.message}"
                    break  # a bad request: retrying the same request cannot succeed
                # blocked, kicked, or (400 "chat not found") deleted: the chat is gone, not
                # the alert that is bad, so it is no failure to dead-letter the event for
                await self._repo.set_status(*key, "blocked", error=exc.message)
                await self._repo.mark_blocked(chat_id, exc.message)
                log.log(
                    logging.DEBUG if chat_id in self._unreachable else logging.WARNING,
                    "chat unreachable (blocked, kicked or deleted); subscribers are skipped "
                    "until /start, configured chats are tried with each alert",
                    extra={"chat_id": chat_id, "error": exc.message},
                )
                self._unreachable.add(chat_id)
                return DeliveryResult(chat_id, Outcome.BLOCKED, exc.message)
            except TelegramUnauthorizedError as exc:
                # the token is wrong: nothing was sent, keep the alert for after the fix
                await self._repo.set_status(*key, "pending", error=exc.message)
                raise DependencyUnavailable(
                    f"telegram rejected the bot token: {exc.message}"
                ) from exc
            except (TelegramServerError, TelegramNetworkError) as exc:
                reason = f"{type(exc).__name__}: {exc.message}"
                if isinstance(exc, TelegramAnswerCut) and not self._resend_uncertain:
                    # delivered, most likely: a resend would duplicate it (like a crash)
                    await self._repo.set_status(*key, "uncertain", error=reason, attempts=attempt)
                    log.warning(
                        "telegram's answer was cut short; not resending",
                        extra={"event_id": alert.event_id, "chat_id": chat_id},
                    )
                    return DeliveryResult(chat_id, Outcome.UNCERTAIN, reason)
                if attempt < self._max_attempts:
                    kind = "server" if isinstance(exc, TelegramServerError) else "network"
                    RETRIES.labels(kind).inc()
                    marked = await self._unmark(key, reason, attempt)
                    await self._sleep(self._backoff.delay(attempt))
                continue
            except TelegramAPIError as exc:
                # 400 and friends: retrying the same request cannot succeed
                reason = f"{type(exc).__name__}: {exc.message}"
                break
            self._unreachable.discard(chat_id)  # reachable again: a new refusal is news
            try:
                await self._repo.set_status(*key, "sent", message_id=message_id, attempts=attempt)
            except Exception:
                # sent, whatever broke the mark (a connection cut mid-statement surfaces as
                # asyncpg's InternalClientError too): never resend it
                self._unrecorded[key] = message_id
                raise
            return DeliveryResult(chat_id, Outcome.SENT)
        await self._repo.set_status(*key, "failed", error=reason, attempts=attempt)
        log.warning(
            "alert undeliverable after retries",
            extra={"event_id": alert.event_id, "chat_id": chat_id, "reason": reason},
        )
        return DeliveryResult(chat_id, Outcome.FAILED, reason)


def _sent_despite(exc: ClientDecodeError) -> tuple[bool, int | None]:
    """Return (True, message id) when Telegram's JSON said ok but aiogram could not parse it.

    Such a message was sent: retrying would duplicate it. Anything else (an HTML error page,
    a body that is not JSON) is a server fault and the message was not sent.
    """
    try:
        body = json.loads(exc.data) if isinstance(exc.data, str | bytes) else exc.data
    except ValueError:
        return False, None
    if not isinstance(body, dict) or body.get("ok") is not True:
        return False, None
    result = body.get("result")
    message_id = result.get("message_id") if isinstance(result, dict) else None
    return True, message_id if isinstance(message_id, int) else None


def _chat_gone(exc: TelegramBadRequest) -> bool:
    """Return True for Telegram's 400 that says the chat itself no longer exists."""
    return "chat not found" in exc.message.lower()
