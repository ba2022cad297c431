"""Notifier settings: Telegram destinations, filters, limits and delivery budget."""

from __future__ import annotations

import logging
import os
import re
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import NoDecode, SettingsConfigDict

from perpsignal_common.settings import DatabaseSettings, ServiceSettings

log = logging.getLogger(__name__)

# what @BotFather gives: the bot's numeric id, a colon, the secret
TOKEN_FORMAT = re.compile(r"\d+:[A-Za-z0-9_-]+")
# a bot token in a URL's path, as the Bot API's own URLs carry it
_TOKEN_IN_URL = re.compile(r"/bot\d+:", re.IGNORECASE)


def _not_an_id(setting: str, part: str) -> str:
    """Return why `part` of a chat id list is refused, without echoing a bot token."""
    if TOKEN_FORMAT.search(part):
        # the token pasted into the wrong variable: int()'s error quoted it in the start-up log
        shown = "a value that looks like the bot token (not shown)"
    else:
        shown = repr(part[:40])
    hint = " (a @username is not an id: Telegram shows a channel's as -100...)"
    return f"{setting} takes numeric chat or user ids, got {shown}" + (
        hint if part.startswith("@") else ""
    )


def _unwritable(path: Path) -> str | None:
    """Return why a file cannot be appended to (by this process), or None when it can."""
    if path.is_dir():
        return "it is a directory"
    if path.exists():
        return None if os.access(path, os.W_OK) else "no permission to write it"
    folder = path.parent
    if not folder.is_dir():
        return f"its directory {str(folder)!r} does not exist"
    return None if os.access(folder, os.W_OK | os.X_OK) else "no permission to create it"


