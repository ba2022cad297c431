"""Rate limits declared as data: fixed-window weight budgets shared by every call to a vendor.

Vendors count usage in fixed windows (Binance: request weight per calendar minute, reported
back in `X-MBX-USED-WEIGHT-1M`; statistics endpoints: requests per 5 minutes). A leaky bucket
such as `aiolimiter` cannot be corrected from the server's own count and drifts from the
window the vendor enforces, so the budget here mirrors the vendor's window exactly and takes
the server's number whenever it is higher than ours. Budgets keep 20 % headroom by default
(house style), so other tenants of the same IP and clock skew never push us into a 429.
A vendor counting the last N seconds instead (CoinAPI's credits per 24 h) gets a rolling
budget (`Quota.rolling`): a call's units free up N seconds after it, not at a calendar edge.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass

from perpsignal_common.errors import RateLimited

Clock = Callable[[], float]


class QuotaSpent(RateLimited):
    """Our own budget is spent until a window far off (`Quota.max_wait_s`): no call is made,
    and retrying within one call's retry budget cannot help."""


Sleep = Callable[[float], Awaitable[None]]


@dataclass(frozen=True)
class Quota:
    """A vendor limit: `limit` units per fixed `period_s` window, used up to (1 - headroom)."""

    name: str
    limit: int
    period_s: float
    headroom: float = 0.2
    doc: str = ""
    # a full window that frees later than this is refused (RateLimited) instead of slept
    # through: a daily credit budget would hold a poll for hours, past its deadline
    max_wait_s: float | None = None
    # a cap of its own (Binance's statistics endpoints: weight 0, 1,000 requests per 5 min
    # per endpoint): a 429 on a call drawing only on such quotas pauses just them, not the
    # vendor; a ban (418) still stops every call
    own_cap: bool = False
    # the vendor counts the last `period_s` seconds (CoinAPI's credits), not calendar windows:
    # a call frees its units `period_s` after it was made, whatever the clock's day says
    rolling: bool = False

    @property
    def usable(self) -> int:
        """Return the units we allow ourselves per window."""
        return max(1, math.floor(self.limit * (1 - self.headroom)))


