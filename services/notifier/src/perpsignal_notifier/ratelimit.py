"""Telegram send quotas as exact sliding windows: global, per group and per private chat.

Why not aiolimiter: its leaky bucket admits a full burst *plus* the drip within one period, up
to twice the limit in a one-second window; Telegram counts messages per window, and the
alternative (a bucket of capacity 1) forbids the bursts that make five alerts arrive together.
A sliding log of the last N send times is exact, burst-friendly and a few lines long.
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


# Requests stamped a window apart can reach Telegram closer together (event-loop and network
# jitter); padding each window by this much keeps Telegram's own count within the limit
JITTER_MARGIN_S = 0.05


def _window(rate: float, period_s: float, clock: Clock, sleep: Sleep) -> WindowLimiter:
    # a fractional rate (0.5/s) becomes 1 per 2 s rather than rounding to zero
    if rate >= 1:
        return WindowLimiter(int(rate), period_s + JITTER_MARGIN_S, clock=clock, sleep=sleep)
    return WindowLimiter(1, period_s / rate + JITTER_MARGIN_S, clock=clock, sleep=sleep)
