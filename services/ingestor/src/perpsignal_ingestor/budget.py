"""Binance rate budgets of one replica among several behind one egress IP.

Binance counts weight (and the statistics and funding request limits) per IP, so replicas
sharing an IP share one budget. Each replica gets an even, hard share of every quota, and
reads the IP-wide `X-MBX-USED-WEIGHT-1M` header as "what the others used beyond their own
shares counts against mine": it stops when its own share is spent or when the IP as a whole
reaches the total, whichever comes first. With one replica this is the plain quota.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import replace

from perpsignal_connectors.binance_usdm import constants as c
from perpsignal_connectors.ratelimit import Quota, RateLimiter


class SharedIpLimiter(RateLimiter):
    """One replica's share of quotas that `replicas` replicas take from one IP."""

    def __init__(
        self, quotas: list[Quota], replicas: int, clock: Callable[[], float] = time.time
    ) -> None:
        replicas = max(1, replicas)
        shares = [replace(q, limit=max(1, q.limit // replicas)) for q in quotas]
        super().__init__(shares, clock=clock)
        # what every other replica may use of each quota in a window
        self._others = {q.name: q.usable - s.usable for q, s in zip(quotas, shares, strict=True)}

    def observe_used(self, name: str, used: int) -> None:
        """Adopt the IP-wide usage minus the other replicas' allowance."""
        super().observe_used(name, used - self._others.get(name, 0))


def binance_limiter(
    total_weight: int, replicas: int, clock: Callable[[], float] = time.time
) -> SharedIpLimiter:
    """Return this replica's Binance limiter: `total_weight`/min shared by `replicas`."""
    return SharedIpLimiter(c.quotas(total_weight), replicas, clock)