class WindowBudget:
    """Usage of one quota in the current fixed window; waits for the next window when full."""

    def __init__(self, quota: Quota, clock: Clock = time.time, sleep: Sleep = asyncio.sleep):
        self.quota = quota
        self._clock = clock
        self._sleep = sleep
        self._window = -1
        self._used = 0
        self._lock = asyncio.Lock()
        # rolling: our calls within the window (time, cost), and the vendor's last count
        self._calls: deque[tuple[float, int]] = deque()
        self._reported: tuple[float, int] | None = None  # (when, units used)

    def _roll(self) -> None:
        if self.quota.rolling:
            self._used = self._rolling_used(self._clock())
            return
        window = int(self._clock() // self.quota.period_s)
        if window != self._window:
            self._window, self._used = window, 0

    def _rolling_used(self, now: float) -> int:
        """Return the units in the vendor's window now: its last count, less the calls of ours
        it counted that have left the window since, plus ours it has not seen; at least our
        own calls within the window. Others' calls age out unseen: an over-count, never under.
        """
        horizon = now - self.quota.period_s
        if self._reported is not None and self._reported[0] <= horizon:
            self._reported = None  # everything it counted has left the window
        # keep the calls the vendor's count includes until that count is forgotten
        keep_after = horizon if self._reported is None else self._reported[0] - self.quota.period_s
        while self._calls and self._calls[0][0] <= keep_after:
            self._calls.popleft()
        ours = sum(cost for t, cost in self._calls if t > horizon)
        if self._reported is None:
            return ours
        at, used = self._reported
        left = sum(cost for t, cost in self._calls if t <= horizon)
        unseen = sum(cost for t, cost in self._calls if t > at)
        return max(ours, used - left + unseen)

    @property
    def used(self) -> int:
        """Return the units used in the current window."""
        self._roll()
        return self._used

    def seconds_to_next_window(self) -> float:
        """Return how long until the current window ends (rolling: until the oldest call it
        counts leaves it, freeing units)."""
        now = self._clock()
        if self.quota.rolling:
            self._roll()
            horizon = now - self.quota.period_s
            starts = [t for t, _ in self._calls if t > horizon][:1]
            if self._reported is not None:
                starts.append(self._reported[0])
            return max(min(starts, default=now) + self.quota.period_s - now, 0.0)
        return (math.floor(now / self.quota.period_s) + 1) * self.quota.period_s - now

    async def acquire(self, cost: int) -> None:
        """Reserve `cost` units, waiting for a new window when this one cannot hold them."""
        if cost <= 0:
            return
        async with self._lock:
            while True:
                self._roll()
                # A single call costlier than the whole budget is let through on an empty window
                if self._used + cost <= self.quota.usable or self._used == 0:
                    self._used += cost
                    if self.quota.rolling:
                        self._calls.append((self._clock(), cost))
                    return
                wait = self.seconds_to_next_window()
                limit = self.quota.max_wait_s
                if limit is not None and wait > limit:
                    raise QuotaSpent(
                        f"{self.quota.name}: {self._used} of the {self.quota.usable} units we "
                        f"allow ourselves per {self.quota.period_s:g} s are used; the window "
                        f"starts again in {wait / 60:.0f} min"
                    )
                await self._sleep(wait + 0.001)

    def observe_used(self, used: int) -> None:
        """Adopt the server-reported usage of the current window when it exceeds ours (rolling:
        as it is: it falls as the vendor's oldest calls leave its window)."""
        if self.quota.rolling:
            self._reported = (self._clock(), used)
        self._roll()
        self._used = max(self._used, used)


class RateLimiter:
    """Every quota of one vendor, plus a vendor-wide pause after 429/418."""

    def __init__(
        self,
        quotas: Mapping[str, Quota] | list[Quota],
        clock: Clock = time.time,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        items = quotas.values() if isinstance(quotas, Mapping) else quotas
        self._clock = clock
        self._sleep = sleep
        self.budgets = {q.name: WindowBudget(q, clock, sleep) for q in items}
        self._paused_until = 0.0
        self._quota_paused_until: dict[str, float] = {}

    def pause_until(self, ts: float) -> None:
        """Hold every call until epoch second `ts` (Retry-After, bans)."""
        self._paused_until = max(self._paused_until, ts)

    def own_caps(self, costs: Mapping[str, int]) -> list[str]:
        """Return the quotas `costs` draws on when every one is a cap of its own, else []."""
        names = [n for n in costs if n in self.budgets]
        own = all(self.budgets[n].quota.own_cap for n in names)
        return names if names and own else []

    def pause_quotas(self, names: list[str], ts: float) -> None:
        """Hold the calls drawing on quotas `names` until epoch second `ts`."""
        for name in names:
            self._quota_paused_until[name] = max(self._quota_paused_until.get(name, 0.0), ts)

    @property
    def paused_until(self) -> float:
        """Return the epoch second before which no call is made."""
        return self._paused_until

    def _paused_for(self, costs: Mapping[str, int]) -> float:
        own = (self._quota_paused_until.get(n, 0.0) for n in costs)
        return max(self._paused_until, *own) if costs else self._paused_until

    async def acquire(self, costs: Mapping[str, int]) -> None:
        """Wait out any pause (the vendor's, or of a quota `costs` draws on), then reserve
        `costs` in each named quota."""
        while (wait := self._paused_for(costs) - self._clock()) > 0:
            await self._sleep(wait)
        for name, cost in costs.items():
            budget = self.budgets.get(name)
            if budget is not None:
                await budget.acquire(cost)

    def window_left_s(self, costs: Mapping[str, int]) -> float | None:
        """Return how long until every window `costs` draws on has ended (None: no quota)."""
        waits = [b.seconds_to_next_window() for n in costs if (b := self.budgets.get(n))]
        return max(waits) if waits else None

    def observe_used(self, name: str, used: int) -> None:
        """Correct quota `name` from a server-reported usage header."""
        budget = self.budgets.get(name)
        if budget is not None:
            budget.observe_used(used)
