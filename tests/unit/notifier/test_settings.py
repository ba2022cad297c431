"""Settings from the environment: chat id lists, the token kept secret, Telegram off by default."""

from __future__ import annotations

import pytest

from perpsignal_notifier.settings import NotifierSettings


def test_chat_ids_and_token_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_CHAT_IDS", "-1001234567890, 42")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:SECRET-token-value")
    settings = NotifierSettings()
    assert settings.telegram_chat_ids == (-1001234567890, 42)
    assert settings.telegram_enabled
    assert "SECRET-token-value" not in repr(settings)
    assert "SECRET-token-value" not in settings.model_dump_json()


def test_without_token_telegram_is_disabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN", raising=False)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "  ")
    assert not NotifierSettings().telegram_enabled
    monkeypatch.delenv("TELEGRAM_BOT_TOKEN")
    assert not NotifierSettings().telegram_enabled
