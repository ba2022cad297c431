"""Telegram send quotas as exact sliding windows: global, per group and per private chat.

Why not aiolimiter: its leaky bucket admits a full burst *plus* the drip within one period, up
to twice the limit in a one-second window; Telegram counts messages per window, and the
alternative (a bucket of capacity 1) forbids the bursts that make five alerts arrive together.
A sliding log of the last N send times is exact, burst-friendly and a few lines long.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Awaitable, Callable

Clock = Callable[[], float]
Sleep = Callable[[float], Awaitable[None]]


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
        self._stamps: deque[float] = deque()
        self._lock = asyncio.Lock()
        self._paused_until = 0.0

    def pause(self, seconds: float) -> None:
        """Admit nothing for `seconds` (Telegram answered 429 with `retry_after`)."""
        self._paused_until = max(self._paused_until, self._clock() + seconds)

    async def acquire(self) -> None:
        """Wait for a slot and take it."""
        async with self._lock:
            while True:
                now = self._clock()
                while self._stamps and self._stamps[0] <= now - self.window_s:
                    self._stamps.popleft()
                wait = self._paused_until - now
                if len(self._stamps) >= self.limit:
                    wait = max(wait, self._stamps[0] + self.window_s - now)
                if wait <= 0:
                    self._stamps.append(now)
                    return
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

    async def acquire(self, chat_id: int) -> None:
        """Wait for the chat's slot first, then the global one, so waits never hog the bot."""
        await self.chat(chat_id).acquire()
        await self.global_limit.acquire()


def _window(rate: float, period_s: float, clock: Clock, sleep: Sleep) -> WindowLimiter:
    # a fractional rate (0.5/s) becomes 1 per 2 s rather than rounding to zero
    if rate >= 1:
        return WindowLimiter(int(rate), period_s, clock=clock, sleep=sleep)
    return WindowLimiter(1, period_s / rate, clock=clock, sleep=sleep)
