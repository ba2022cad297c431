"""A fake clock whose sleep advances time instantly (tests never wait for real)."""

from __future__ import annotations

import asyncio


class FakeClock:
    """Epoch-seconds clock; `sleep` records the wait and moves time forward."""

    def __init__(self, t: float = 1_700_000_010.0) -> None:
        self.t = t
        self.slept: list[float] = []

    def time(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += max(0.0, seconds)
        await asyncio.sleep(0)
