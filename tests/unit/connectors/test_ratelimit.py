"""Fixed-window budgets: the Binance weight minute and the 5-minute statistics caps."""

from __future__ import annotations

from perpsignal_connectors.binance_usdm import constants as bc
from perpsignal_connectors.ratelimit import Quota, RateLimiter
from tests.unit.connectors.clock import FakeClock


async def test_statistics_caps_are_per_endpoint_and_five_minutes() -> None:
    clock = FakeClock(t=300 * 5_666_667)  # a 5-minute boundary
    limiter = RateLimiter(bc.quotas(), clock=clock.time, sleep=clock.sleep)
    usable = int(bc.STATS_LIMIT_5M * 0.8)
    ratio = bc.GLOBAL_LS_ACCOUNT.costs
    for _ in range(usable):
        await limiter.acquire(ratio)
    # another statistics endpoint has a budget of its own, and weight is untouched
    await limiter.acquire(bc.TAKER_RATIO.costs)
    assert clock.slept == []
    assert limiter.budgets[bc.WEIGHT].used == 0
    await limiter.acquire(ratio)
    assert clock.slept == [300.001]


async def test_server_usage_only_ever_raises_our_count() -> None:
    clock = FakeClock(t=60 * 1000)
    limiter = RateLimiter([Quota("w", 100, 60.0)], clock=clock.time, sleep=clock.sleep)
    await limiter.acquire({"w": 30})
    limiter.observe_used("w", 10)  # a stale, lower header does not hide our own use
    assert limiter.budgets["w"].used == 30
    limiter.observe_used("w", 70)
    assert limiter.budgets["w"].used == 70
    await limiter.acquire({"w": 11})  # 81 > 80 usable: wait for the next window
    assert clock.slept == [60.001]
    assert limiter.budgets["w"].used == 11


async def test_pause_holds_every_call() -> None:
    clock = FakeClock(t=1000.0)
    limiter = RateLimiter([Quota("w", 100, 60.0)], clock=clock.time, sleep=clock.sleep)
    limiter.pause_until(1007.5)
    await limiter.acquire({"w": 1})
    assert sum(clock.slept) == 7.5
