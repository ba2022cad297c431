"""Log lines are JSON objects carrying the service and the bound event context."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Iterator

import pytest
import structlog

from perpsignal_common.events.base import utcnow
from perpsignal_common.events.signals import SignalJudgedV1
from perpsignal_common.logging import bound_event, configure_logging, get_logger


@pytest.fixture
def restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
    structlog.reset_defaults()


def _lines(err: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in err.splitlines() if line.startswith("{")]


def _event() -> SignalJudgedV1:
    from tests.unit.notifier.builders import judged

    return judged().model_copy(update={"correlation_id": "corr-1", "produced_at": utcnow()})


async def test_bound_event_context_reaches_stdlib_and_structlog_lines_of_its_task_only(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("notifier", "INFO", "json")
    log = logging.getLogger("perpsignal_notifier.delivery")
    event = _event()

    async def handle() -> None:
        with bound_event(event):
            log.warning("alert undeliverable", extra={"reason": "429"})
            get_logger("perpsignal_notifier").info("sent", chats=2)

    async def other() -> None:
        await asyncio.sleep(0)
        log.info("unrelated")

    await asyncio.gather(handle(), other())
    log.info("after")
    lines = {str(line["msg"]): line for line in _lines(capsys.readouterr().err)}
    failed = lines["alert undeliverable"]
    assert failed["event_id"] == event.event_id and failed["correlation_id"] == "corr-1"
    assert failed["reason"] == "429" and failed["level"] == "warning"
    assert failed["service"] == "notifier" and failed["logger"] == "perpsignal_notifier.delivery"
    assert lines["sent"]["event_id"] == event.event_id and lines["sent"]["chats"] == 2
    assert "event_id" not in lines["unrelated"]
    assert "event_id" not in lines["after"]
    assert str(failed["ts"]).endswith("Z")


def test_exceptions_are_one_json_line_with_the_traceback(
    restore_logging: None, capsys: pytest.CaptureFixture[str]
) -> None:
    configure_logging("judge", "INFO", "json")
    try:
        raise ValueError("bad verdict")
    except ValueError:
        logging.getLogger("perpsignal_judge").exception("handler failed")
    (line,) = _lines(capsys.readouterr().err)
    assert "ValueError: bad verdict" in str(line["exc"])
    assert line["level"] == "error" and line["service"] == "judge"
