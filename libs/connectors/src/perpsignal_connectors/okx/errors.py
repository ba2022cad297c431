"""OKX errors: HTTP status (shared), then the envelope `code` (docs: error-code section)."""

from __future__ import annotations

from typing import Any

from perpsignal_connectors.envelope import check_code_envelope
from perpsignal_connectors.okx.constants import RATE_LIMIT_CODES, TRANSIENT_CODES, VENDOR


def check_envelope(endpoint: str, body: Any) -> None:
    """Raise for a non-zero OKX `code` (50011 → RateLimited)."""
    check_code_envelope(
        VENDOR, endpoint, body, rate_limit_codes=RATE_LIMIT_CODES, transient_codes=TRANSIENT_CODES
    )
