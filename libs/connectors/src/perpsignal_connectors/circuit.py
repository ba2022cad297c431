"""Circuit breaker per vendor: stop calling a failing vendor, probe it again after a pause.

Hand-written because the well-known breakers (pybreaker) are synchronous and none of them
models a vendor ban with a known expiry (Binance 418 + Retry-After), which is the case that
matters most here. Only transient failures and bans count; a 4xx for a bad request does not.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from enum import IntEnum

from perpsignal_common.errors import TransientError


class CircuitState(IntEnum):
    """Circuit states; the int value is what the metric gauge shows."""

    CLOSED = 0
    HALF_OPEN = 1
    OPEN = 2


class CircuitOpen(TransientError):
    """The vendor's circuit is open: the call was not made."""

    def __init__(self, vendor: str, retry_in_s: float, cause: str | None = None) -> None:
        # the failure that opened it is the reason a user needs, not the circuit itself
        after = f" after: {cause}" if cause else ""
        super().__init__(f"{vendor} circuit open for another {retry_in_s:.1f}s{after}")
        self.retry_in_s = retry_in_s


class CircuitBreaker:
    """Open after `failure_threshold` consecutive failures; half-open after `reset_timeout_s`."""

    def __init__(
        self,
        vendor: str,
        *,
        failure_threshold: int = 5,
        reset_timeout_s: float = 30.0,
        clock: Callable[[], float] = time.time,
        on_change: Callable[[CircuitState], None] | None = None,
    ) -> None:
        self.vendor = vendor
        self.failure_threshold = failure_threshold
        self.reset_timeout_s = reset_timeout_s
        self._clock = clock
        self._on_change = on_change
        self._failures = 0
        self._open_until = 0.0
        self._state = CircuitState.CLOSED
        self.last_error: str | None = None  # the latest failure, named by CircuitOpen

    @property
    def state(self) -> CircuitState:
        """Return the current state (an expired open circuit reads as half-open)."""
        if self._state is CircuitState.OPEN and self._clock() >= self._open_until:
            self._set(CircuitState.HALF_OPEN)
        return self._state

    def _set(self, state: CircuitState) -> None:
        if state is not self._state:
            self._state = state
            if self._on_change is not None:
                self._on_change(state)

    def check(self) -> None:
        """Raise CircuitOpen unless a call may go out now."""
        if self.state is CircuitState.OPEN:
            raise CircuitOpen(self.vendor, self._open_until - self._clock(), self.last_error)

    def record_success(self) -> None:
        """Close the circuit after a good answer."""
        self._failures = 0
        self._set(CircuitState.CLOSED)

    def record_failure(self) -> None:
        """Count a transient failure; open when the threshold (or a failed probe) is reached."""
        self._failures += 1
        if self._state is CircuitState.HALF_OPEN or self._failures >= self.failure_threshold:
            self.open_for(self.reset_timeout_s)

    def open_for(self, seconds: float) -> None:
        """Open the circuit for `seconds` (a ban's Retry-After, or the reset timeout)."""
        self._open_until = max(self._open_until, self._clock() + seconds)
        self._set(CircuitState.OPEN)
