"""Telegram send quotas as exact sliding windows: global, per group and per private chat.

Why not aiolimiter: its leaky bucket admits a full burst *plus* the drip within one period, up
to twice the limit in a one-second window; Telegram counts messages per window, and the
alternative (a bucket of capacity 1) forbids the bursts that make five alerts arrive together.
A sliding log of the last N send times is exact, burst-friendly and a few lines long.

Replies to bot commands count against the same windows as alerts (Telegram counts every
message), through a share of their own: at most a third of the bot's rate and half of a
chat's, so a chat spamming /status can neither get the bot 429-limited nor take the quota
its alerts need; a reply that would wait long for its share is skipped instead.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


class Slot:
    """One admitted send; `touch()` re-stamps it when the request actually leaves.

    The ledger write between admission and the HTTP call takes a variable time; stamping the
    real departure keeps the window true at Telegram's side, not just at ours.
    """

    __slots__ = ("_clock", "at")

    def __init__(self, at: float, clock: Clock) -> None:
        self.at = at
        self._clock = clock

    def touch(self) -> None:
        """Move the stamp to now (only ever later)."""
        self.at = max(self.at, self._clock())


class WindowLimiter:
    """Admit at most `limit` acquisitions in any `window_s` seconds, in FIFO order."""

    def __init__(
        self,
        limit: int,
        window_s: float,
        *,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.limit = max(1, limit)
        self.window_s = window_s
        self._clock = clock
        self._sleep = sleep
        self._stamps: list[Slot] = []
        self._lock = asyncio.Lock()
        self._paused_until = 0.0

    def pause(self, seconds: float) -> None:
        """Admit nothing for `seconds` (Telegram answered 429 with `retry_after`)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    def wait_s(self) -> float:
        """Return how long a slot would take to free up now, without taking one (0: free).

        Exact for a limiter with one user at a time (a command share); an estimate when
        others are queued for it."""
        now = self._clock()
        live = [s.at for s in self._stamps if s.at > now - self.window_s]
        wait = self._paused_until - now
        if len(live) >= self.limit:
            wait = max(wait, min(live) + self.window_s - now)
        return max(0.0, wait)

    async def acquire(self) -> Slot:
        """Wait for a slot and take it."""
        async with self._lock:
            while True:
                now = self._clock()
                # stamps are only roughly ordered once touched: prune all (N is small)
                self._stamps = [s for s in self._stamps if s.at > now - self.window_s]
                wait = self._paused_until - now
                if len(self._stamps) >= self.limit:
                    wait = max(wait, min(s.at for s in self._stamps) + self.window_s - now)
                if wait <= 0:
                    slot = Slot(now, self._clock)
                    self._stamps.append(slot)
                    return slot
                await self._sleep(wait)


class TelegramLimits:
    """The quotas of one bot: a global window, then one window per destination chat."""

    def __init__(
        self,
        *,
        global_per_s: float,
        group_per_min: float,
        private_per_s: float,
        clock: Clock = time.monotonic,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self._clock = clock
        self._sleep = sleep
        self.global_limit = _window(global_per_s, 1.0, clock, sleep)
        self._group = group_per_min
        self._private = private_per_s
        self._chats: dict[int, WindowLimiter] = {}
        # command replies: a share of the bot's window and of each chat's (module docstring)
        self.command_limit = _window(global_per_s * COMMAND_GLOBAL_SHARE, 1.0, clock, sleep)
        self._command_chats: dict[int, WindowLimiter] = {}

    def chat(self, chat_id: int) -> WindowLimiter:
        """Return the limiter of one chat (negative ids are groups and channels)."""
        limiter = self._chats.get(chat_id)
        if limiter is None:
            if chat_id < 0:
                limiter = _window(self._group, 60.0, self._clock, self._sleep)
            else:
                limiter = _window(self._private, 1.0, self._clock, self._sleep)
            self._chats[chat_id] = limiter
        return limiter

    async def acquire(self, chat_id: int) -> tuple[Slot, Slot]:
        """Wait for the chat's slot first, then the global one, so waits never hog the bot."""
        chat = await self.chat(chat_id).acquire()
        return chat, await self.global_limit.acquire()

    def command_chat(self, chat_id: int) -> WindowLimiter:
        """Return the command-reply share of one chat's window (half of it)."""
        limiter = self._command_chats.get(chat_id)
        if limiter is None:
            if chat_id < 0:
                rate, period = self._group * COMMAND_CHAT_SHARE, 60.0
            else:
                rate, period = self._private * COMMAND_CHAT_SHARE, 1.0
            limiter = _window(rate, period, self._clock, self._sleep)
            self._command_chats[chat_id] = limiter
        return limiter

    async def acquire_command(self, chat_id: int, *, max_wait_s: float) -> list[Slot] | None:
        """Take the slots of one command reply: its shares, then the chat's and the bot's
        windows alerts use too. None, taking nothing, when a share or the chat's window
        would not free up within `max_wait_s` (a chat over its share, a chat paused after a
        429): the reply is skipped rather than holding every other chat's commands.
        """
        share, chat = self.command_chat(chat_id), self.chat(chat_id)
        if max(share.wait_s(), chat.wait_s(), self.command_limit.wait_s()) > max_wait_s:
            return None
        slots = [await share.acquire(), await self.command_limit.acquire()]
        return [*slots, await chat.acquire(), await self.global_limit.acquire()]


# Requests stamped a window apart can reach Telegram closer together (event-loop and network
# jitter); padding each window by this much keeps Telegram's own count within the limit
JITTER_MARGIN_S = 0.05
# the most of the bot's rate and of a chat's that command replies may take: the rest stays
# for alerts whatever a chat types (30/s: 10 replies/s; a group's 20/min: 10 replies/min)
COMMAND_GLOBAL_SHARE = 1 / 3
COMMAND_CHAT_SHARE = 1 / 2


def _window(rate: float, period_s: float, clock: Clock, sleep: Sleep) -> WindowLimiter:
    # a fractional rate (0.5/s) becomes 1 per 2 s rather than rounding to zero
    if rate >= 1:
        return WindowLimiter(int(rate), period_s + JITTER_MARGIN_S, clock=clock, sleep=sleep)
    return WindowLimiter(1, period_s / rate + JITTER_MARGIN_S, clock=clock, sleep=sleep)
