"""Vendor envelopes `{"code": ..., "msg": ..., "data": ...}` (OKX, Coinglass) → errors."""

from __future__ import annotations

from typing import Any

from perpsignal_common.errors import PermanentError, RateLimited, TransientError
from perpsignal_connectors.errors import MalformedResponse
from perpsignal_connectors.redact import redact


def check_code_envelope(
    vendor: str,
    endpoint: str,
    body: Any,
    *,
    rate_limit_codes: frozenset[str] = frozenset(),
    transient_codes: frozenset[str] = frozenset(),
) -> None:
    """Raise the taxonomy error an envelope's non-zero `code` means; accept code "0"."""
    if not isinstance(body, dict) or "code" not in body:
        raise MalformedResponse(f"{vendor} {endpoint}: no code/data envelope")
    code = str(body.get("code"))
    if code == "0":
        if "data" not in body:
            raise MalformedResponse(f"{vendor} {endpoint}: envelope without data")
        return
    # the vendor's words, masked of any key it echoes before they are cut
    said = redact(str(body.get("msg", "")))[:200]
    msg = f"{vendor} {endpoint}: code {redact(code)[:40]} {said!r}"
    if code in rate_limit_codes:
        raise RateLimited(msg)
    if code in transient_codes:
        raise TransientError(msg)
    raise PermanentError(msg)
