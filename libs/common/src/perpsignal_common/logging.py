"""Structured logs on stderr through structlog: one JSON object per line, with bound context.

Two ways in, one output: structlog loggers (`get_logger`) and the stdlib `logging` calls the
code already makes (their `extra=` fields become top-level keys) both pass through structlog's
`ProcessorFormatter`. Context bound for the current task with `bound_event(event)` (its
`event_id` and `correlation_id`) or `structlog.contextvars.bind_contextvars` is added to every
line logged inside it, so one `correlation_id` follows a signal through every service's logs.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar, Token
from typing import Any, Protocol

import orjson
import structlog
from structlog.contextvars import merge_contextvars
from structlog.types import EventDict, Processor, WrappedLogger

# httpx2/httpcore2: the openai SDK's HTTP stack; httpx2 logs each request's full URL at INFO
# (an OpenAI-compatible proxy's user:token@ with it), httpcore2 a refused header at DEBUG
NOISY = (
    "aiokafka",
    "kafka",
    "httpx",
    "httpcore",
    "httpx2",
    "httpcore2",
    "uvicorn.access",
    "aiogram.event",
)


class _HasIds(Protocol):
    @property
    def event_id(self) -> str: ...

    @property
    def correlation_id(self) -> str | None: ...


# One context variable holding the event being handled: setting it costs ~0.1 us, cheap
# enough for the consumer loop's per-record path; its ids are read only when a line is logged
_EVENT: ContextVar[_HasIds | None] = ContextVar("perpsignal_log_event", default=None)


@contextmanager
def bound_event(event: _HasIds) -> Iterator[None]:
    """Add the event's `event_id` and `correlation_id` to every log line inside the block."""
    token = _EVENT.set(event)
    try:
        yield
    finally:
        _EVENT.reset(token)


# `bound_event` for hot loops: set the handled event, `reset_log_event(token)` after. The
# context variable's own methods, not wrappers: a Python frame each would cost as much as
# the set itself on the consumer loop's per-record path
set_log_event: Callable[[_HasIds | None], Token[_HasIds | None]] = _EVENT.set
reset_log_event: Callable[[Token[_HasIds | None]], None] = _EVENT.reset


def _event_ids(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    event = _EVENT.get()
    if event is not None:
        event_dict.setdefault("event_id", event.event_id)
        if event.correlation_id is not None:
            event_dict.setdefault("correlation_id", event.correlation_id)
    return event_dict


def get_logger(name: str | None = None) -> Any:
    """Return a structlog logger (key-value calls: `log.info("sent", chat=1)`)."""
    return structlog.get_logger(name)


def _service(service: str) -> Processor:
    def add(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
        event_dict.setdefault("service", service)
        return event_dict

    return add


def _rename(_: WrappedLogger, __: str, event_dict: EventDict) -> EventDict:
    # the keys our log queries use: msg (structlog: event), exc (structlog: exception)
    event_dict["msg"] = event_dict.pop("event", "")
    if "exception" in event_dict:
        event_dict["exc"] = event_dict.pop("exception")
    return event_dict


def _dumps(obj: Any, **_: Any) -> str:
    return orjson.dumps(obj, default=str).decode()


def configure_logging(service: str, level: str = "INFO", fmt: str = "json") -> None:
    """Send every logger to stderr in the chosen format; quiet chatty libraries."""
    shared: list[Processor] = [
        merge_contextvars,
        _event_ids,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.stdlib.ExtraAdder(),
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
        _service(service),
    ]
    renderer: list[Processor] = (
        [structlog.processors.format_exc_info, _rename, structlog.processors.JSONRenderer(_dumps)]
        if fmt == "json"
        else [structlog.dev.ConsoleRenderer(colors=False)]
    )
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderer],
    )
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for noisy in NOISY:
        logging.getLogger(noisy).setLevel(max(logging.WARNING, logging.getLevelName(level)))
