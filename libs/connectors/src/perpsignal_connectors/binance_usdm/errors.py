"""Binance error mapping: HTTP status first (shared), then the weight header.

Binance answers errors as `{"code": -1121, "msg": "Invalid symbol."}` with a 4xx status, so
the shared status mapping already gives the right class; 403 is a WAF block (permanent for
this request). Docs: https://developers.binance.com/docs/derivatives/usds-margined-futures/error-code
"""

from __future__ import annotations

import httpx

from perpsignal_connectors.binance_usdm.constants import USED_WEIGHT_HEADER, WEIGHT


def read_usage(headers: httpx.Headers) -> dict[str, int]:
    """Return the weight Binance says this IP used in the current minute."""
    raw = headers.get(USED_WEIGHT_HEADER)
    if raw is None:
        return {}
    try:
        return {WEIGHT: int(raw)}
    except ValueError:
        return {}
