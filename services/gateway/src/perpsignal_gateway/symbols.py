"""Symbol normalisation and the symbol universe (what can be tracked on demand).

When the venue's symbol list cannot be fetched and none was fetched before, a symbol the
topics have not shown cannot be judged listed or not: the answer is 503 with the reason and a
`Retry-After` (`SymbolListUnavailable`), never a 404 that blames the symbol.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable

from perpsignal_gateway.errors import ApiError

log = logging.getLogger(__name__)

_QUOTES = ("USDT", "USDC", "BUSD", "FDUSD")
_CLEAN = re.compile(r"[^A-Z0-9]")
# a coin or pair, optionally with one separator: BTC, BTCUSDT, BTC-USDT, BTC/USDT, BTC_USDT
_VALID = re.compile(r"[A-Z0-9]{1,20}(?:[-/_][A-Z0-9]{2,10})?")

# a symbol in a URL path: letters, digits, "-" and "_" with at least one letter (BTC, btc,
# BTCUSDT, BTC-USDT, 1000PEPEUSDT); never a bare number, a path or markup
PATH_SYMBOL_PATTERN = r"^[A-Za-z0-9_-]*[A-Za-z][A-Za-z0-9_-]*$"
# the same in a JSON body or an /invoke argument, where BTC/USDT and surrounding spaces fit too
SYMBOL_PATTERN = r"^ *[A-Za-z0-9/_-]*[A-Za-z][A-Za-z0-9/_-]* *$"

# Returns every tradable USD-M perpetual symbol; raises when the venue cannot be reached
ListedSymbols = Callable[[], Awaitable[set[str]]]


def normalize_symbol(raw: str) -> str:
    """Return the Binance symbol for `BTC`, `btc`, `BTCUSDT`, `BTC-USDT` or `BTC/USDT`."""
    upper = raw.strip().upper()
    if not _VALID.fullmatch(upper):
        # not a symbol at all ("BTC$", "BTC USDT"): kept as given, so it is never listed and
        # the caller answers 404 naming exactly what was asked for
        return upper
    cleaned = _CLEAN.sub("", upper)
    if not cleaned:
        return cleaned
    if cleaned.endswith(_QUOTES) and len(cleaned) > 4:
        return cleaned
    return cleaned + "USDT"


RETRY_S = 30  # how soon a failed symbol-list fetch is tried again


class SymbolListUnavailable(ApiError):
    """503: the venue's symbol list could not be fetched, so no symbol can be judged."""

    def __init__(self, reason: str, retry_after_s: int) -> None:
        super().__init__(
            503,
            "symbol_list_unavailable",
            "the Binance USD-M symbol list could not be fetched, so whether this symbol is "
            f"listed is unknown ({reason}); retry in {retry_after_s} s",
            {"reason": reason, "retry_after_s": retry_after_s},
            headers={"Retry-After": str(retry_after_s)},
        )


def _reason(exc: BaseException) -> str:
    # ApiError messages are written for clients (no URL, no key); anything else: its type
    return exc.message if isinstance(exc, ApiError) else type(exc).__name__


class SymbolUniverse:
    """Listed symbols from the venue (cached), or None when the venue cannot be reached."""

    def __init__(self, fetch: ListedSymbols | None, *, ttl_s: float = 600.0) -> None:
        self._fetch = fetch
        self._ttl_s = ttl_s
        self._symbols: set[str] | None = None
        self._fetched_at = 0.0
        self._warned = False
        self._failure: str | None = None  # why the last fetch failed (None: it worked)

    async def listed(self) -> set[str] | None:
        """Return listed symbols, refreshing at most once per TTL; None without a venue.

        Raises `SymbolListUnavailable` when the venue failed and no list was ever fetched
        (a list fetched before is kept and used while the venue is down).
        """
        if self._fetch is None:
            return self._symbols
        now = time.monotonic()
        if now - self._fetched_at < self._ttl_s and (
            self._symbols is not None or self._failure is not None
        ):
            return self._known(now)
        try:
            self._symbols = await self._fetch()
            self._fetched_at = now
            if self._failure is not None:
                log.info("symbol universe available again", extra={"symbols": len(self._symbols)})
            self._failure = None
            self._warned = False
        except Exception as exc:  # the venue is optional here: fall back to what we have
            self._failure = _reason(exc)
            if not self._warned:  # one line per outage, not per request
                log.warning(
                    "symbol universe unavailable; only symbols seen on the topics are known",
                    extra={"error_type": type(exc).__name__, "reason": self._failure},
                )
                self._warned = True
            self._fetched_at = now - self._ttl_s + RETRY_S  # retry later, not on every request
        return self._known(now)

    def _known(self, now: float) -> set[str]:
        if self._symbols is not None:
            return self._symbols
        retry = max(1, round(self._fetched_at + self._ttl_s - now))
        raise SymbolListUnavailable(self._failure or "not fetched yet", retry)
