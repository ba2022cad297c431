"""Symbol normalisation and the symbol universe (what can be tracked on demand).

When the venue's symbol list cannot be fetched and none was fetched before, a symbol the
topics have not shown cannot be judged listed or not: the answer is 503 with the reason and a
`Retry-After` (`SymbolListUnavailable`), never a 404 that blames the symbol.
"""

from __future__ import annotations

import logging
import re
import string
import time
from collections.abc import Awaitable, Callable
from typing import Annotated

from pydantic import StringConstraints, WithJsonSchema

from perpsignal_common.events.values import MAX_SYMBOL_LENGTH
from perpsignal_gateway.errors import PUBLISHED_PATTERNS, ApiError

log = logging.getLogger(__name__)

_QUOTES = ("USDT", "USDC", "BUSD", "FDUSD")
# a coin or pair, optionally with one separator: BTC, BTCUSDT, BTC-USDT, BTC/USDT, BTC_USDT,
# 币安人生, 币安人生/USDT (letters and digits of any script: the symbol is validated before)
_VALID = re.compile(r"[^\W_]{1,20}(?:[-/_][^\W_]{2,10})?")
_SEPARATORS = re.compile(r"[-/_]")
# only a-z are upper-cased: str.upper() maps the long s (U+017F) to "S" and the sharp s to
# "SS", so a long-s "sol" would name SOLUSDT, and a symbol in another script another one
_ASCII_UPPER = str.maketrans(string.ascii_lowercase, string.ascii_uppercase)


# Blocks whose letters and digits the published patterns name beyond ASCII: Latin-1 and
# Latin Extended, Greek, Cyrillic, Hebrew, Arabic, Thai, kana, CJK ideographs, Hangul.
_PUBLISHED_BLOCKS = (
    (0x00C0, 0x024F),
    (0x0370, 0x052F),
    (0x0590, 0x06FF),
    (0x0E00, 0x0E7F),
    (0x3040, 0x30FF),
    (0x4E00, 0x9FFF),
    (0xAC00, 0xD7A3),
)


def _class_body(wanted: Callable[[str], bool]) -> str:
    """The characters of _PUBLISHED_BLOCKS that `wanted` takes, as a regex class body of
    plain characters (ranges of literal code points read alike by every regex engine)."""
    out = []
    for lo, hi in _PUBLISHED_BLOCKS:
        start = None
        for code in range(lo, hi + 2):
            inside = code <= hi and wanted(chr(code))
            if inside and start is None:
                start = code
            elif not inside and start is not None:
                end = code - 1
                out.append(chr(start) if end == start else f"{chr(start)}-{chr(end)}")
                start = None
    return "".join(out)


# letters or digits (Python's \w less "_"), and those but decimal digits (its [^\W\d_])
PUBLISHED_ALNUM = _class_body(lambda c: c.isalnum())
PUBLISHED_ALPHA = _class_body(lambda c: c.isalnum() and not c.isdecimal())


def _rule(chars: str, python_chars: str, ascii_chars: str, *, spaces: bool) -> tuple[str, str, str]:
    """Return (validating, Python, published) patterns of a symbol made of `chars`.

    The contract's symbol (perpsignal_common.events.values.Symbol) with at least one
    character that is no decimal digit or punctuation: a number is never a symbol, and a
    query string cannot tell 5 from "5". pydantic-core validates with its Rust regex, where
    `\\p{L}` excludes what looks like another symbol (joiners, combining marks, variation
    selectors). Python's re reads `\\w` as [\\p{L}\\p{N}_] and `[^\\W\\d_]` as
    [\\p{L}\\p{Nl}\\p{No}], exactly the validating sets: that form checks symbols in process.
    The OpenAPI document cannot publish it: ECMA-262 (the dialect JSON Schema names), Java
    and Go read `\\w` as ASCII, so it told every client but a Python one that 币安人生USDT,
    which this gateway serves, is an invalid argument (and `\\p{L}` does not compile in
    Python's re). It publishes ASCII exactly plus the letters and digits of the common
    scripts (_PUBLISHED_BLOCKS) as plain characters: a subset of what the gateway takes, so
    a request the document allows is never refused; a symbol in another script is still
    served (the description says "any script").
    """
    pad = " *" if spaces else ""
    validating = f"^{pad}[{chars}]*[\\p{{L}}\\p{{Nl}}\\p{{No}}][{chars}]*{pad}$"
    python = f"^{pad}[{python_chars}]*[^\\W\\d_][{python_chars}]*{pad}$"
    any_char, letter = f"[{PUBLISHED_ALNUM}{ascii_chars}]", f"[{PUBLISHED_ALPHA}A-Za-z]"
    published = f"^{pad}{any_char}*{letter}{any_char}*{pad}$"
    return validating, python, published


