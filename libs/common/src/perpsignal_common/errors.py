"""Error taxonomy: every third-party failure is translated into one of these at the edge."""

from __future__ import annotations


class PerpSignalError(Exception):
    """Base of every platform error."""


class ConfigError(PerpSignalError):
    """Bad settings or a broken start-up invariant: the process exits with code 2."""


class DependencyUnavailable(PerpSignalError):
    """Our own infrastructure (database, Kafka) is down: not the message's fault."""


class TransientError(PerpSignalError):
    """A failure worth retrying: timeout, 5xx, retryable vendor code."""


class RateLimited(TransientError):
    """The vendor said slow down; wait `retry_after_s` before the next call."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PermanentError(PerpSignalError):
    """A failure retrying cannot fix: bad input, unsupported request."""


class PoisonMessage(PermanentError):
    """An event that cannot be decoded or validated."""


class VenueBanned(PerpSignalError):
    """The vendor banned us (HTTP 418): stop calling it until `until_s` (epoch seconds)."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s
