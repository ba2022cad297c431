"""Vendor keys never leave in vendor text: every configured key is masked in what we log or
publish of a vendor's answer.

A vendor may echo the key it was sent in an error body ("Invalid API key: <key>"), and that
text became the error's message: logged on every poll and published as the source's status
reason (shown by the gateway). Each client remembers its key here (`remember`); every vendor
text is passed through `redact` before it is cut to length (a cut could leave half a key
that no longer matches). Process-wide, so a vendor echoing another vendor's key, or an
error built far from the client that sent the key, is masked too.
"""

from __future__ import annotations

import json
from urllib.parse import quote, quote_plus

MASK = "***"
# A shorter value is no vendor's key format (all are 20+ characters) and would mask common
# words in every message
MIN_SECRET_CHARS = 4
# How much vendor text to read before masking, for a snippet cut afterwards: any key ends
# within it (header values are far shorter)
WINDOW = 8192

_forms: list[str] = []  # every spelling of every key, longest first


def remember(*secrets: str | None) -> None:
    """Mask these keys from now on, as sent and as a URL or JSON string would spell them."""
    forms = set(_forms)
    for secret in secrets:
        value = (secret or "").strip()
        if len(value) < MIN_SECRET_CHARS:
            continue
        forms |= {value, quote(value, safe=""), quote_plus(value), json.dumps(value)[1:-1]}
    _forms[:] = sorted(forms, key=len, reverse=True)


def redact(text: str) -> str:
    """Return `text` with every remembered key replaced by `***`."""
    for form in _forms:
        if form in text:
            text = text.replace(form, MASK)
    return text


def forget_all() -> None:
    """Forget every key (tests)."""
    _forms.clear()
