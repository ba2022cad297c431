"""Coinglass errors: HTTP status (shared), then the envelope's string `code` (0 = success).

Docs: https://docs.coinglass.com/reference/responses-error-codes — codes mirror HTTP
meanings: 400 bad params, 401 key, 404, 408 timeout, 422, 429 rate limit, 500.
"""

from __future__ import annotations

from typing import Any

import httpx

from perpsignal_connectors.coinglass.constants import (
    CALLS,
    RATE_LIMIT_CODES,
    TRANSIENT_CODES,
    USE_LIMIT_HEADER,
    VENDOR,
)
from perpsignal_connectors.envelope import check_code_envelope


def check_envelope(endpoint: str, body: Any) -> None:
    """Raise for a non-zero Coinglass `code`."""
    check_code_envelope(
        VENDOR, endpoint, body, rate_limit_codes=RATE_LIMIT_CODES, transient_codes=TRANSIENT_CODES
    )


def read_usage(headers: httpx.Headers) -> dict[str, int]:
    """Return the calls Coinglass says the key used in the current minute."""
    raw = headers.get(USE_LIMIT_HEADER)
    try:
        return {CALLS: int(raw)} if raw is not None else {}
    except ValueError:
        return {}
