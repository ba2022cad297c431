"""Keep secrets out of every log line, whoever writes it (uvicorn included).

Uvicorn logs each WebSocket with its full path and query (`?apiKey=...`, `?ticket=...`), and
an exception message may quote a URL with credentials. A filter on the root handlers
rewrites every record before it is formatted: credential-like query parameters (their names
decoded as the server's query parser decodes them, so `%61piKey` is apiKey) and URL user
info become `***`, and so does every configured secret (API keys, vendor keys, passwords)
wherever it appears: in the message, in an `extra` field or in an exception's traceback.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import unquote_plus

# one query parameter in free text: a name after "?", "&" or ";" up to its "=", and its value
# up to the next "&", whitespace or fragment. The server's parser (urllib.parse.parse_qs, as
# Starlette's) percent-decodes names and values and reads "+" as a space, so "%61piKey" or
# "api%4Bey" is the apiKey it authenticates with: the name is decoded before it is judged. A
# value ends only where the parser ends it (a quote or ";" is part of a key), never earlier.
_QUERY_PAIR = re.compile(r"([?&;])([^=&\s#?]*)=([^&\s#]*)")
# names compared without case or punctuation: apiKey, api_key, API-KEY, access_token, ...
_SECRET_NAMES = frozenset({"apikey", "key", "ticket", "token", "accesstoken", "secret", "password"})
_NOT_ALNUM = re.compile(r"[^a-z0-9]")
_URL_USERINFO = re.compile(r"([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s\"']*@")
_RESERVED = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
MIN_SECRET_LEN = 4  # shorter values would blank ordinary words


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """Return `text` without credential query parameters, URL user info or given secrets."""
    known = secrets if isinstance(secrets, list | tuple) else list(secrets)

    def pair(match: re.Match[str]) -> str:
        sep, name, value = match.groups()
        if _NOT_ALNUM.sub("", _decoded(name).lower()) in _SECRET_NAMES:
            return f"{sep}{name}=***"
        # a configured secret percent-encoded under any name ("?x=%6Bey-alpha")
        encoded = "%" in value or "+" in value
        if encoded and any(secret in _decoded(value) for secret in known):
            return f"{sep}{name}=***"
        return match.group(0)

    if "=" in text:
        text = _QUERY_PAIR.sub(pair, text)
    text = _URL_USERINFO.sub(r"\1***@", text)
    for secret in known:
        text = text.replace(secret, "***")
    return text


def _decoded(raw: str) -> str:
    """Decode as the query parser does ("+" a space, %XX as UTF-8), and again while it still
    changes (a proxy in front may decode once more): a name hidden under more layers is
    judged by what it may finally be read as."""
    for _ in range(3):
        decoded = unquote_plus(raw)
        if decoded == raw:
            break
        raw = decoded
    return raw


class RedactingFilter(logging.Filter):
    """Rewrite each record's message and string extras through `redact`."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        # longest first, so a key that contains another is blanked whole
        self.secrets = sorted(
            {s for s in secrets if len(s) >= MIN_SECRET_LEN}, key=len, reverse=True
        )

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except Exception:  # a malformed record: let logging report it as usual
            return True
        record.msg = redact(message, self.secrets)
        record.args = None
        if record.exc_info:
            # a traceback quotes exception messages (a URL with its key, a DSN): format it
            # here, redacted, as the `exception` field the JSON and console renderers show
            text = logging.Formatter().formatException(record.exc_info)
            record.exc_info = None
            record.exc_text = None
            record.exception = redact(text, self.secrets)
        for name, value in list(record.__dict__.items()):
            if name not in _RESERVED and not name.startswith("_"):
                setattr(record, name, self._scrub(value))
        return True

    def _scrub(self, value: Any) -> Any:
        if isinstance(value, str):
            return redact(value, self.secrets)
        if isinstance(value, dict):
            return {k: self._scrub(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self._scrub(v) for v in value)
        return value


def install_redaction(secrets: Iterable[str]) -> RedactingFilter:
    """Add a `RedactingFilter` to every handler of the root logger (call after configuring)."""
    flt = RedactingFilter(secrets)
    for handler in logging.getLogger().handlers:
        handler.addFilter(flt)
    return flt