class NotifierSettings(ServiceSettings):
    """Every `TELEGRAM_*` / `NOTIFIER_*` variable; all have safe defaults (no token = no sends)."""

    # a validation error must not echo what it refused: it may be the bot token
    model_config = SettingsConfigDict(hide_input_in_errors=True)

    @model_validator(mode="before")
    @classmethod
    def _deprecated_suppress_name(cls, data: Any) -> Any:
        old = os.environ.get("NOTIFIER_SUPPRESS_SKIP_AVOID")
        if old is None or not isinstance(data, dict):
            return data
        if "auto_skip_avoid_signals" in data:
            log.warning("NOTIFIER_SUPPRESS_SKIP_AVOID is ignored: AUTO_SKIP_AVOID_SIGNALS is set")
            return data
        log.warning("NOTIFIER_SUPPRESS_SKIP_AVOID is deprecated; set AUTO_SKIP_AVOID_SIGNALS")
        return {**data, "auto_skip_avoid_signals": old}

    service_name: str = "notifier"
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)

    telegram_bot_token: SecretStr | None = Field(
        default=None,
        description="Bot token, checked with getMe at start-up (one Telegram refuses stops "
        "it; Telegram unreachable does not); absent = Telegram disabled, events still consumed",
    )
    telegram_chat_ids: Annotated[tuple[int, ...], NoDecode] = Field(
        default=(), description="Comma-separated chat ids that receive every alert"
    )
    telegram_admin_ids: Annotated[tuple[int, ...], NoDecode] = Field(
        default=(),
        description="Comma-separated chat or user ids allowed to change subscriptions "
        "(/subscribe, /unsubscribe, /mute, /unmute); empty = nobody",
    )
    telegram_api_base: str = Field(
        default="https://api.telegram.org", description="Bot API server (a local one in tests)"
    )
    telegram_request_timeout_s: float = Field(default=10.0, gt=0)

    notifier_min_score: float = Field(
        default=0.0, ge=0, le=100, description="Minimum directional strength (see README)"
    )
    notifier_min_confidence: float = Field(default=0.0, ge=0, le=100)
    # the judge's setting, read by the notifier too (one name; NOTIFIER_SUPPRESS_SKIP_AVOID is a
    # deprecated alias): Telegram suppression follows AUTO_SKIP_AVOID_SIGNALS
    auto_skip_avoid_signals: bool = Field(
        default=True,
        description="Keep SKIP verdicts, AVOID risk mode and judge-suppressed signals off Telegram",
    )
    notifier_cooldown_s: float = Field(
        default=900.0, ge=0, description="Per-symbol quiet period between alerts (event time)"
    )
    notifier_mss_min_score: float = Field(default=60.0, ge=0, le=100)
    notifier_preview: bool = Field(
        default=False,
        description="Without TELEGRAM_BOT_TOKEN, log every alert that passes the filters as "
        "the Telegram HTML it would send (and append it to NOTIFIER_PREVIEW_FILE)",
    )
    notifier_preview_file: str = Field(
        default="", description="With NOTIFIER_PREVIEW: also append each previewed alert here"
    )

    # Telegram's documented limits: ~30 msg/s per bot, 20 msg/min per group, ~1 msg/s per chat
    notifier_rate_global_per_s: float = Field(default=30.0, gt=0)
    notifier_rate_group_per_min: float = Field(default=20.0, gt=0)
    notifier_rate_private_per_s: float = Field(default=1.0, gt=0)

    notifier_send_max_attempts: int = Field(default=5, ge=1)
    notifier_max_retry_after_s: float = Field(
        default=60.0, ge=0, description="A longer 429 retry_after counts as a failed attempt"
    )
    notifier_resend_uncertain: bool = Field(
        default=False, description="Resend a message whose send was interrupted by a crash"
    )
    notifier_poll_commands: bool = Field(default=True, description="Long-poll getUpdates")
    notifier_poll_timeout_s: int = Field(default=25, ge=0)
    notifier_concurrency: int = Field(
        default=16, ge=1, description="Events of different symbols handled at once"
    )
    notifier_handler_timeout_s: float = Field(
        default=600.0, gt=0, description="Per-event budget, rate-limit waits included"
    )

    @field_validator("telegram_chat_ids", "telegram_admin_ids", mode="before")
    @classmethod
    def _split_ids(cls, value: object, info: ValidationInfo) -> object:
        if isinstance(value, str):
            parts = [p.strip() for p in value.replace(";", ",").split(",") if p.strip()]
            for part in parts:
                if not re.fullmatch(r"[+-]?\d+", part):
                    raise ValueError(_not_an_id(str(info.field_name).upper(), part))
            return tuple(int(p) for p in parts)
        if isinstance(value, int):
            return (value,)
        return value

    @field_validator("telegram_bot_token", mode="before")
    @classmethod
    def _strip_token(cls, value: object) -> object:
        # a token read from a secret file keeps its newline; aiogram refuses any whitespace
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        return value.strip() if isinstance(value, str) else value

    @field_validator("telegram_bot_token")
    @classmethod
    def _token_format(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value():
            return None  # unset or empty: Telegram disabled
        if not TOKEN_FORMAT.fullmatch(value.get_secret_value()):
            raise ValueError(
                "TELEGRAM_BOT_TOKEN is not a bot token: expected <bot id>:<secret> as "
                "@BotFather gives it (the value is not shown)"
            )
        return value

    @field_validator("telegram_api_base")
    @classmethod
    def _api_base_url(cls, value: str) -> str:
        url = urlsplit(value.strip())
        if _TOKEN_IN_URL.search(value):
            # a URL copied from a browser or a curl example, /bot<token> included: every
            # request went to /bot<token>/bot<token>/..., and the start-up line and this
            # error printed the token
            raise ValueError(
                "TELEGRAM_API_BASE must be the Bot API server's address, such as "
                "https://api.telegram.org, without /bot<token>: the token goes in "
                "TELEGRAM_BOT_TOKEN (the value is not shown)"
            )
        if url.scheme not in ("http", "https") or not url.netloc:
            raise ValueError(
                f"TELEGRAM_API_BASE must be an http(s) URL such as https://api.telegram.org "
                f"or http://127.0.0.1:8081, got {value!r}"
            )
        return value.strip()

    @model_validator(mode="after")
    def _preview_file_writable(self) -> NotifierSettings:
        # checked here, not at the first alert: an append that fails raised in the handler,
        # and every alert was retried and dead-lettered by a notifier that looked healthy
        if self.notifier_preview and self.notifier_preview_file:
            problem = _unwritable(Path(self.notifier_preview_file))
            if problem:
                raise ValueError(
                    f"NOTIFIER_PREVIEW_FILE {self.notifier_preview_file!r} cannot be "
                    f"appended to: {problem}"
                )
        return self

    @property
    def telegram_enabled(self) -> bool:
        """Return True when a bot token is configured."""
        return self.telegram_bot_token is not None and bool(
            self.telegram_bot_token.get_secret_value().strip()
        )
