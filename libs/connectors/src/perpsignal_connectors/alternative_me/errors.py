"""alternative.me errors: HTTP status (shared) and `metadata.error` when it is set."""

from __future__ import annotations

from typing import Any

from perpsignal_common.errors import PermanentError
from perpsignal_connectors.alternative_me.constants import VENDOR
from perpsignal_connectors.redact import redact


def check_envelope(endpoint: str, body: Any) -> None:
    """Raise when the body reports an error in `metadata.error`."""
    meta = body.get("metadata") if isinstance(body, dict) else None
    if isinstance(meta, dict) and meta.get("error"):
        raise PermanentError(f"{VENDOR} {endpoint}: {redact(str(meta['error']))[:200]}")