# a symbol in a URL path: the contract's characters but "/" (BTC, btc, BTCUSDT, BTC-USDT,
# 1000PEPEUSDT, 币安人生USDT); never a bare number, a path or markup
PATH_SYMBOL_PATTERN, PY_PATH_SYMBOL_PATTERN, PUBLISHED_PATH_SYMBOL_PATTERN = _rule(
    r"\p{L}\p{N}_.:+$-", r"\w.:+$-", "A-Za-z0-9_.:+$-", spaces=False
)
# the same in a query string, where BTC/USDT fits too
QUERY_SYMBOL_PATTERN, PY_QUERY_SYMBOL_PATTERN, PUBLISHED_QUERY_SYMBOL_PATTERN = _rule(
    r"\p{L}\p{N}_.:/+$-", r"\w.:/+$-", "A-Za-z0-9_.:/+$-", spaces=False
)
# the same in a JSON body or an /invoke argument, where surrounding spaces fit too
SYMBOL_PATTERN, PY_SYMBOL_PATTERN, PUBLISHED_SYMBOL_PATTERN = _rule(
    r"\p{L}\p{N}_.:/+$-", r"\w.:/+$-", "A-Za-z0-9_.:/+$-", spaces=True
)
PUBLISHED_PATTERNS.update(
    {
        PATH_SYMBOL_PATTERN: PUBLISHED_PATH_SYMBOL_PATTERN,
        QUERY_SYMBOL_PATTERN: PUBLISHED_QUERY_SYMBOL_PATTERN,
        SYMBOL_PATTERN: PUBLISHED_SYMBOL_PATTERN,
    }
)
DESCRIPTION = (
    "BTC, btc, BTCUSDT or 币安人生USDT: letters or digits of any script, _ or . : + $ - "
    "(no invisible joiner, combining mark or variation selector); only a-z are upper-cased"
)


def _schema(published: str, example: str) -> WithJsonSchema:
    return WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_SYMBOL_LENGTH,
            "pattern": published,
            "description": DESCRIPTION,
            "examples": [example],
        }
    )


def _length(pattern: str) -> StringConstraints:
    return StringConstraints(min_length=1, max_length=MAX_SYMBOL_LENGTH, pattern=pattern)


PathSymbol = Annotated[
    str, _length(PATH_SYMBOL_PATTERN), _schema(PUBLISHED_PATH_SYMBOL_PATTERN, "BTC")
]
QuerySymbol = Annotated[
    str, _length(QUERY_SYMBOL_PATTERN), _schema(PUBLISHED_QUERY_SYMBOL_PATTERN, "BTCUSDT")
]
BodySymbol = Annotated[str, _length(SYMBOL_PATTERN), _schema(PUBLISHED_SYMBOL_PATTERN, "BTC")]

_PY_PATH_SYMBOL = re.compile(PY_PATH_SYMBOL_PATTERN)
_PY_SYMBOL = re.compile(PY_SYMBOL_PATTERN)

# Returns every tradable USD-M perpetual symbol; raises when the venue cannot be reached
ListedSymbols = Callable[[], Awaitable[set[str]]]


def ascii_upper(raw: str) -> str:
    """Upper-case a-z only (see _ASCII_UPPER): no other letter names another symbol."""
    return raw.translate(_ASCII_UPPER)


def is_path_symbol(raw: str) -> bool:
    """Return True when `raw` is a symbol a URL path may carry (the routes' rule)."""
    return len(raw) <= MAX_SYMBOL_LENGTH and _PY_PATH_SYMBOL.fullmatch(raw) is not None


def is_symbol(raw: str) -> bool:
    """Return True when `raw` is a symbol a body or a subscription may carry."""
    return len(raw) <= MAX_SYMBOL_LENGTH and _PY_SYMBOL.fullmatch(raw) is not None


def normalize_symbol(raw: str) -> str:
    """Return the Binance symbol for `BTC`, `btc`, `BTCUSDT`, `BTC-USDT` or `BTC/USDT`."""
    upper = ascii_upper(raw.strip())
    if not _VALID.fullmatch(upper):
        # not a coin or pair ("BTC$", "BTC USDT", "BTC-USDT-SWAP"): kept as given, so it is
        # only found when the topics carry exactly it, and a 404 names what was asked for
        return upper
    cleaned = _SEPARATORS.sub("", upper)
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
            {"reason": reason, "retryAfterS": retry_after_s},
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
