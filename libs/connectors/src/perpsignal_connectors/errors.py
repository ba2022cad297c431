"""HTTP status → platform error taxonomy, shared by every vendor (each adds its own codes).

429 → RateLimited(retry_after_s) · 418 → VenueBanned · 5xx, 408 → ServiceUnavailable
(a TransientError, with the `Retry-After` a 503 may carry) ·
3xx (never followed) and other 4xx → PermanentError · a body we cannot read →
MalformedResponse (a PermanentError).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from urllib.parse import urlsplit

from perpsignal_common.errors import (
    PermanentError,
    PerpSignalError,
    RateLimited,
    TransientError,
    VenueBanned,
)
from perpsignal_common.retry import retry_after_s
from perpsignal_connectors.redact import redact


class MalformedResponse(PermanentError):
    """The vendor answered 2xx with a body that is not the documented shape."""


class ServiceUnavailable(TransientError):
    """A 5xx or 408: retried with backoff, and not before its `Retry-After` when it has one
    (RFC 9110: how long a 503 expects the service to stay unavailable)."""

    def __init__(self, message: str, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class IpBanned(VenueBanned):
    """A 418 whose message says until when the ban lasts (`until_s`, epoch seconds)."""

    def __init__(
        self, message: str, retry_after_s: float | None = None, until_s: float | None = None
    ) -> None:
        super().__init__(message, retry_after_s)
        self.until_s = until_s


# Binance's -1003 message: "Way too many requests; IP(1.2.3.4) banned until 1660556508900.
# Please use the websocket for live updates to avoid bans." (epoch milliseconds)
_BANNED_UNTIL = re.compile(r"banned until (\d{10,16})")


def banned_until_s(text: str) -> float | None:
    """Return the epoch second a ban message names ("banned until <epoch ms>"), else None."""
    found = _BANNED_UNTIL.search(text)
    return int(found.group(1)) / 1000 if found else None


def error_for_status(
    vendor: str, endpoint: str, status: int, headers: Mapping[str, str], snippet: str = ""
) -> PerpSignalError | None:
    """Return the error an HTTP status means, or None for success.

    `snippet` (the body's start) is masked of every vendor key before it is cut to 200
    characters, so pass more than that (`redact.WINDOW`).
    """
    if 300 <= status < 400:
        # never followed (a key header must not go to another host), and its body is not the
        # answer: name where it points (no query: it may carry a token) so the URL gets fixed
        loc = urlsplit(headers.get("location") or headers.get("Location") or "")
        to = f"{loc.scheme}://{loc.netloc}{loc.path}" if loc.netloc else (loc.path or "?")
        return PermanentError(
            f"{vendor} {endpoint}: HTTP {status} redirect to {to[:200]} not followed: "
            "set the vendor's base URL to where it points"
        )
    if status < 400:
        return None
    where = f"{vendor} {endpoint}: HTTP {status}"
    if snippet:
        where += f" {redact(snippet)[:200]!r}"
    if status == 429:
        return RateLimited(where, retry_after_s(headers))
    if status == 418:
        return IpBanned(where, retry_after_s(headers), banned_until_s(snippet))
    if status >= 500 or status == 408:
        return ServiceUnavailable(where, retry_after_s(headers))
    return PermanentError(where)


def error_kind(exc: BaseException) -> str:
    """Return the bounded metric label of an error."""
    if isinstance(exc, RateLimited):
        return "rate_limited"
    if isinstance(exc, VenueBanned):
        return "banned"
    if isinstance(exc, MalformedResponse):
        return "malformed"
    if isinstance(exc, TimeoutError):
        return "timeout"
    if isinstance(exc, TransientError):
        return "transient"
    if isinstance(exc, PermanentError):
        return "permanent"
    return "other"
