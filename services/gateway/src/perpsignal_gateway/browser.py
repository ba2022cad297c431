"""What keeps the gateway safe to open in a browser: security headers, page CSPs, rebinding guard.

`SecurityHeadersMiddleware` adds to every HTTP response the headers a route did not set itself:
`nosniff`, `no-referrer`, `DENY` framing (and CSP `frame-ancestors 'none'`), a same-origin
opener policy, `Cache-Control: no-store` (signals behind a key must not land in shared caches;
`/static/` keeps its ETag revalidation) and, when configured, HSTS. Responses without a CSP of
their own get `default-src 'none'`: a JSON body opened as a page runs and loads nothing. The
HTML pages set their own policy, built here from what they really load (no 'unsafe-inline'
scripts: the few inline blocks the pages have are allowed by hash). Pure ASGI, header lists
built once: per response it is one scan of the headers already set.

`HostGuardMiddleware` answers only the Host names it serves. Without API keys the gateway's
only protection is being bound to loopback, which a DNS-rebinding page defeats (its name
resolves to 127.0.0.1 and the browser then treats the gateway as that page's origin); the
Host header still carries the page's name, so anything but a loopback name or a configured
one is refused with 421. A cross-site `Origin` is refused too (403; WebSockets close 4403),
because a browser attaches no credential the open gateway could check: a page elsewhere could
otherwise open the streams or post to `/invoke`. Probes (`/healthz`, `/readyz`, `/metrics`)
are exempt: orchestrators and Prometheus address the gateway by pod IP or service name.
"""

from __future__ import annotations

import base64
import hashlib
import re
from collections.abc import Iterable, Sequence
from urllib.parse import urlsplit

from starlette.datastructures import Headers
from starlette.middleware.cors import CORSMiddleware
from starlette.responses import Response

from perpsignal_gateway.errors import error_response
from perpsignal_gateway.security import ASGIApp, Message, Receive, Scope, Send, refuse

API_CSP = "default-src 'none'; frame-ancestors 'none'"
# what every page policy shares: nothing unless named, no <base> hijack, no plugins, no framing
_PAGE_BASE = "default-src 'none'; base-uri 'none'; frame-ancestors 'none'"
# Lightweight Charts injects this one <style> for its attribution logo (static/vendor; the
# dashboard tests re-read the library and fail when it changes)
_CHART_LOGO_STYLE = (
    "a#tv-attr-logo{--fill:#131722;--stroke:#fff;position:absolute;left:10px;bottom:10px;"
    "height:19px;width:35px;margin:0;padding:0;border:0;z-index:3;}"
    "a#tv-attr-logo[data-dark]{--fill:#D1D4DC;--stroke:#131722;}"
)
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "[::1]"})
WS_MISDIRECTED = 4421  # private-use close codes mirroring the HTTP statuses, like 4401/4429
WS_FORBIDDEN_ORIGIN = 4403
# a plain host[:port] (name, IPv4 or bracketed IPv6): safe to repeat inside a header
_PLAIN_HOST = re.compile(r"(?:[a-z0-9.-]+|\[[0-9a-f:.]+\])(?::[0-9]{1,5})?")


def sha256_source(text: str) -> str:
    """Return the CSP source that allows exactly this inline script or style text."""
    digest = base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()
    return f"'sha256-{digest}'"


def inline_sources(html: str, tag: str) -> list[str]:
    """Return the hash sources of the inline `<script>`/`<style>` blocks of a generated page."""
    found = re.finditer(rf"<{tag}(\s[^>]*)?>(.*?)</{tag}>", html, re.S | re.I)
    return [sha256_source(m[2]) for m in found if tag != "script" or "src=" not in (m[1] or "")]


def page_csp(**directives: Iterable[str]) -> str:
    """Return a page policy: the shared base plus `directives` (`script_src=...` etc.)."""
    parts = [_PAGE_BASE]
    for name, sources in directives.items():
        parts.append(" ".join([name.replace("_", "-"), *sources]))
    return "; ".join(parts)


def dashboard_csp(host: str | None) -> str:
    """Return the dashboard's policy; `host` is the request's Host header.

    Only same-origin module scripts and the stylesheet (its inline styles are set through
    the CSSOM, which CSP does not restrict). `'self'` covers `ws:`/`wss:` to the page's own
    host only in CSP3 browsers (older Safari refuses the streams), so the host is named for
    both schemes, when it is a plain host[:port] (nothing else is repeated into the header).
    """
    connect = ["'self'"]
    name = (host or "").lower()
    if _PLAIN_HOST.fullmatch(name):
        connect += [f"ws://{name}", f"wss://{name}"]
    return page_csp(
        script_src=["'self'"],
        style_src=["'self'", sha256_source(_CHART_LOGO_STYLE)],
        img_src=["'self'"],
        connect_src=connect,
        form_action=["'none'"],
    )


