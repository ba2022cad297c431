"""How loud a repeated warning is: the first of its kind, then at most one a minute.

A cause that hits every message or every answer (a vendor renaming a field, our clock behind
the vendor's) would otherwise write a warning per item: thousands of lines a minute. The
first of each key is a warning, then at most one each `every_s` saying how many were logged
at debug level since; metrics still count every one.
"""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Hashable


class LogLimit:
    """Decide the level of one more line of a key (see the module docstring)."""

    every_s = 60.0

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._warned: dict[Hashable, float] = {}
        self._since: Counter[Hashable] = Counter()

    def level(self, key: Hashable) -> tuple[int, int]:
        """Return the log level of one more line and how many were quiet before it."""
        now = self._clock()
        last = self._warned.get(key)
        if last is None or now - last >= self.every_s:
            self._warned[key] = now
            return logging.WARNING, self._since.pop(key, 0)
        self._since[key] += 1
        return logging.DEBUG, 0

    def reset(self) -> None:
        """Forget what was said (tests)."""
        self._warned.clear()
        self._since.clear()
