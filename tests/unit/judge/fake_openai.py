"""A tiny OpenAI-compatible HTTP server for tests: /v1/chat/completions on 127.0.0.1.

Each test sets `responder(request_json) -> Reply`; every request body is recorded.

Like the real API, it refuses what a model does not take before answering (`refusal`):
OpenAI's reasoning models (o1, o3, o4-mini, the gpt-5 family) answer `max_tokens` and a
temperature other than 1 with a 400 naming the parameter, in OpenAI's error shape. `refuses`
makes any model refuse more (a deployment name hiding a reasoning model, an older server).
"""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal


@dataclass
class Reply:
    """What the fake server answers."""

    status: int = 200
    body: bytes = b"{}"
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)


REASONING_MODEL = re.compile(r"^(?:o\d|gpt-5)")  # as api.openai.com names them


def api_error(status: int, message: str, *, param: str | None, code: str | None) -> Reply:
    """Return an error in OpenAI's shape, e.g. as seen for gpt-5 (openai issue reports:
    griptape-ai/ComfyUI-Griptape#312, gabrii/Cursor-Azure-GPT-5#33)."""
    body = {
        "error": {"message": message, "type": "invalid_request_error", "param": param, "code": code}
    }
    return Reply(status=status, body=json.dumps(body).encode())


def unsupported_parameter(param: str, hint: str = "") -> Reply:
    """OpenAI's 400 for a parameter the model does not take at all."""
    said = f"Unsupported parameter: '{param}' is not supported with this model."
    return api_error(400, f"{said} {hint}".strip(), param=param, code="unsupported_parameter")


def unsupported_value(param: str, value: object) -> Reply:
    """OpenAI's 400 for a value the model does not take (a temperature other than 1)."""
    message = (
        f"Unsupported value: '{param}' does not support {value} with this model. "
        "Only the default (1) value is supported."
    )
    return api_error(400, message, param=param, code="unsupported_value")


def completion(
    content: str | None,
    *,
    refusal: str | None = None,
    finish_reason: str = "stop",
    prompt_tokens: int = 300,
    completion_tokens: int = 60,
) -> Reply:
    """Return a chat.completion body shaped like the recorded structured-output responses."""
    body = {
        "id": "chatcmpl-test",
        "object": "chat.completion",
        "created": 1727346143,
        "model": "gpt-4o-mini",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": content, "refusal": refusal},
                "logprobs": None,
                "finish_reason": finish_reason,
            }
        ],
        "usage": {
            "prompt_tokens": prompt_tokens,
            "completion_tokens": completion_tokens,
            "total_tokens": prompt_tokens + completion_tokens,
        },
    }
    return Reply(body=json.dumps(body).encode())


def verdict_json(**overrides: Any) -> str:
    """Return a valid verdict object as the model would write it."""
    data: dict[str, Any] = {
        "verdict": "DOWNSIZE",
        "risk_mode": "REDUCED",
        "position_multiplier": 0.6,
        "summary": "Momentum supports the long but funding is stretched; take half size.",
        "agreements": ["momentum up"],
        "conflicts": ["funding stretched"],
    }
    data.update(overrides)
    return json.dumps(data)


class FakeOpenAI:
    """Serve chat completions from `responder` on a free loopback port."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []  # each request's headers, lower-cased names
        self.responder: Callable[[dict[str, Any]], Reply] = lambda _: completion(verdict_json())
        # parameters every model refuses here, and how (on top of the reasoning models' own)
        self.refuses: dict[str, Literal["parameter", "value"]] = {}
        self._lock = threading.Lock()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                req = json.loads(self.rfile.read(length) or b"{}")
                with outer._lock:
                    outer.requests.append(req)
                    outer.headers.append({k.lower(): v for k, v in self.headers.items()})
                reply = outer.refusal(req) or outer.responder(req)
                if reply.delay_s:
                    time.sleep(reply.delay_s)  # simulated provider latency (server side)
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    for k, v in reply.headers.items():
                        self.send_header(k, v)
                    self.send_header("content-length", str(len(reply.body)))
                    self.end_headers()
                    self.wfile.write(reply.body)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client gave up (timeout test)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    def refusal(self, request: dict[str, Any]) -> Reply | None:
        """The 400 the API answers `request` with for a parameter its model does not take."""
        for param, kind in self.refuses.items():
            if param in request:
                if kind == "parameter":
                    return unsupported_parameter(param)
                return unsupported_value(param, request[param])
        if REASONING_MODEL.match(str(request.get("model", ""))):
            if "max_tokens" in request:
                return unsupported_parameter("max_tokens", "Use 'max_completion_tokens' instead.")
            temperature = request.get("temperature", 1)
            if temperature != 1:
                return unsupported_value("temperature", temperature)
        return None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def __enter__(self) -> FakeOpenAI:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def serve() -> Iterator[FakeOpenAI]:
    """Fixture body: a running fake server."""
    with FakeOpenAI() as fake:
        yield fake
