"""Symbol normalisation and the symbol universe (what can be tracked on demand)."""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Awaitable, Callable

log = logging.getLogger(__name__)

_QUOTES = ("USDT", "USDC", "BUSD", "FDUSD")
_CLEAN = re.compile(r"[^A-Z0-9]")
# a coin or pair, optionally with one separator: BTC, BTCUSDT, BTC-USDT, BTC/USDT, BTC_USDT
_VALID = re.compile(r"[A-Z0-9]{1,20}(?:[-/_][A-Z0-9]{2,10})?")

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


class SymbolUniverse:
    """Listed symbols from the venue (cached), or None when the venue cannot be reached."""

    def __init__(self, fetch: ListedSymbols | None, *, ttl_s: float = 600.0) -> None:
        self._fetch = fetch
        self._ttl_s = ttl_s
        self._symbols: set[str] | None = None
        self._fetched_at = 0.0
        self._warned = False

    async def listed(self) -> set[str] | None:
        """Return listed symbols, refreshing at most once per TTL; None when unknown."""
        if self._fetch is None:
            return self._symbols
        now = time.monotonic()
        if self._symbols is not None and now - self._fetched_at < self._ttl_s:
            return self._symbols
        try:
            self._symbols = await self._fetch()
            self._fetched_at = now
        except Exception as exc:  # the venue is optional here: fall back to what we have
            if not self._warned:
                log.warning(
                    "symbol universe unavailable; only symbols seen on the topics are known",
                    extra={"error_type": type(exc).__name__},
                )
                self._warned = True
            self._fetched_at = now - self._ttl_s + 30  # retry in 30 s, not on every request
        return self._symbols
