"""Fixtures: a fake Telegram server, a Bot pointed at it, and the notifier's repository."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
from aiogram import Bot
from pydantic import SecretStr
from sqlalchemy.ext.asyncio import create_async_engine

from perpsignal_common.settings import DatabaseSettings
from perpsignal_notifier.repository import NotifierRepository
from perpsignal_notifier.telegram import create_bot
from tests.fakes.telegram import FakeTelegram


@pytest.fixture
async def fake_telegram() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram() as fake:
        yield fake


@pytest.fixture
async def bot(fake_telegram: FakeTelegram) -> AsyncIterator[Bot]:
    bot = create_bot(fake_telegram.token, fake_telegram.base_url, timeout_s=0.5)
    try:
        yield bot
    finally:
        await bot.session.close()


@pytest.fixture
async def repo(database_url: str) -> AsyncIterator[NotifierRepository]:
    url = DatabaseSettings(database_url=SecretStr(database_url)).async_url()
    engine = create_async_engine(url)
    repo = NotifierRepository(engine)
    try:
        yield repo
    finally:
        await repo.close()
        await engine.dispose()


class VirtualClock:
    """Time that moves only when someone sleeps, so backoffs cost no real time."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += max(0.0, seconds)
        await asyncio.sleep(0)


@pytest.fixture
def clock() -> VirtualClock:
    return VirtualClock()
