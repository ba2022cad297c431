"""Sliding-window quotas on a virtual clock (no real waiting)."""

from __future__ import annotations

import asyncio

import pytest

from perpsignal_notifier.ratelimit import JITTER_MARGIN_S, TelegramLimits, WindowLimiter


class VirtualClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


def max_in_window(stamps: list[float], window: float) -> int:
    return max(sum(1 for t in stamps if s <= t < s + window) for s in stamps)


async def test_never_more_than_limit_in_any_window_and_sustains_the_rate() -> None:
    clock = VirtualClock()
    limiter = WindowLimiter(30, 1.0, clock=clock, sleep=clock.sleep)
    stamps = []
    for _ in range(300):
        await limiter.acquire()
        stamps.append(clock.now)
    assert max_in_window(stamps, 1.0) == 30
    # 300 sends at 30 per second need 9 full windows after the first burst
    assert 9.0 <= stamps[-1] < 10.0


async def test_group_quota_is_twenty_per_minute_with_an_initial_burst() -> None:
    clock = VirtualClock()
    limits = TelegramLimits(
        global_per_s=30, group_per_min=20, private_per_s=1, clock=clock, sleep=clock.sleep
    )
    stamps = []
    for _ in range(45):
        await limits.acquire(-100123)
        stamps.append(clock.now)
    assert stamps[19] == 0.0  # a burst of 20 goes at once
    assert stamps[20] >= 60.0
    assert max_in_window(stamps, 60.0) == 20


async def test_private_chats_do_not_wait_for_each_other() -> None:
    clock = VirtualClock()
    limits = TelegramLimits(
        global_per_s=30, group_per_min=20, private_per_s=1, clock=clock, sleep=clock.sleep
    )
    for chat in range(1, 11):
        await limits.acquire(chat)
    assert clock.now == 0.0
    await limits.acquire(1)  # the second message to chat 1 waits a second (plus jitter pad)
    assert clock.now == pytest.approx(1.0 + JITTER_MARGIN_S)


async def test_pause_after_429_blocks_the_chat() -> None:
    clock = VirtualClock()
    limiter = WindowLimiter(100, 1.0, clock=clock, sleep=clock.sleep)
    limiter.pause(7)
    await limiter.acquire()
    assert clock.now == 7.0


async def test_a_late_departure_pushes_the_window() -> None:
    clock = VirtualClock()
    limiter = WindowLimiter(1, 1.0, clock=clock, sleep=clock.sleep)
    slot = await limiter.acquire()
    clock.now = 0.4  # the ledger write delayed the request: it really left at 0.4
    slot.touch()
    await limiter.acquire()
    # counted from the real departure, so Telegram sees the two a full second apart
    assert clock.now == 1.4
