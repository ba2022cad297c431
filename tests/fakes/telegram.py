"""A local server that speaks the Telegram Bot API, with fault injection and a message log.

Point aiogram at it with `AiohttpSession(api=TelegramAPIServer.from_base(fake.base_url))`
(or `TELEGRAM_API_BASE=fake.base_url` for a service process). Supported methods: getMe,
sendMessage, getUpdates (long polling; feed it with `push_command`), deleteWebhook,
setMyCommands / getMyCommands (validated like Telegram: 1-32 lowercase letters, digits or
underscores, descriptions of 1-256 characters, at most 100 commands; the default scope only),
getChat, close. Everything else answers 404 "Not Found" like Telegram does.

Like the real server it rejects HTML that Telegram would not render (unknown tags, unbalanced
tags, bare `&`/`<`) and texts over 4096 visible characters (counted in UTF-16 code units, an
emoji is two) with 400 "can't parse entities" / "message is too long", so tests catch escaping
and length bugs. Like Telegram it also finds the entities it makes by itself in the sent text
(URLs and e-mail addresses, `tg://` links, @mentions, /commands; not inside `<code>`, `<pre>`
or `<a>`): `SentMessage.auto_entities` and the `entities` of the returned message, so a test
can see that upstream text would have become a tappable link.

Faults:
    fake.fail("sendMessage", status=429, retry_after=2, times=1)   # flood control
    fake.fail("sendMessage", status=502, times=2)                  # Bad Gateway twice
    fake.fail("sendMessage", status=502, html=True)                # nginx's HTML error page
    fake.fail("sendMessage", status=307, times=None)               # a redirect loop
    fake.block(chat_id)                                            # 403 bot was blocked
    fake.migrate(group_id, supergroup_id)                          # 400 + migrate_to_chat_id
    fake.slow(delay_s=5, times=1, deliver=False)                   # a timeout, not delivered
    fake.hold_after(n)                                             # record, then hang (kills)
    fake.cut_body(times=1)                                         # deliver, answer cut short
    FakeTelegram(enforce_limits=True)                              # 429 above 30/s, 20/min/group

Standalone (benchmarks, manual runs): `python -m tests.fakes.telegram --port 8081`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import re
import time
import unicodedata
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from html import unescape
from html.parser import HTMLParser
from typing import Any

from aiohttp import web

DEFAULT_TOKEN = "123456789:TEST-fake-telegram-token"
ALLOWED_TAGS = {
    "b", "strong", "i", "em", "u", "ins", "s", "strike", "del", "span", "tg-spoiler", "a",
    "code", "pre", "blockquote", "tg-emoji",
}  # fmt: skip
COMMAND_NAME = re.compile(r"[a-z0-9_]{1,32}")
BAD_AMP = re.compile(r"&(?!(?:lt|gt|amp|quot|#\d+|#x[0-9a-fA-F]+);)")
BAD_LT = re.compile(r"<(?!/?[a-zA-Z])")
TAG = re.compile(r"<[^>]*>")


@dataclass
class SentMessage:
    """One message the bot sent, as the fake recorded it."""

    message_id: int
    chat_id: int
    text: str
    parse_mode: str | None
    at: float
    link_preview_options: dict[str, Any] | None = None

    @property
    def auto_entities(self) -> list[tuple[str, str]]:
        """Return (type, text) of the links Telegram would make in this message by itself."""
        if (self.parse_mode or "").upper() == "HTML":
            visible, spared = parse_html(self.text)
        else:
            visible, spared = self.text, []
        return [(kind, visible[a:b]) for kind, a, b in find_auto_entities(visible, spared)]

    @property
    def visible_text(self) -> str:
        """Return what the user reads: tags removed, entities decoded."""
        if (self.parse_mode or "").upper() != "HTML":
            return self.text
        return unescape(TAG.sub("", self.text))


@dataclass
class Fault:
    """A scripted failure of `method` (optionally only for `chat_id`)."""

    method: str
    status: int
    description: str
    times: int | None
    chat_id: int | None = None
    retry_after: int | None = None
    html: bool = False


@dataclass
class Slow:
    """A delayed answer; `deliver=False` drops the request after the delay (lost upstream)."""

    delay_s: float
    times: int | None
    deliver: bool


class _HtmlChecker(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=False)
        self.stack: list[str] = []
        self.error: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            self.error = self.error or f'Unsupported start tag "{tag}"'
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            self.error = self.error or f'Can\'t find end tag corresponding to start tag "{tag}"'
            return
        self.stack.pop()


def check_html(text: str) -> str | None:
    """Return Telegram's parse error for `text` in HTML mode, or None when it renders."""
    if BAD_AMP.search(text) or BAD_LT.search(text):
        return "Bad Request: can't parse entities: unsupported character sequence"
    checker = _HtmlChecker()
    checker.feed(text)
    checker.close()
    if checker.error:
        return f"Bad Request: can't parse entities: {checker.error}"
    if checker.stack:
        return f'Bad Request: can\'t parse entities: unclosed tag "{checker.stack[-1]}"'
    return None


