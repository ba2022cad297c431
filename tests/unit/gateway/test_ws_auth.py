"""WebSocket authentication without a key in the URL, and refusals a client can tell apart."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json

import httpx
import pytest
import websockets

from perpsignal_gateway.tickets import TicketBook
from tests.unit.gateway.test_streams import _serving


async def _close_code(url: str, **kwargs: object) -> tuple[int, str]:
    async with websockets.connect(url, **kwargs) as ws:  # type: ignore[arg-type]
        with pytest.raises(websockets.exceptions.ConnectionClosed) as closed:
            while True:
                await ws.recv()
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


async def test_a_ticket_fetched_with_the_header_opens_one_websocket() -> None:
    async with _serving() as (_, url):
        base = url.removesuffix("/ws/signals?apiKey=k1")
        http = base.replace("ws://", "http://")
        async with httpx.AsyncClient(base_url=http) as client:
            refused = await client.post("/ws/ticket")
            assert refused.status_code == 401
            r = await client.post("/ws/ticket", headers={"X-API-Key": "k1"})
        assert r.status_code == 200 and r.headers["cache-control"] == "no-store"
        body = r.json()
        # the ticket is an expiry, a nonce and a MAC, none of them the key (a random part may
        # hold the two letters "k1" by chance: about one run in a hundred)
        assert body["expiresInS"] == 60 and "k1" not in body["ticket"].split(".")
        async with websockets.connect(f"{base}/ws/signals?ticket={body['ticket']}") as ws:
            assert json.loads(await ws.recv())["type"] == "subscribed"
        # single use: the same ticket again is refused like a bad key
        code, _ = await _close_code(f"{base}/ws/signals?ticket={body['ticket']}")
        assert code == 4401
        forged = body["ticket"][:-4] + "AAAA"
        assert (await _close_code(f"{base}/ws/signals?ticket={forged}"))[0] == 4401


async def test_rate_limited_websocket_closes_with_4429_not_the_bad_key_code() -> None:
    async with _serving(gateway_rate_limit="2/minute") as (_, url):
        base = url.removesuffix("/ws/signals?apiKey=k1")
        for _ in range(2):
            async with websockets.connect(url) as ws:
                assert json.loads(await ws.recv())["type"] == "subscribed"
        code, reason = await _close_code(url)
        assert code == 4429 and "retry in" in reason
        bad_code, bad_reason = await _close_code(f"{base}/ws/signals?apiKey=wrong")
        assert bad_code == 4401 and "key" in bad_reason.lower()


@pytest.mark.parametrize("ticket", ["1.2.3.%C3%A9", "a.b.c.%E2%82%AC", "%E2%9C%93.n.id.%E2%9C%93"])
async def test_a_non_ascii_ticket_is_refused_like_a_bad_one(ticket: str) -> None:
    async with _serving() as (_, url):
        base = url.removesuffix("/ws/signals?apiKey=k1")
        code, _ = await _close_code(f"{base}/ws/signals?ticket={ticket}")
        assert code == 4401


def test_tickets_expire_and_carry_no_key() -> None:
    now = [1000.0]
    book = TicketBook(["secret-key-1"], ttl_s=60, clock=lambda: now[0])
    ticket = book.issue("ident-a")
    assert "secret-key-1" not in ticket
    now[0] += 61
    assert book.redeem(ticket) is None
    now[0] = 1000.0
    other_replica = TicketBook(["secret-key-1"], ttl_s=60, clock=lambda: now[0])
    assert other_replica.redeem(ticket) == "ident-a"  # same keys, same secret
    assert TicketBook(["another-key"], clock=lambda: now[0]).redeem(book.issue("x")) is None


def test_a_logged_ticket_is_no_quick_check_of_a_guessed_key() -> None:
    """A ticket rides in a URL into proxy logs: it must not let a short key be searched for.

    It carried SHA-256(key) as its identity and was signed under SHA-256 of the keys, so one
    hash per guess told whether a guessed key was the key.
    """
    key = "team-1"  # a short, human-chosen key: the case an offline search wins
    book = TicketBook([key])
    ident = book.key_ident(key.encode())
    ticket = book.issue(ident)
    body, _, signature = ticket.rpartition(".")
    quick = [hashlib.new(name, key.encode()).hexdigest() for name in ("sha256", "sha1", "md5")]
    assert not any(q[:16] in ticket for q in quick)  # no fast hash of the key in it
    for derive in (  # nor a signature any fast derivation of the key reproduces
        lambda k: hashlib.sha256(b"perpsignal-ws-ticket\0" + k).digest(),
        lambda k: hashlib.sha256(k).digest(),
        lambda k: k,
    ):
        mac = hmac.new(derive(key.encode()), body.encode(), hashlib.sha256).digest()
        assert base64.urlsafe_b64encode(mac).rstrip(b"=").decode() != signature
    # the identity is still one per key and the same on every replica
    assert TicketBook([key]).key_ident(key.encode()) == ident
    assert book.key_ident(b"team-2") != ident
