"""Short-lived, single-use WebSocket tickets, so a browser never puts its API key in a URL.

A client authenticated with `X-API-Key` asks `POST /ws/ticket` for a ticket and opens the
WebSocket with `?ticket=`. A ticket is `expiry.nonce.ident.signature`: HMAC-SHA256 over the
rest with a secret derived from the configured API keys, so every replica with the same keys
accepts the tickets of the others without sharing state; `ident` is the key's rate-limit
identity (an HMAC under that secret, never the key). A replica accepts each nonce once;
across replicas the expiry (`GATEWAY_WS_TICKET_TTL_S`, 60 s) bounds a replay.

A ticket travels in a URL, so it lands in proxy and server logs: the secret is derived with
scrypt, so checking a guessed key against a logged ticket costs tens of milliseconds, not
one SHA-256 (with a plain hash a short or human-chosen key fell to an offline search).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Callable

# scrypt cost: ~35 ms and 16 MiB once per process (RFC 7914's interactive parameters)
_KDF = {"n": 2**14, "r": 8, "p": 1, "maxmem": 64 * 2**20, "dklen": 32}


class TicketBook:
    """Issue and redeem WebSocket tickets."""

    def __init__(
        self,
        api_keys: list[str],
        *,
        ttl_s: float = 60.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if api_keys:
            material = b"\0".join(sorted(k.encode() for k in api_keys))
            self._secret = hashlib.scrypt(material, salt=b"perpsignal-ws-ticket", **_KDF)
        else:  # auth off: tickets are only a formality, any secret will do
            self._secret = secrets.token_bytes(32)
        self.ttl_s = ttl_s
        self._clock = clock
        self._used: dict[str, float] = {}

    def key_ident(self, key: bytes) -> str:
        """Return the rate-limit identity of an API key (the same on every replica)."""
        return hmac.new(self._secret, b"ident\0" + key, hashlib.sha256).hexdigest()[:16]

    def issue(self, ident: str) -> str:
        """Return a ticket for the client with rate-limit identity `ident`."""
        expires = int(self._clock() + self.ttl_s)
        body = f"{expires}.{secrets.token_urlsafe(12)}.{ident}"
        return f"{body}.{self._sign(body)}"

    def redeem(self, ticket: str) -> str | None:
        """Return the ticket's identity if it is genuine, unexpired and unused, else None."""
        body, _, signature = ticket.rpartition(".")
        parts = body.split(".")
        # bytes: compare_digest raises on a str that is not ASCII (a hostile `?ticket=`)
        expected = self._sign(body).encode()
        if len(parts) != 3 or not hmac.compare_digest(signature.encode(), expected):
            return None
        expires, nonce, ident = parts
        now = self._clock()
        if not expires.isdigit() or int(expires) < now or nonce in self._used:
            return None
        self._used = {n: t for n, t in self._used.items() if t >= now}
        self._used[nonce] = float(expires)
        return ident

    def _sign(self, body: str) -> str:
        digest = hmac.new(self._secret, body.encode(), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
