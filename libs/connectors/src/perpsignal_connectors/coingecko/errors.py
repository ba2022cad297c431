"""CoinGecko errors: HTTP status (shared), then an error body wherever it comes.

Docs ("Errors & Rate Limits"): 429 on excess; CoinGecko's own codes 10002 (key missing),
10005 (plan restricted), 10010/10011 (key of the other plan's host). Its error bodies are
`{"status": {"error_code": N, "error_message": "..."}}` (401, 429), sometimes nested as
`{"error": {"status": {...}}}`, or `{"error": "..."}` (400, 404). Such a body under a 200
(a CDN or proxy passing the vendor's error on) must be an error, never data: the trending
list read `{"status": ...}` as "no coin is trending".
"""

from __future__ import annotations

from typing import Any

from perpsignal_common.errors import PermanentError, RateLimited, TransientError
from perpsignal_connectors.coingecko.constants import VENDOR
from perpsignal_connectors.redact import redact


def check_envelope(endpoint: str, body: Any) -> None:
    """Raise the error a CoinGecko error body means; accept anything else."""
    if not isinstance(body, dict):
        return
    error = body.get("error")
    status = body.get("status")
    if isinstance(error, dict) and isinstance(error.get("status"), dict):
        status = error["status"]
    if isinstance(status, dict) and status.get("error_code") not in (None, 0, "0"):
        code = str(status.get("error_code"))[:20]
        said = redact(str(status.get("error_message", "")))[:200]
    elif isinstance(error, str) and error:
        code, said = "", redact(error)[:200]
    else:
        return
    msg = f"{VENDOR} {endpoint}: error {code + ' ' if code else ''}{said!r}"
    if code == "429":
        raise RateLimited(msg)
    if code in ("408", "500", "502", "503", "504"):
        raise TransientError(msg)
    raise PermanentError(msg)
