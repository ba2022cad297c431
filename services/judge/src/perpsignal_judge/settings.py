"""Judge settings: the AI switch and SDK knobs (flat names from design.md) plus `JUDGE_*`.

Every value has a safe default: with nothing set the judge runs rules only, so a bare
`perpsignal up` never calls a paid API.
"""

from __future__ import annotations

from typing import Self

from pydantic import Field, SecretStr, field_validator, model_validator

from perpsignal_common.errors import ConfigError
from perpsignal_common.settings import ServiceSettings


class JudgeSettings(ServiceSettings):
    """Settings of the judge service (env names are the upper-cased field names)."""

    service_name: str = "judge"

    # LLM judge (design.md section 4 names these)
    enable_ai_judge: bool = Field(default=False, description="Ask the LLM for the verdict")
    ai_judge_timeout: float = Field(default=15.0, gt=0, description="Seconds per LLM verdict")
    auto_skip_avoid_signals: bool = Field(
        default=True, description="Flag SKIP/AVOID verdicts `suppressed` for notifiers"
    )
    openai_api_key: SecretStr | None = None
    openai_model: str = Field(
        default="gpt-4o-mini",
        description="Chat model; a reasoning model (o1, o3, o4-mini, gpt-5) is sent no "
        "temperature, reasoning effort low and JUDGE_LLM_REASONING_TOKENS more output",
    )
    openai_base_url: str | None = Field(
        default=None, description="OpenAI-compatible endpoint; None = api.openai.com"
    )

    # Cost and latency controls
    judge_llm_concurrency: int = Field(default=8, ge=1, description="LLM calls in flight")
    judge_llm_max_retries: int = Field(
        default=1,
        ge=0,
        description="Retries (429/408/409/5xx, connection errors) that fit in the "
        "timeout, after the wait Retry-After asks for (a longer wait: rules at once, no "
        "request until it passed)",
    )
    judge_llm_calls_per_minute: int = Field(default=60, ge=0, description="0 = no LLM calls")
    judge_llm_tokens_per_minute: int = Field(default=60_000, ge=0, description="0 = no limit")
    judge_llm_max_output_tokens: int = Field(default=400, ge=50)
    judge_llm_reasoning_tokens: int = Field(
        default=4000,
        ge=0,
        description="Output tokens a reasoning model (o1, o3, o4-mini, gpt-5, or one that "
        "refuses temperature) may spend thinking, on top of JUDGE_LLM_MAX_OUTPUT_TOKENS",
    )
    judge_llm_cache_size: int = Field(default=4096, ge=0, description="Cached LLM verdicts")

    # Consumer
    judge_concurrency: int = Field(
        default=32, ge=1, description="Symbols judged at once per consumer batch"
    )
    judge_handler_timeout_s: float = Field(default=60.0, gt=0)
    judge_resume_lookback_s: float = Field(
        default=900.0,
        ge=0,
        description="On each partition assignment, read back the judged ids published in "
        "this many seconds and do not re-judge them (an LLM may answer a redelivery "
        "differently); 0 = off",
    )

    # Rule verdict
    judge_min_confidence: float = Field(
        default=35.0,
        ge=0.0,
        le=100.0,
        description="Rule 2: a directional signal below this confidence is SKIP "
        "(`perpsignal calibrate` fits it)",
    )

    # Volatility and trade plan
    judge_atr_period: int = Field(default=14, ge=2)
    judge_atr_timeframe: str | None = Field(
        default=None,
        description="Aggregate the signal's candles to this timeframe first (e.g. 4h); "
        "None = the signal's own timeframe. The signal's window must still give "
        "JUDGE_ATR_PERIOD + 1 candles: without an ATR there is no stop, and no trade (WAIT)",
    )
    judge_stop_atr_min: float = Field(default=1.5, ge=0.5, description="Stop distance, ATRs")
    judge_stop_atr_max: float = Field(default=3.0, ge=0.5, description="Stop distance, ATRs")
    judge_rr_min: float = Field(default=1.5, gt=0, description="Lowest reward:risk")
    judge_rr_max: float = Field(default=3.0, gt=0, description="Highest reward:risk")
    judge_reference_atr_pct: float = Field(
        default=1.0, gt=0, description="ATR% (at 1h) that gets a 1.0x volatility size"
    )

    @field_validator("openai_api_key", "openai_base_url", mode="before")
    @classmethod
    def _blank_is_unset(cls, value: object) -> object:
        # `.env.example` lists them as `NAME=`: an empty base URL sent every call to the URL
        # "" (connection_error), an empty key stopped the judge at start-up (the SDK refuses
        # it). A key read from a secret file keeps its newline: an illegal header, so every
        # call failed (and httpcore2 quoted that header, key and all, in a DEBUG line).
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, str):
            return value.strip() or None
        return value

    @model_validator(mode="after")
    def _ranges(self) -> Self:
        if self.judge_stop_atr_min > self.judge_stop_atr_max:
            raise ConfigError("JUDGE_STOP_ATR_MIN must not exceed JUDGE_STOP_ATR_MAX")
        if self.judge_rr_min > self.judge_rr_max:
            raise ConfigError("JUDGE_RR_MIN must not exceed JUDGE_RR_MAX")
        return self

    @property
    def llm_enabled(self) -> bool:
        """Return True when the LLM judge may be called at all."""
        return self.enable_ai_judge and self.openai_api_key is not None
