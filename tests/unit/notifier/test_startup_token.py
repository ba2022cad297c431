"""A bot token Telegram refuses stops the notifier's start-up, naming TELEGRAM_BOT_TOKEN and
never showing it; Telegram unreachable at start-up does not (the outage may be brief).

The check is a real getMe through the service's own client (the redacting aiohttp session)
against the fake Bot API, which answers 401 to any other token as Telegram does.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import pytest
from aiogram import Bot

from perpsignal_common.embedded import free_port
from perpsignal_common.errors import ConfigError
from perpsignal_notifier.telegram import check_token, create_bot
from tests.fakes.telegram import FakeTelegram

SECRET = "wrong-secret-value-0123456789"
BAD_TOKEN = f"999:{SECRET}"


async def test_a_revoked_token_is_a_configuration_error_naming_the_setting(
    fake_telegram: FakeTelegram,
) -> None:
    bot = create_bot(BAD_TOKEN, fake_telegram.base_url, timeout_s=2)
    try:
        with pytest.raises(ConfigError) as error:
            await check_token(bot)
    finally:
        await bot.session.close()
    assert "TELEGRAM_BOT_TOKEN is invalid or revoked" in str(error.value)
    assert SECRET not in str(error.value) and "999" not in str(error.value)


async def test_a_valid_token_returns_the_bot(bot: Bot) -> None:
    assert await check_token(bot) == "perpsignal_test_bot"


async def test_telegram_down_or_unreachable_is_logged_and_start_up_goes_on(
    bot: Bot, fake_telegram: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    fake_telegram.fail("getMe", status=502)
    assert await check_token(bot) is None
    fake_telegram.fail("getMe", status=502, html=True)  # nginx's page in front of Telegram
    assert await check_token(bot) is None
    closed = create_bot(fake_telegram.token, f"http://127.0.0.1:{free_port()}", timeout_s=2)
    try:
        assert await check_token(closed) is None
    finally:
        await closed.session.close()
    warnings = [r for r in caplog.records if "Telegram unreachable at start-up" in r.message]
    assert len(warnings) == 3
    assert all(fake_telegram.token.split(":")[1] not in str(r.__dict__) for r in caplog.records)


async def _notifier(env: dict[str, str]) -> tuple[int, str]:
    """Run `python -m perpsignal_notifier` to its exit; return its code and its output."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "perpsignal_notifier",
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode if proc.returncode is not None else -1, out.decode()


def _env(base: str, token: str) -> dict[str, str]:
    return {
        "TELEGRAM_BOT_TOKEN": token,
        "TELEGRAM_API_BASE": base,
        "TELEGRAM_REQUEST_TIMEOUT_S": "2",
        "KAFKA_BOOTSTRAP_SERVERS": "127.0.0.1:9",  # nothing there
        "STARTUP_TIMEOUT_S": "4",
        "OPS_PORT": str(free_port()),
        "LOG_FORMAT": "json",
    }


def _lines(out: str) -> list[dict[str, str]]:
    return [json.loads(x) for x in out.splitlines() if x.startswith("{")]


@pytest.mark.timeout(120)
async def test_the_service_stops_at_start_up_on_a_revoked_token(
    fake_telegram: FakeTelegram,
) -> None:
    # the old notifier started, consumed, and met the 401 at its first alert, hours later
    code, out = await _notifier(_env(fake_telegram.base_url, BAD_TOKEN))
    assert code == 2, out
    errors = [x for x in _lines(out) if x.get("level") == "error"]
    # the only error: Kafka (absent here) was never waited for
    assert [x["msg"] for x in errors] == ["invalid configuration"]
    assert errors[0]["error"].startswith("TELEGRAM_BOT_TOKEN is invalid or revoked")
    assert SECRET not in out
    assert "Traceback" not in out


@pytest.mark.timeout(120)
async def test_the_service_starts_past_an_unreachable_telegram(
    fake_telegram: FakeTelegram,
) -> None:
    code, out = await _notifier(_env(f"http://127.0.0.1:{free_port()}", fake_telegram.token))
    lines = _lines(out)
    assert any(x["msg"].startswith("Telegram unreachable at start-up") for x in lines), out
    # it went on to Kafka, which is missing here: exit 3 for that, not for Telegram
    assert code == 3, out
    assert fake_telegram.token.split(":")[1] not in out
