"""Settings from the environment: chat id lists, the token kept secret, Telegram off by default."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from perpsignal_notifier.delivery import Alert
from perpsignal_notifier.service import preview_writer
from perpsignal_notifier.settings import NotifierSettings
from perpsignal_notifier.telegram import create_bot


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


def test_token_read_from_a_secret_file_with_its_newline_still_works(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # `kubectl create secret --from-file` and `echo token > file` keep the trailing newline;
    # aiogram refuses a token with whitespace, which stopped the notifier at startup
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", " 123456:SECRET-token-value\n")
    settings = NotifierSettings()
    assert settings.telegram_enabled and settings.telegram_bot_token is not None
    token = settings.telegram_bot_token.get_secret_value()
    assert token == "123456:SECRET-token-value"
    create_bot(token, settings.telegram_api_base, 1.0)  # aiogram accepts it


@pytest.mark.parametrize("token", ["SECRET-token-value", "123456SECRET-token-value", "12:xy zw"])
def test_a_malformed_token_is_a_clear_startup_error_that_does_not_echo_it(
    monkeypatch: pytest.MonkeyPatch, token: str
) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", token)
    with pytest.raises(ValidationError) as error:
        NotifierSettings()
    assert "TELEGRAM_BOT_TOKEN" in str(error.value)
    assert "SECRET" not in str(error.value) and "xy zw" not in str(error.value)


@pytest.mark.parametrize("base", ["127.0.0.1:8081", "api.telegram.org", "ftp://x"])
def test_an_api_base_without_http_scheme_is_a_clear_startup_error(
    monkeypatch: pytest.MonkeyPatch, base: str
) -> None:
    # aiohttp refuses such a URL at every request: each alert failed five times and was
    # dead-lettered, with the token inside the error text
    monkeypatch.setenv("TELEGRAM_API_BASE", base)
    with pytest.raises(ValidationError, match="TELEGRAM_API_BASE must be an http"):
        NotifierSettings()


@pytest.mark.parametrize(
    "base",
    [
        "https://api.telegram.org/bot123456:SECRET-token-value",
        "https://api.telegram.org/bot123456:SECRET-token-value/",
        "api.telegram.org/bot123456:SECRET-token-value",  # no scheme either
    ],
)
def test_an_api_base_with_the_token_in_it_is_refused_without_showing_it(
    monkeypatch: pytest.MonkeyPatch, base: str
) -> None:
    """A Bot API URL copied with its /bot<token> was taken as the server: every request went
    to /bot<token>/bot<token>/sendMessage (404, every alert dead-lettered) and the start-up
    line printed the token (`Telegram enabled`, api_base); without a scheme, the refusal
    quoted it."""
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:SECRET-token-value")
    monkeypatch.setenv("TELEGRAM_API_BASE", base)
    with pytest.raises(ValidationError, match="TELEGRAM_API_BASE") as error:
        NotifierSettings()
    assert "without /bot<token>" in str(error.value)
    assert "SECRET" not in str(error.value)


def test_a_local_bot_api_server_behind_a_path_is_still_accepted(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for base in ("http://127.0.0.1:8081/", "https://proxy.example/telegram", "http://botapi:8081"):
        monkeypatch.setenv("TELEGRAM_API_BASE", base)
        assert NotifierSettings().telegram_api_base == base


@pytest.mark.parametrize("where", ["missing/alerts.jsonl", "."])
def test_a_preview_file_that_cannot_be_written_fails_start_up_naming_it(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, where: str
) -> None:
    """The first previewed alert raised in the handler instead: every alert was retried and
    dead-lettered by a notifier that looked healthy."""
    path = tmp_path / where
    monkeypatch.setenv("NOTIFIER_PREVIEW", "true")
    monkeypatch.setenv("NOTIFIER_PREVIEW_FILE", str(path))
    with pytest.raises(ValidationError, match="NOTIFIER_PREVIEW_FILE") as error:
        NotifierSettings()
    assert str(path) in str(error.value)
    with pytest.raises(OSError):  # what the handler met at every alert
        preview_writer(str(path))(Alert("e", "signal", "BTCUSDT", "<b>x</b>"))
    # a file that can be created, or appended to, is fine; without NOTIFIER_PREVIEW the
    # file is never used, so it is not checked
    monkeypatch.setenv("NOTIFIER_PREVIEW_FILE", str(tmp_path / "alerts.jsonl"))
    assert NotifierSettings().notifier_preview
    monkeypatch.setenv("NOTIFIER_PREVIEW_FILE", str(path))
    monkeypatch.setenv("NOTIFIER_PREVIEW", "false")
    assert not NotifierSettings().notifier_preview


@pytest.mark.parametrize("name", ["TELEGRAM_CHAT_IDS", "TELEGRAM_ADMIN_IDS"])
def test_the_token_pasted_into_an_id_list_is_refused_without_showing_it(
    monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """int()'s refusal quoted the value: values swapped between two variables printed the
    bot token in the start-up error line."""
    monkeypatch.setenv(name, "-1001234567890, 123456:SECRET-token-value")
    with pytest.raises(ValidationError) as error:
        NotifierSettings()
    assert f"{name} takes numeric chat or user ids" in str(error.value)
    assert "SECRET" not in str(error.value) and "123456" not in str(error.value)
    # a channel's @username (which sendMessage takes, but alerts are keyed by number) is
    # refused with what to use instead
    monkeypatch.setenv(name, "@perpsignal_alerts")
    with pytest.raises(ValidationError, match=r"'@perpsignal_alerts'.*-100"):
        NotifierSettings()