class _HtmlText(HTMLParser):
    """The visible text of Telegram HTML and the spans Telegram finds no links in."""

    SPARED = frozenset({"code", "pre", "a"})

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.length = 0
        self.open: list[tuple[str, int]] = []
        self.spared: list[tuple[int, int]] = []

    def handle_data(self, data: str) -> None:
        self.parts.append(data)
        self.length += len(data)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.open.append((tag, self.length))

    def handle_endtag(self, tag: str) -> None:
        if self.open and self.open[-1][0] == tag:
            _, start = self.open.pop()
            if tag in self.SPARED:
                self.spared.append((start, self.length))


def parse_html(text: str) -> tuple[str, list[tuple[int, int]]]:
    """Return the visible text of valid Telegram HTML and its code/pre/a spans."""
    parser = _HtmlText()
    parser.feed(text)
    parser.close()
    return "".join(parser.parts), parser.spared


# Telegram's (tdlib's find_entities) rules, simplified where that only finds *more* links
_MENTION = re.compile(r"(?<!\w)@[A-Za-z0-9_]{2,32}(?!\w)")
_COMMAND = re.compile(r"(?<![\w/<>])/[A-Za-z0-9_]{1,64}(?:@[A-Za-z0-9_]{3,32})?(?![\w/<>])")
_TG_URL = re.compile(r"(?i)\b(?:tg|ton|tonsite)://[a-z0-9_-]{1,253}")


def _domain_symbol(ch: str) -> bool:
    c = ord(ch)
    if c < 0xC0:
        return ch in ".-_~" or (ch.isascii() and ch.isalnum())
    if 0x2000 <= c <= 0x206F:  # general punctuation: only ZWNJ, ZWJ and dashes
        return c in (0x200C, 0x200D) or 0x2010 <= c <= 0x2015
    return not unicodedata.category(ch).startswith("Z")


def _urls(text: str) -> list[tuple[int, int]]:
    """Domains around each `.`, taken as links when the last label looks like a TLD."""
    found: list[tuple[int, int]] = []
    for dot in (i for i, ch in enumerate(text) if ch == "."):
        if found and found[-1][0] <= dot < found[-1][1]:
            continue
        start = dot
        while start > 0 and _domain_symbol(text[start - 1]):
            start -= 1
        end = dot + 1
        while end < len(text) and _domain_symbol(text[end]):
            end += 1
        host = text[start:end].rstrip(".")
        labels = host.split(".")
        tld = labels[-1]
        ipv4 = len(labels) == 4 and all(x.isdigit() and int(x) < 256 for x in labels)
        if len(labels) > 1 and all(labels) and ((len(tld) >= 2 and tld.isalpha()) or ipv4):
            found.append((start, start + len(host)))
    return found


def find_auto_entities(
    text: str, spared: Sequence[tuple[int, int]] = ()
) -> list[tuple[str, int, int]]:
    """Return (type, start, end) of the entities Telegram adds to `text` by itself.

    Offsets are Python string indices. An entity that overlaps a `spared` span (an explicit
    code/pre/link entity) is dropped, as Telegram's merge of found entities does.
    """
    found = [("mention", m.start(), m.end()) for m in _MENTION.finditer(text)]
    found += [("bot_command", m.start(), m.end()) for m in _COMMAND.finditer(text)]
    found += [("url", m.start(), m.end()) for m in _TG_URL.finditer(text)]
    found += [("url", a, b) for a, b in _urls(text)]
    kept = [(kind, a, b) for kind, a, b in found if not any(a < e and s < b for s, e in spared)]
    return sorted(kept, key=lambda entity: (entity[1], entity[0]))


