"""A failing vendor request is logged when it starts failing and when it heals, not every poll."""

from __future__ import annotations

import logging

import pytest

from perpsignal_common.errors import PermanentError, TransientError
from perpsignal_common.events.base import Event
from perpsignal_ingestor.sources.guard import AllRequestsFailed, gather_guarded


async def ok() -> list[Event]:
    return []


def failing(exc: Exception):
    async def run() -> list[Event]:
        raise exc

    return run


def loud(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.endswith("guard") and r.levelno >= logging.INFO
    ]


async def test_a_persistent_partial_failure_is_one_warning_then_one_recovery_line(caplog) -> None:
    caplog.set_level(logging.DEBUG)
    bad = PermanentError("binance klines: HTTP 400 'Invalid symbol.'")
    for _ in range(5):  # five polls, the same request failing each time
        await gather_guarded(
            "t-partial", [("klines DELISTED", failing(bad)()), ("klines BTC", ok())]
        )
    assert loud(caplog) == ["vendor request failed; nothing published from it"]
    await gather_guarded("t-partial", [("klines DELISTED", ok()), ("klines BTC", ok())])
    assert loud(caplog)[-1] == "vendor request works again"


async def test_a_whole_source_down_is_left_to_the_scheduler_s_one_line(caplog) -> None:
    caplog.set_level(logging.DEBUG)
    down = TransientError("binance klines: ConnectError('[Errno -3] name resolution')")
    for _ in range(3):
        with pytest.raises(AllRequestsFailed):
            await gather_guarded(
                "t-down", [("klines A", failing(down)()), ("klines B", failing(down)())]
            )
    assert loud(caplog) == []
