"""NOTIFIER_PREVIEW: without a bot token the alerts that would be sent are shown, not lost."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from perpsignal_notifier.filters import FilterRules
from perpsignal_notifier.render import render_signal
from perpsignal_notifier.repository import NotifierRepository
from perpsignal_notifier.service import AlertHandler, preview_writer
from tests.unit.notifier.builders import judged

pytestmark = pytest.mark.db


async def test_preview_logs_and_writes_the_telegram_html_of_alerts_that_pass(
    repo: NotifierRepository, tmp_path: Path, caplog
) -> None:
    out = tmp_path / "alerts.jsonl"
    handler = AlertHandler(
        repo=repo,
        deliverer=None,  # no TELEGRAM_BOT_TOKEN
        rules=FilterRules(cooldown_s=600),
        configured_chats=(),
        preview=preview_writer(str(out)),
    )
    event = judged()
    caplog.set_level(logging.INFO, logger="perpsignal_notifier.service")
    await handler.handle(event)
    await handler.handle(judged(direction="NEUTRAL"))  # filtered: never previewed

    (line,) = [json.loads(x) for x in out.read_text().splitlines()]
    assert line == {"kind": "signal", "symbol": "BTCUSDT", "html": render_signal(event)}
    assert "<b>" in line["html"] and "BTCUSDT" in line["html"]
    assert handler.stats.previewed == 1
    logged = [r for r in caplog.records if r.getMessage().startswith("alert preview")]
    assert len(logged) == 1 and logged[0].html == render_signal(event)  # type: ignore[attr-defined]