def _utf16(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _entities_json(text: str, spared: list[tuple[int, int]]) -> list[dict[str, Any]]:
    return [
        {"type": kind, "offset": _utf16(text[:a]), "length": _utf16(text[a:b])}
        for kind, a, b in find_auto_entities(text, spared)
    ]


@dataclass
class FakeTelegram:
    """The fake Bot API server: `await start()`, use `base_url`, `await stop()`."""

    token: str = DEFAULT_TOKEN
    host: str = "127.0.0.1"
    port: int = 0
    enforce_limits: bool = False
    global_per_s: int = 30
    group_per_min: int = 20
    bot_username: str = "perpsignal_test_bot"
    messages: list[SentMessage] = field(default_factory=list)
    calls: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    rejected: list[tuple[str, int, str]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self._faults: list[Fault] = []
        self._slow: list[Slow] = []
        self._blocked: set[int] = set()
        self._migrated: dict[int, int] = {}
        self.commands: list[dict[str, str]] = []
        self._updates: list[dict[str, Any]] = []
        self._update_ids = itertools.count(1)
        self._message_ids = itertools.count(1)
        self._new_update = asyncio.Event()
        self._hold_after: int | None = None
        self._cut_bodies = 0
        self._release = asyncio.Event()
        self._release.set()
        self._window_all: deque[float] = deque()
        self._window_chat: dict[int, deque[float]] = {}
        self._runner: web.AppRunner | None = None

    # lifecycle

    @property
    def base_url(self) -> str:
        """Return the URL to give aiogram's `TelegramAPIServer.from_base`."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> FakeTelegram:
        """Listen on `host:port` (port 0 picks a free one, then `port` holds it)."""
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._dispatch)
        # held or slow handlers must not stall shutdown for aiohttp's default 60 s
        self._runner = web.AppRunner(
            app, handle_signals=False, access_log=None, shutdown_timeout=0.5
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        self.port = int(server.sockets[0].getsockname()[1])
        return self

    async def stop(self) -> None:
        """Release held requests and close the server."""
        self._release.set()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> FakeTelegram:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    # fault injection

    def fail(
        self,
        method: str = "sendMessage",
        *,
        status: int = 500,
        times: int | None = 1,
        retry_after: int | None = None,
        chat_id: int | None = None,
        description: str | None = None,
        html: bool = False,
    ) -> None:
        """Answer the next `times` calls of `method` (None = forever) with an error.

        `html=True` answers with an HTML error page instead of the Bot API's JSON, as the
        nginx in front of api.telegram.org (or a proxy) does during an outage.
        """
        if description is None:
            description = {
                429: f"Too Many Requests: retry after {retry_after or 1}",
                403: "Forbidden: bot was blocked by the user",
                400: "Bad Request: chat not found",
                401: "Unauthorized",
                502: "Bad Gateway",
            }.get(status, "Internal Server Error")
        if status == 429 and retry_after is None:
            retry_after = 1
        self._faults.append(Fault(method, status, description, times, chat_id, retry_after, html))

    def block(self, chat_id: int) -> None:
        """Make every send to `chat_id` fail with 403 (the user blocked the bot)."""
        self._blocked.add(chat_id)

    def migrate(self, group_id: int, supergroup_id: int) -> None:
        """Upgrade a group to a supergroup: sends to the old id fail as Telegram's do.

        Telegram answers 400 "group chat was upgraded to a supergroup chat" with
        `parameters.migrate_to_chat_id`; the new id works like any chat.
        """
        self._migrated[group_id] = supergroup_id

    def slow(self, delay_s: float, *, times: int | None = 1, deliver: bool = True) -> None:
        """Delay the next `times` sendMessage answers; `deliver=False` drops them instead."""
        self._slow.append(Slow(delay_s, times, deliver))

    def cut_body(self, times: int = 1) -> None:
        """Deliver the next `times` messages, then drop the connection mid-answer."""
        self._cut_bodies += times

    def hold_after(self, n: int) -> None:
        """Record messages beyond the first `n`, but do not answer them until `release()`."""
        self._hold_after = n
        self._release.clear()

    def release(self) -> None:
        """Answer held requests and stop holding."""
        self._hold_after = None
        self._release.set()

    def clear_faults(self) -> None:
        """Forget every scripted fault, block and delay."""
        self._faults.clear()
        self._slow.clear()
        self._blocked.clear()
        self._migrated.clear()

    # updates (bot commands)

    def push_command(
        self, chat_id: int, text: str, *, chat_type: str | None = None, title: str | None = None
    ) -> int:
        """Queue a message from a user (e.g. `/subscribe BTC`); return its update id."""
        kind = chat_type or ("private" if chat_id > 0 else "supergroup")
        chat: dict[str, Any] = {"id": chat_id, "type": kind}
        if kind != "private":
            chat["title"] = title or f"group {chat_id}"
        else:
            chat["first_name"] = "Tester"
        command = text.split()[0] if text.startswith("/") else None
        message: dict[str, Any] = {
            "message_id": next(self._message_ids),
            "date": int(time.time()),
            "chat": chat,
            "from": {"id": abs(chat_id), "is_bot": False, "first_name": "Tester"},
            "text": text,
        }
        if command:
            message["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        update_id = next(self._update_ids)
        self._updates.append({"update_id": update_id, "message": message})
        self._new_update.set()
        return update_id

    # queries

    def messages_to(self, chat_id: int) -> list[SentMessage]:
        """Return the messages sent to one chat, in order."""
        return [m for m in self.messages if m.chat_id == chat_id]

    def count(self, method: str) -> int:
        """Return how many calls of `method` arrived (failed ones included)."""
        return sum(1 for m, _ in self.calls if m == method)

    # HTTP

    async def _dispatch(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return _error(401, "Unauthorized")
        method = request.match_info["method"]
        params = await _params(request)
        self.calls.append((method, params))
        handler = getattr(self, f"_m_{method.lower()}", None)
        if handler is None:
            return _error(404, "Not Found")
        fault = self._take_fault(method, params)
        if fault is not None:
            self.rejected.append((method, fault.status, fault.description))
            if fault.status in (301, 302, 307, 308):  # a misconfigured proxy's redirect loop
                return web.Response(status=fault.status, headers={"Location": str(request.url)})
            if fault.html:
                page = f"<html><body><h1>{fault.status} {fault.description}</h1></body></html>"
                return web.Response(status=fault.status, text=page, content_type="text/html")
            extra = {"retry_after": fault.retry_after} if fault.retry_after else None
            return _error(fault.status, fault.description, extra)
        result: web.Response = await handler(params)
        if method.lower() == "sendmessage" and self._cut_bodies > 0 and result.status == 200:
            self._cut_bodies -= 1
            return await _cut_body(request, result)
        return result

    def _take_fault(self, method: str, params: dict[str, Any]) -> Fault | None:
        chat = _int(params.get("chat_id"))
        for fault in self._faults:
            if fault.method.lower() != method.lower():
                continue
            if fault.chat_id is not None and fault.chat_id != chat:
                continue
            if fault.times is not None:
                fault.times -= 1
                if fault.times <= 0:
                    self._faults.remove(fault)
            return fault
        return None

    async def _m_getme(self, params: dict[str, Any]) -> web.Response:
        return _ok(
            {
                "id": int(self.token.split(":")[0]),
                "is_bot": True,
                "first_name": "PerpSignal Test",
                "username": self.bot_username,
            }
        )

    async def _m_deletewebhook(self, params: dict[str, Any]) -> web.Response:
        return _ok(True)

    async def _m_setmycommands(self, params: dict[str, Any]) -> web.Response:
        commands = params.get("commands")
        if not isinstance(commands, list):
            return _error(400, "Bad Request: can't parse commands JSON object")
        if len(commands) > 100:
            return _error(400, "Bad Request: too many commands")
        for c in commands:
            if not isinstance(c, dict) or not COMMAND_NAME.fullmatch(str(c.get("command", ""))):
                return _error(400, "Bad Request: BOT_COMMAND_INVALID")
            if not 1 <= len(str(c.get("description", "")).strip()) <= 256:
                return _error(400, "Bad Request: command description is empty or too long")
        self.commands = [
            {"command": str(c["command"]), "description": str(c["description"])} for c in commands
        ]
        return _ok(True)

    async def _m_getmycommands(self, params: dict[str, Any]) -> web.Response:
        return _ok(self.commands)

    async def _m_close(self, params: dict[str, Any]) -> web.Response:
        return _ok(True)

    async def _m_getchat(self, params: dict[str, Any]) -> web.Response:
        chat_id = _int(params.get("chat_id")) or 0
        return _ok({"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"})

    async def _m_getupdates(self, params: dict[str, Any]) -> web.Response:
        offset = _int(params.get("offset"))
        if offset is not None:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        timeout = min(float(params.get("timeout") or 0), 50.0)
        if not self._updates and timeout > 0:
            self._new_update.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._new_update.wait(), timeout)
        limit = _int(params.get("limit")) or 100
        return _ok(self._updates[:limit])

    async def _m_sendmessage(self, params: dict[str, Any]) -> web.Response:
        chat_id = _int(params.get("chat_id"))
        text = str(params.get("text") or "")
        parse_mode = params.get("parse_mode")
        if chat_id is None:
            return _error(400, "Bad Request: chat_id is empty")
        if self._slow:
            slow = self._slow[0]
            if slow.times is not None:
                slow.times -= 1
                if slow.times <= 0:
                    self._slow.pop(0)
            await asyncio.sleep(slow.delay_s)
            if not slow.deliver:
                return _error(504, "Gateway Timeout")
        if chat_id in self._blocked:
            self.rejected.append(("sendMessage", 403, "blocked"))
            return _error(403, "Forbidden: bot was blocked by the user")
        if chat_id in self._migrated:
            self.rejected.append(("sendMessage", 400, "migrated"))
            return _error(
                400,
                "Bad Request: group chat was upgraded to a supergroup chat",
                {"migrate_to_chat_id": self._migrated[chat_id]},
            )
        if str(parse_mode or "").upper() == "HTML":
            problem = check_html(text)
            if problem:
                self.rejected.append(("sendMessage", 400, problem))
                return _error(400, problem)
            visible, spared = parse_html(text)
        else:
            visible, spared = text, []
        if not visible.strip():
            return _error(400, "Bad Request: message text is empty")
        if len(visible.encode("utf-16-le")) // 2 > 4096:  # Telegram counts UTF-16 units
            return _error(400, "Bad Request: message is too long")
        if self.enforce_limits:
            retry = self._over_limit(chat_id)
            if retry is not None:
                self.rejected.append(("sendMessage", 429, "flood"))
                return _error(
                    429, f"Too Many Requests: retry after {retry}", {"retry_after": retry}
                )
        preview = params.get("link_preview_options")
        message = SentMessage(
            next(self._message_ids),
            chat_id,
            text,
            parse_mode,
            time.monotonic(),
            preview if isinstance(preview, dict) else None,
        )
        self.messages.append(message)
        if self._hold_after is not None and len(self.messages) > self._hold_after:
            await self._release.wait()
        kind = "private" if chat_id > 0 else "supergroup"
        answer: dict[str, Any] = {
            "message_id": message.message_id,
            "date": int(time.time()),
            "chat": {"id": chat_id, "type": kind},
            "text": visible,
        }
        entities = _entities_json(visible, spared)
        if entities:
            answer["entities"] = entities
        return _ok(answer)

    def _over_limit(self, chat_id: int) -> int | None:
        now = time.monotonic()
        while self._window_all and self._window_all[0] <= now - 1.0:
            self._window_all.popleft()
        if len(self._window_all) >= self.global_per_s:
            return 1
        if chat_id < 0:
            window = self._window_chat.setdefault(chat_id, deque())
            while window and window[0] <= now - 60.0:
                window.popleft()
            if len(window) >= self.group_per_min:
                return max(1, int(window[0] + 60.0 - now) + 1)
            window.append(now)
        self._window_all.append(now)
        return None


async def _params(request: web.Request) -> dict[str, Any]:
    params: dict[str, Any] = dict(request.query)
    if request.can_read_body:
        if request.content_type == "application/json":
            params.update(await request.json())
        else:
            form = await request.post()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
    for key in (
        "allowed_updates",
        "reply_markup",
        "link_preview_options",
        "entities",
        "commands",
        "scope",
    ):
        if isinstance(params.get(key), str):
            with contextlib.suppress(ValueError):
                params[key] = json.loads(params[key])
    return params


async def _cut_body(request: web.Request, answer: web.Response) -> web.StreamResponse:
    """Send `answer`'s status and headers and half its body, then close the connection."""
    body = answer.body if isinstance(answer.body, bytes) else b""
    cut = web.StreamResponse(status=answer.status)
    cut.content_type = "application/json"
    cut.content_length = len(body)
    await cut.prepare(request)
    await cut.write(body[: len(body) // 2])
    if request.transport is not None:
        request.transport.close()
    return cut


def _int(value: object) -> int | None:
    if value is None or value == "":
        return None
    try:
        return int(str(value))
    except ValueError:
        return None


def _ok(result: object) -> web.Response:
    return web.json_response({"ok": True, "result": result})


def _error(status: int, description: str, parameters: dict[str, Any] | None = None) -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
    if parameters:
        body["parameters"] = parameters
    return web.json_response(body, status=status)


async def _serve(host: str, port: int, token: str, enforce_limits: bool) -> None:
    fake = FakeTelegram(token=token, host=host, port=port, enforce_limits=enforce_limits)
    await fake.start()
    print(f"fake Telegram Bot API on {fake.base_url} token={fake.token}", flush=True)  # noqa: T201
    try:
        await asyncio.Event().wait()
    finally:
        await fake.stop()


def main() -> None:
    """Run the fake server until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--enforce-limits", action="store_true")
    args = parser.parse_args()
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(_serve(args.host, args.port, args.token, args.enforce_limits))


if __name__ == "__main__":
    main()
