"""Fixtures of the notifier's integration tests."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from tests.fakes.telegram import FakeTelegram


@pytest.fixture
async def fake_telegram() -> AsyncIterator[FakeTelegram]:
    """The fake Bot API, recording every message sent."""
    async with FakeTelegram() as fake:
        yield fake
