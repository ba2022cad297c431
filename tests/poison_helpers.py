"""Hostile values for the poison tests: clean events from the real producers (the connectors'
parsers on recorded vendor data, the ingestor's listing builder), and their wire bytes with
one value replaced by a hostile JSON token (`NaN`, `1e999`, a year-9999 time...)."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic_core import to_json

from perpsignal_common.db.models.ingestor import KnownSymbol
from perpsignal_common.events.base import Event
from perpsignal_common.events.market import (
    TIMEFRAME_SECONDS,
    CandleClosedV1,
    FearGreedV1,
    LiquidationOrderV1,
    ListingDetectedV1,
)
from perpsignal_common.events.registry import encode
from perpsignal_common.events.signals import Ohlc, SignalScoredV1
from perpsignal_common.kafka.producer import EventProducer, event_headers
from perpsignal_common.settings import KafkaSettings
from perpsignal_connectors.alternative_me.parsing import parse_fng
from perpsignal_connectors.alternative_me.schemas import FNG
from perpsignal_connectors.binance_usdm.parsing import parse_force_order, parse_klines
from perpsignal_connectors.binance_usdm.schemas import FORCE_ORDER, KLINES
from perpsignal_ingestor.listings import listing_event
from perpsignal_ingestor.universe import Universe

_SENTINEL = "\u2063poison\u2063"
_candle_json = Ohlc.__pydantic_serializer__.to_json
NOW = datetime.now(UTC)

# (what, top-level field, JSON token) for a candle; `None` tokens are computed per event
CANDLE_POISONS: list[tuple[str, str, str]] = [
    ("NaN close", "close", "NaN"),
    ("Infinity high", "high", "Infinity"),
    ("-Infinity low", "low", "-Infinity"),
    ("1e999 volume", "volume", "1e999"),
    ("1e308 high", "high", "1e308"),
    ("zero price", "low", "0"),
    ("negative price", "low", "-1.5"),
    ("negative volume", "volume", "-3"),
    ("high below low", "high", "1e-9"),
    ("year 0001", "observed_at", '"0001-01-01T00:00:00Z"'),
    ("year 9999", "observed_at", '"9999-12-31T00:00:00Z"'),
    ("open in year 9999", "open_time", '"9999-12-31T00:00:00Z"'),
    ("empty symbol", "symbol", '""'),
    ("10,000-character symbol", "symbol", '"' + "A" * 10_000 + '"'),
    ("symbol with a newline", "symbol", '"BTC\\nUSDT"'),
    ("schema_version 2", "schema_version", "2"),
    ("schema_version 99", "schema_version", "99"),
    # what the published schema's types forbid (pydantic's lax mode read them as values)
    ("volume as true", "volume", "true"),
    ("volume as a string", "volume", '"1234.5"'),
    ("time as epoch seconds", "observed_at", "1712707200"),
    ("schema_version as a string", "schema_version", '"1"'),
]


def poison(raw: bytes, field: str, token: str) -> bytes:
    """Return `raw` (one event's JSON) with top-level `field` set to the JSON text `token`."""
    data: dict[str, Any] = json.loads(raw)
    assert field in data, f"{field} is not a field of {data.get('type')}"
    data[field] = _SENTINEL
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return text.replace(json.dumps(_SENTINEL, ensure_ascii=False), token).encode()


def kline_rows(csv_path: Path, tf_ms: int, n: int) -> list[list[Any]]:
    """Binance klines rows (the REST wire format) of the first `n` rows of a recorded CSV."""
    rows = []
    with csv_path.open(newline="") as f:
        for r in list(csv.DictReader(f))[:n]:
            t = int(r["open_time"])
            vol = float(r["volume"])
            quote = vol * float(r["close"])
            prices = [r["open"], r["high"], r["low"], r["close"], r["volume"]]
            rest = [f"{quote:.4f}", 100, f"{vol / 2}", f"{quote / 2:.4f}", "0"]
            rows.append([t, *prices, t + tf_ms - 1, *rest])
    return rows


def binance_candles(csv_path: Path, symbol: str, tf: str, n: int) -> list[CandleClosedV1]:
    """Closed candles as the ingestor gets them: recorded rows through the Binance parser."""
    rows = KLINES.validate_python(kline_rows(csv_path, TIMEFRAME_SECONDS[tf] * 1000, n))
    return parse_klines(rows, symbol, tf, NOW)  # type: ignore[arg-type]


def force_order(api: Path, symbol: str, at_ms: int, price: str = "9910.0") -> LiquidationOrderV1:
    """A liquidation from Binance's documented forceOrder message, moved to `symbol`/`at_ms`."""
    msg = json.loads((api / "binance_usdm" / "ws_forceOrder.doc_example.json").read_text())
    msg["E"] = msg["o"]["T"] = at_ms
    msg["o"]["s"], msg["o"]["p"], msg["o"]["ap"] = symbol, price, price
    return parse_force_order(FORCE_ORDER.validate_python(msg))


def fear_greed(api: Path, at_s: int, value: int) -> FearGreedV1:
    """A fear & greed reading from the recorded alternative.me body, at `at_s` with `value`."""
    body = json.loads((api / "alternative_me" / "fng_limit2.json").read_text())
    body["data"] = [dict(body["data"][0], timestamp=str(at_s), value=str(value))]
    (event,) = parse_fng(FNG.validate_python(body))
    return event


def listing(symbol: str, base: str, onboard: datetime) -> ListingDetectedV1:
    """A listing event as the ingestor's listings monitor builds it."""
    row = KnownSymbol(
        venue="binance",
        symbol=symbol,
        base_asset=base,
        quote_asset="USDT",
        onboard_at=onboard,
        first_seen_at=min(onboard, datetime.now(UTC)),
        announce=True,
    )
    event: ListingDetectedV1 = listing_event(row, Universe([]))
    return event


def wire(event: Any) -> bytes:
    """The bytes a producer writes for `event`."""
    return encode(event)


def poison_newest_candle(signal: SignalScoredV1, field: str, token: str) -> bytes:
    """The signal's bytes with `field` of its newest candle set to the JSON text `token`.

    Only that candle's text changes, so the judge's codec meets the same window as for the
    clean signal and validates just this candle (its fast path).
    """
    raw = encode(signal)
    newest = signal.candles[-1]
    text = _candle_json(newest)
    value = getattr(newest, field)
    shown = (
        b'"' + value.isoformat().replace("+00:00", "Z").encode() + b'"'
        if isinstance(value, datetime)
        else to_json(value)
    )
    old, new = f'"{field}":'.encode() + shown, f'"{field}":{token}'.encode()
    assert raw.count(text) == 1 and text.count(old) == 1
    return raw.replace(text, text.replace(old, new))


def scored_signals(csv_path: Path, symbol: str, n: int) -> list[SignalScoredV1]:
    """Signals as the real scorer emits them for `n` recorded 5m candles (30-candle windows)."""
    from perpsignal_domain.scoring.engine import ScoringEngine
    from perpsignal_scorer.settings import ScorerSettings

    settings = ScorerSettings(scorer_primary_timeframe="5m", scorer_smc_timeframes="5m,15m")
    engine = ScoringEngine(settings.engine_config())
    return [s for c in binance_candles(csv_path, symbol, "5m", n) for s in engine.apply(c)]


async def send_under_key(
    producer: EventProducer, kafka: KafkaSettings, topic: str, event: Event, key: bytes
) -> None:
    """Publish `event` to `topic` under `key` instead of its own partition key (misrouted)."""
    await producer.send_raw(kafka.topic(topic), key, encode(event), event_headers(event), wait=True)


def assert_dead_lettered_as_misrouted(
    value: bytes, headers: dict[str, bytes], event: Event, key: str
) -> None:
    """A dead letter of `event` refused for its record key `key` naming its own symbol."""
    assert value == encode(event)
    assert headers["dlq.error_type"] == b"PoisonMessage"
    reason = headers["dlq.error"].decode()
    assert f"'{key}'" in reason and f"symbol {event.symbol!r}" in reason, reason
