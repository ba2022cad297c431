"""Ingestor settings: vendor URLs and keys, the symbol universe, cadences and budgets.

Every base URL is a setting so tests and the end-to-end suite point the real clients at the
local fake vendors. A keyed source without its key is switched off with one log line.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from perpsignal_common.events.market import TIMEFRAME_SECONDS
from perpsignal_common.settings import DatabaseSettings, ServiceSettings
from perpsignal_connectors.alternative_me import constants as fng
from perpsignal_connectors.binance_usdm import constants as binance
from perpsignal_connectors.coinapi import constants as coinapi
from perpsignal_connectors.coingecko import constants as coingecko
from perpsignal_connectors.coinglass import constants as coinglass
from perpsignal_connectors.keys import key_env, read_key
from perpsignal_connectors.lunarcrush import constants as lunarcrush
from perpsignal_connectors.okx import constants as okx

ALL_SOURCES = (
    "binance",  # premium index, 24h tickers, klines, open interest (60 s)
    "binance_ratios",  # OI history, long/short ratios, taker flow (5 min)
    "binance_funding",  # settled funding rates after each settlement
    "binance_stream",  # !forceOrder@arr liquidations
    "listings",  # exchangeInfo: universe + new-listings monitor (needs PostgreSQL)
    "okx",
    "coinglass",
    "coinglass_stream",
    "lunarcrush",
    "coinapi",
    "coingecko",
    "fear_greed",
)


def split_csv(value: str) -> list[str]:
    """Return the non-empty, stripped items of a comma-separated setting."""
    return [x.strip() for x in value.split(",") if x.strip()]


class VendorUrls(BaseSettings):
    """Base URLs of every vendor (defaults are production)."""

    model_config = SettingsConfigDict(extra="ignore", frozen=True)

    binance_fapi_base_url: str = binance.BASE_URL
    binance_ws_url: str = binance.WS_URL
    okx_base_url: str = okx.BASE_URL
    coinglass_base_url: str = coinglass.BASE_URL
    coinglass_ws_url: str = coinglass.WS_URL
    lunarcrush_base_url: str = lunarcrush.BASE_URL
    coinapi_base_url: str = coinapi.BASE_URL
    coingecko_base_url: str = coingecko.BASE_URL
    fear_greed_url: str = fng.URL


class VendorKeys(BaseSettings):
    """API keys; an absent key disables that source.

    The variable names come from the registry shared with the gateway
    (`perpsignal_connectors.keys`): each field is the lower-cased documented name, and a
    deprecated name (`COINAPI_KEY`) is still read, with a warning.

    Surrounding whitespace is dropped (a key read from a secret file keeps its trailing
    newline; no key ends in whitespace) and a blank key is unset. A space or an invisible or
    control character inside a key is refused at start, naming the variable, never the value:
    HTTP forbids it in a header, so every call of that source would fail.
    """

    # a refused key is never quoted back in the error (pydantic shows the raw input)
    model_config = SettingsConfigDict(extra="ignore", frozen=True, hide_input_in_errors=True)

    coinglass_api_key: SecretStr | None = None
    coinglass_plan_limit_per_min: int = coinglass.PLAN_LIMIT_1M
    lunarcrush_api_key: SecretStr | None = None
    coinapi_api_key: SecretStr | None = Field(
        default=None, description="CoinAPI key (COINAPI_KEY is read as a deprecated alias)"
    )
    coinapi_daily_credits: int = Field(
        default=coinapi.DAILY_CREDITS,
        ge=1,
        description=coinapi.DAILY_CREDITS_DOC,
    )
    gateway_coinapi_daily_share: float = Field(
        default=coinapi.GATEWAY_DAILY_SHARE,
        ge=0.0,
        le=1.0,
        description=coinapi.GATEWAY_DAILY_SHARE_DOC,
    )
    coingecko_api_key: SecretStr | None = None

    @model_validator(mode="before")
    @classmethod
    def _deprecated_names(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        for vendor, field in KEY_FIELDS.items():
            if data.get(field) is None:
                value = read_key(vendor, os.environ)
                if value:
                    data = {**data, field: value}
        return data

    @field_validator(
        "coinglass_api_key",
        "lunarcrush_api_key",
        "coinapi_api_key",
        "coingecko_api_key",
        mode="before",
    )
    @classmethod
    def _strip(cls, value: object) -> object:
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, str):
            return value.strip() or None
        return value

    @field_validator(
        "coinglass_api_key", "lunarcrush_api_key", "coinapi_api_key", "coingecko_api_key"
    )
    @classmethod
    def _one_token(cls, value: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if value is not None and any(
            ch.isspace() or not ch.isprintable() for ch in value.get_secret_value()
        ):
            vendor = next(v for v, f in KEY_FIELDS.items() if f == info.field_name)
            raise ValueError(
                f"{key_env(vendor)} has a space or an invisible or control character inside "
                "it (not shown): set the key exactly as the vendor gave it"
            )
        return value


# vendor (catalogue name) -> VendorKeys field; the field is the registry's variable, lower case
KEY_FIELDS = {
    "coinglass": "coinglass_api_key",
    "lunarcrush": "lunarcrush_api_key",
    "coinapi": "coinapi_api_key",
    "coingecko": "coingecko_api_key",
}


class IngestorSettings(ServiceSettings):
    """Settings of the ingestor service."""

    service_name: str = "ingestor"
    database: DatabaseSettings = Field(default_factory=DatabaseSettings)
    urls: VendorUrls = Field(default_factory=VendorUrls)
    keys: VendorKeys = Field(default_factory=VendorKeys)

    ingestor_symbols: str = Field(
        default="BTCUSDT,ETHUSDT,SOLUSDT,XRPUSDT,BNBUSDT,DOGEUSDT",
        description="Watch list of Binance symbols; `*` = every USDT perpetual in TRADING",
    )
    ingestor_min_quote_volume: float = Field(
        default=0.0, description="Also track perpetuals with at least this 24h quote volume"
    )
    ingestor_timeframes: str = "5m,15m,1h,4h"
    ingestor_enabled_sources: str = ",".join(ALL_SOURCES)
    ingestor_binance_cadence_s: float = 60.0
    ingestor_ratio_cadence_s: float = 300.0
    ingestor_listings_cadence_s: float = 60.0
    ingestor_okx_cadence_s: float = 60.0
    ingestor_okx_symbols: str = Field(
        default="BTCUSDT,ETHUSDT", description="Symbols confirmed on OKX"
    )
    ingestor_coinglass_cadence_s: float = 900.0
    ingestor_coinglass_interval: str = Field(default="4h", description="Hobbyist plans: >= 4h")
    ingestor_coinglass_max_coins: int = 6
    ingestor_social_cadence_s: float = 900.0
    # MSS universe from CoinGecko (see the README for the Demo plan's 10,000 calls/month)
    ingestor_coingecko_market_cap_pages: int = Field(
        default=2, ge=0, description="Pages of 250 coins by market cap (2 = top 500)"
    )
    ingestor_coingecko_volume_pages: int = Field(
        default=2, ge=0, description="Pages of 250 coins by 24h volume (small caps that trade)"
    )
    ingestor_coingecko_new_coins: bool = Field(
        default=True, description="Newest coins: /coins/list/new on a paid plan, else trending"
    )
    ingestor_coingecko_calls_per_poll: int = Field(
        default=3, ge=1, description="CoinGecko calls per poll; the scan rotates through pages"
    )
    ingestor_coinapi_cadence_s: float = 300.0
    ingestor_whale_min_notional_usd: float = 250_000.0
    ingestor_fear_greed_cadence_s: float = 3600.0
    ingestor_binance_weight_budget: int = Field(
        default=1200,
        ge=1,
        description="Share of Binance's 2,400/min per-IP weight all ingestor replicas together "
        "may use; each replica takes its share (see INGESTOR_REPLICAS)",
    )
    ingestor_replicas: int = Field(
        default=1,
        ge=1,
        description="Ingestor replicas sharing one egress IP: each uses "
        "INGESTOR_BINANCE_WEIGHT_BUDGET / INGESTOR_REPLICAS weight per minute",
    )
    ingestor_liquidation_window_s: int = 300
    # Binance allows 200 streams per connection: 40 symbols x 4 timeframes + liquidations
    ingestor_kline_stream_max_symbols: int = Field(
        default=40, description="Closed klines by WebSocket for the first N tracked (0 = off)"
    )
    ingestor_listing_bootstrap_window_h: float = Field(
        default=24.0, description="On the very first run, announce listings younger than this"
    )
    ingestor_command_ttl_max_s: int = 86_400
    ingestor_http_timeout_s: float = 10.0

    @field_validator(
        "ingestor_binance_cadence_s",
        "ingestor_ratio_cadence_s",
        "ingestor_listings_cadence_s",
        "ingestor_okx_cadence_s",
        "ingestor_coinglass_cadence_s",
        "ingestor_social_cadence_s",
        "ingestor_coinapi_cadence_s",
        "ingestor_fear_greed_cadence_s",
        "ingestor_liquidation_window_s",
        "ingestor_http_timeout_s",
    )
    @classmethod
    def _positive(cls, value: float) -> float:
        # a zero window divided by zero in the liquidation buckets (the flush task, and with
        # it the process, ended within 5 s, at every start); a zero or negative cadence
        # polled a vendor back to back (Fear & Greed 60 times a minute instead of hourly)
        if not value > 0:
            raise ValueError("must be a number of seconds above 0")
        return value

    @field_validator("ingestor_timeframes", "ingestor_coinglass_interval")
    @classmethod
    def _known_timeframes(cls, value: str) -> str:
        # an unknown one ("3m", "12h") passed and then failed every poll of every symbol
        # (a KeyError out of the Binance, OKX or Coinglass poll): refuse it at start
        unknown = [tf for tf in split_csv(value) if tf not in TIMEFRAME_SECONDS]
        if unknown:
            raise ValueError(f"unknown timeframes {unknown}; known: {', '.join(TIMEFRAME_SECONDS)}")
        return value

    def symbols(self) -> list[str]:
        """Return the watch list (upper case)."""
        return [s.upper() for s in split_csv(self.ingestor_symbols)]

    def timeframes(self) -> list[str]:
        """Return the candle timeframes to ingest."""
        return split_csv(self.ingestor_timeframes)

    def sources(self) -> set[str]:
        """Return the enabled sources."""
        enabled = set(split_csv(self.ingestor_enabled_sources))
        unknown = enabled - set(ALL_SOURCES)
        if unknown:
            raise ValueError(f"INGESTOR_ENABLED_SOURCES has unknown sources: {sorted(unknown)}")
        return enabled