class SecurityHeadersMiddleware:
    """Add the security headers every HTTP response needs, never replacing a route's own."""

    def __init__(
        self, app: ASGIApp, *, hsts_max_age_s: int = 0, cacheable_prefix: str = "/static/"
    ) -> None:
        self.app = app
        common = [
            (b"x-content-type-options", b"nosniff"),
            (b"referrer-policy", b"no-referrer"),
            (b"x-frame-options", b"DENY"),
            (b"cross-origin-opener-policy", b"same-origin"),
            (b"content-security-policy", API_CSP.encode()),
        ]
        if hsts_max_age_s > 0:
            common.append((b"strict-transport-security", f"max-age={hsts_max_age_s}".encode()))
        self._cacheable_prefix = cacheable_prefix
        self._static = tuple(common)
        self._dynamic = (*common, (b"cache-control", b"no-store"))
        self._names = frozenset(name for name, _ in self._dynamic)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path: str = scope["path"]
        extra = self._static if path.startswith(self._cacheable_prefix) else self._dynamic
        ours = self._names

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = message.get("headers") or ()
                # ASGI header names are lower-case; usually none of ours is set yet
                if any(name in ours for name, _ in headers):
                    present = {name.lower() for name, _ in headers}
                    added: Iterable[tuple[bytes, bytes]] = (h for h in extra if h[0] not in present)
                else:
                    added = extra
                # a new list: a response object may reuse its header list across requests
                message["headers"] = [*headers, *added]
            await send(message)

        await self.app(scope, receive, send_with_headers)


def host_name(host: str) -> str:
    """Return the host of a Host header without its port, lower-cased (`[::1]` keeps brackets)."""
    host = host.strip().lower()
    if host.startswith("["):
        return host[: host.find("]") + 1] if "]" in host else host
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


class HostGuardMiddleware:
    """Refuse requests for Host names the gateway does not serve, and (open) cross-site Origins."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        allowed_hosts: Sequence[str],
        check_origin: bool,
        cors_origins: Sequence[str] = (),
    ) -> None:
        self.app = app
        self._hosts = LOOPBACK_HOSTS | {host_name(h) for h in allowed_hosts}
        self._check_origin = check_origin
        self._origins = frozenset(o.rstrip("/").lower() for o in cors_origins)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or scope["path"] in PROBE_PATHS:
            await self.app(scope, receive, send)
            return
        host = None
        origins: list[str] = []  # every one: the CORS layer and the app read the first
        for name, value in scope.get("headers", ()):
            if name == b"host":
                host = value.decode("latin-1")
            elif name == b"origin":
                origins.append(value.decode("latin-1"))
        if host is None or host_name(host) not in self._hosts:
            await refuse(
                scope,
                receive,
                send,
                421,
                "misdirected_request",
                "this gateway does not serve that Host name; add it to GATEWAY_ALLOWED_HOSTS",
                ws_close=WS_MISDIRECTED,
            )
            return
        if self._check_origin and not all(self._same_site(o, host) for o in origins):
            await refuse(
                scope,
                receive,
                send,
                403,
                "forbidden_origin",
                "cross-origin request refused: without GATEWAY_API_KEYS only this host's own "
                "pages and GATEWAY_CORS_ORIGINS may call it",
                ws_close=WS_FORBIDDEN_ORIGIN,
            )
            return
        await self.app(scope, receive, send)

    def _same_site(self, origin: str, host: str) -> bool:
        origin = origin.strip().lower().rstrip("/")
        if origin in self._origins or "*" in self._origins:
            return True
        parts = urlsplit(origin)
        return parts.scheme in ("http", "https") and parts.netloc == host.strip().lower()


class JsonCorsMiddleware(CORSMiddleware):
    """Starlette's CORS, with a refused preflight answered in the API's JSON error shape."""

    def preflight_response(self, request_headers: Headers) -> Response:
        """Answer a preflight; a refusal is `cors_refused` naming what was not allowed."""
        response = super().preflight_response(request_headers)
        if response.status_code != 400:
            return response
        # its headers (Vary, the allowed methods) stay; the plain-text body becomes JSON
        keep = {
            k: v for k, v in response.headers.items() if k not in ("content-type", "content-length")
        }
        message = bytes(response.body).decode().replace("Disallowed CORS", "CORS refused:")
        return error_response(400, "cors_refused", message, headers=keep)
