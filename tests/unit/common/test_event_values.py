"""Value rules of the event contracts: each hostile value is refused with a reason naming it,
and the real data of every producer still passes."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from perpsignal_common.errors import PoisonMessage
from perpsignal_common.events.market import CandleClosedV1
from perpsignal_common.events.registry import decode, encode
from perpsignal_common.events.values import configure_clock_skew, max_clock_skew_s
from perpsignal_common.settings import ServiceSettings
from tests.poison_helpers import (
    CANDLE_POISONS,
    binance_candles,
    fear_greed,
    force_order,
    listing,
    poison,
)
from tests.producers import real_judged


@pytest.fixture(scope="module")
def api(shared_data: Path) -> Path:
    return shared_data / "api"


@pytest.fixture(scope="module")
def candle(shared_data: Path) -> bytes:
    csv = shared_data / "market" / "XRP_USDT_USDT-5m-futures.csv"
    return encode(binance_candles(csv, "XRPUSDT", "5m", 3)[-1])


@pytest.fixture
def skew() -> Iterator[None]:
    """Restore the process's allowed clock skew after a test changes it."""
    previous = max_clock_skew_s()
    yield
    configure_clock_skew(previous)


@pytest.mark.parametrize(
    ("what", "field", "token"), CANDLE_POISONS, ids=[p[0] for p in CANDLE_POISONS]
)
def test_a_hostile_candle_value_is_poison_naming_the_field(
    candle: bytes, what: str, field: str, token: str
) -> None:
    assert isinstance(decode(candle), CandleClosedV1)
    with pytest.raises(PoisonMessage) as exc:
        decode(poison(candle, field, token))
    reason = str(exc.value)
    assert field in reason or "inconsistent candle" in reason, reason


def test_a_hostile_value_cannot_be_built_either() -> None:
    """Producers get the same rules: a NaN never leaves the process that computed it."""
    with pytest.raises(ValueError, match="finite"):
        CandleClosedV1(
            event_id="e",
            source="binance",
            symbol="BTCUSDT",
            observed_at=datetime(2024, 1, 1, 0, 1, tzinfo=UTC),
            timeframe="1m",
            open_time=datetime(2024, 1, 1, tzinfo=UTC),
            open=1.0,
            high=float("nan"),
            low=1.0,
            close=1.0,
            volume=0.0,
        )


def test_hostile_values_on_the_other_consumed_topics(api: Path) -> None:
    at = datetime(2024, 4, 10, tzinfo=UTC)
    liquidation = encode(force_order(api, "BTCUSDT", int(at.timestamp() * 1000)))
    fng = encode(fear_greed(api, int(at.timestamp()), 40))
    new = encode(listing("NEWUSDT", "NEW", at))
    cases = [
        (liquidation, "price", "NaN"),
        (liquidation, "price", "0"),
        (liquidation, "notional_usd", "-1"),
        (liquidation, "quantity", "1e999"),
        (liquidation, "observed_at", '"9999-01-01T00:00:00Z"'),
        (fng, "observed_at", '"0001-01-01T00:00:00Z"'),
        (fng, "schema_version", "2"),
        (fng, "symbol", '""'),
        (new, "detection_latency_s", "Infinity"),
        (new, "onboard_at", '"9999-01-01T00:00:00Z"'),
        (new, "symbol", '"' + "X" * 10_000 + '"'),
        (new, "schema_version", "99"),
    ]
    for raw, field, token in cases:
        decode(raw)
        with pytest.raises(PoisonMessage, match=field):
            decode(poison(raw, field, token))


def test_an_unknown_schema_version_says_so(candle: bytes) -> None:
    with pytest.raises(PoisonMessage, match="schema_version 2 is not understood here"):
        decode(poison(candle, "schema_version", "2"))


@pytest.mark.parametrize(
    "symbol",
    ["BTCUSDT", "1000PEPEUSDT", "BTC-USDT-SWAP", "BTCUSDT_220325", "币安人生USDT", "fear_greed"],
)
def test_real_symbols_pass(candle: bytes, symbol: str) -> None:
    event = decode(poison(candle, "symbol", json.dumps(symbol, ensure_ascii=False)))
    assert event.symbol == symbol


def test_event_times_may_be_ahead_by_the_configured_clock_skew(candle: bytes, skew: None) -> None:
    now = datetime.now(UTC)

    def at(ahead_s: float) -> bytes:
        return poison(
            candle, "observed_at", json.dumps((now + timedelta(seconds=ahead_s)).isoformat())
        )

    assert max_clock_skew_s() == 300
    decode(at(200))
    with pytest.raises(PoisonMessage, match="in the future"):
        decode(at(400))
    configure_clock_skew(600)
    decode(at(400))


def test_the_clock_skew_is_a_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    assert ServiceSettings().event_max_clock_skew_s == 300
    monkeypatch.setenv("EVENT_MAX_CLOCK_SKEW_S", "30")
    assert ServiceSettings().event_max_clock_skew_s == 30
    monkeypatch.setenv("EVENT_MAX_CLOCK_SKEW_S", "-1")
    with pytest.raises(ValueError, match="event_max_clock_skew_s"):
        ServiceSettings()


def test_a_listing_announced_ahead_of_its_launch_passes_but_not_years_ahead() -> None:
    now = datetime.now(UTC)
    soon = listing("NEWUSDT", "NEW", now + timedelta(days=2))
    assert decode(encode(soon)) == soon
    with pytest.raises(ValueError, match="30 days ahead"):
        listing("NEWUSDT", "NEW", now + timedelta(days=400))


def test_a_funding_rate_beyond_100_percent_per_interval_is_refused(api: Path) -> None:
    """A rate of 5.0 (500 % per 8 h) passed the |x| <= 1e30 bound and became the most extreme
    funding factor of its symbol; real rates are capped at a few percent by every venue."""
    from perpsignal_connectors.binance_usdm.parsing import parse_premium_index
    from perpsignal_connectors.binance_usdm.schemas import PREMIUM_INDEX_ONE

    body = json.loads((api / "binance_usdm" / "fapi_v1_premiumIndex.doc_current.json").read_text())
    raw = encode(parse_premium_index(PREMIUM_INDEX_ONE.validate_python(body)))
    for fine in ("0.03", "-0.03", "1", "-1"):  # an extreme real rate, and the bound itself
        decode(poison(raw, "rate", fine))
    for absurd in ("5", "-1.5", "1e20"):
        with pytest.raises(PoisonMessage, match="rate"):
            decode(poison(raw, "rate", absurd))
    with pytest.raises(ValueError, match="rate"):  # the parser refuses to build one too
        parse_premium_index(PREMIUM_INDEX_ONE.validate_python(body | {"lastFundingRate": "5"}))


def _with_plan(raw: bytes, **levels: float | None) -> bytes:
    """`raw` (a judged signal) with its trade plan's levels set as given."""
    data = json.loads(raw)
    data["ai_verdict_layer"]["volatility_metrics"].update(levels)
    return json.dumps(data).encode()


@pytest.mark.parametrize("direction", ["LONG", "SHORT"])
def test_a_trade_plan_on_the_wrong_side_of_the_price_is_poison(direction: str) -> None:
    """Outcomes measure a plan by its sides: a LONG target below entry would be 'hit' by the
    first candle (a WIN no market gave). The judge never makes one; a record that carries
    one is dead-lettered, naming the level."""
    judged = real_judged(direction=direction, plan=True)
    vol = judged.ai_verdict_layer.volatility_metrics
    assert vol.stop_loss_price is not None and vol.take_profit_price is not None
    raw = encode(judged)
    assert decode(raw) == judged  # the judge's own plan passes
    swapped = _with_plan(raw, stop_loss_price=vol.take_profit_price, take_profit_price=None)
    with pytest.raises(PoisonMessage, match="stop_loss_price"):
        decode(swapped)
    with pytest.raises(PoisonMessage, match="take_profit_price"):
        decode(_with_plan(raw, stop_loss_price=None, take_profit_price=vol.stop_loss_price))
    with pytest.raises(PoisonMessage, match="take_profit_price"):
        decode(_with_plan(raw, take_profit_price=0.0))
    with pytest.raises(PoisonMessage, match="atr"):
        decode(_with_plan(raw, atr=-1.0))


def test_a_neutral_signal_with_a_trade_plan_is_poison() -> None:
    neutral = real_judged(direction="NEUTRAL")
    planned = real_judged(direction="LONG", plan=True).ai_verdict_layer.volatility_metrics
    raw = _with_plan(
        encode(neutral),
        stop_loss_price=planned.stop_loss_price,
        take_profit_price=planned.take_profit_price,
    )
    with pytest.raises(PoisonMessage, match="NEUTRAL"):
        decode(raw)


@pytest.mark.parametrize(
    "hidden", ["\u200d", "\u200c", "\ufe0f", "\u0301"], ids=["ZWJ", "ZWNJ", "VS16", "mark"]
)
def test_a_symbol_with_an_invisible_joiner_or_mark_is_poison(candle: bytes, hidden: str) -> None:
    """`\\w` let zero-width joiners, variation selectors and combining marks into a symbol:
    'XRP\\u200dUSDT' is a symbol of its own that every screen shows as XRPUSDT (the notifier
    even strips the joiner), so a record could pass for another market's."""
    with pytest.raises(PoisonMessage, match="symbol"):
        decode(poison(candle, "symbol", json.dumps(f"XRP{hidden}USDT")))


@pytest.mark.parametrize(
    ("field", "token", "read"),
    [("trades", "12.0", 12), ("schema_version", "1.0", 1), ("trades", "1e3", 1000)],
)
def test_an_integer_written_with_a_zero_fraction_is_that_integer(
    candle: bytes, field: str, token: str, read: int
) -> None:
    """JSON Schema counts `12.0` as an integer, so a producer validated against the published
    schema may write it (Java's Jackson for a double, pandas for an int column with a gap):
    strict decoding dead-lettered such a conforming record."""
    event = decode(poison(candle, field, token))
    assert isinstance(event, CandleClosedV1)
    assert getattr(event, field) == read and type(getattr(event, field)) is int
    assert event == decode(poison(candle, field, str(read)))


@pytest.mark.parametrize(
    ("field", "token"),
    [
        ("trades", "12.5"),
        ("trades", "true"),
        ("trades", '"12"'),
        ("trades", "-1.0"),
        ("trades", "1e30"),
        ("schema_version", "1.5"),
        ("schema_version", "2.0"),
    ],
)
def test_an_integer_field_still_refuses_a_fraction_a_boolean_or_a_string(
    candle: bytes, field: str, token: str
) -> None:
    with pytest.raises(PoisonMessage, match=field):
        decode(poison(candle, field, token))


HOSTILE_ID_CHARS = {
    "NUL": "\u0000",
    "ESC": "\u001b",
    "newline": "\n",
    "DEL": "\u007f",
    "C1 NEL": "\u0085",
    "space": " ",
    "no-break space": "\u00a0",
    "zero-width space": "\u200b",
    "RLO": "\u202e",
    "RLI": "\u2067",
    "BOM": "\ufeff",
}


@pytest.mark.parametrize("field", ["event_id", "signal_id", "correlation_id", "venue"])
@pytest.mark.parametrize("hidden", HOSTILE_ID_CHARS.values(), ids=HOSTILE_ID_CHARS.keys())
def test_an_id_with_a_control_space_or_invisible_character_is_poison(
    field: str, hidden: str
) -> None:
    """An id took any character: a judged signal whose signal id carried NUL was refused by
    PostgreSQL (the notifier retried it, then dead-lettered it with a raw database error, and
    nothing was sent); a newline forges a log line, a bidi override or zero-width character
    makes one id look like another. Now every consumer dead-letters such a record at decode,
    naming the field and the character."""
    raw = poison(encode(real_judged()), field, json.dumps(f"ev{hidden}1"))
    with pytest.raises(PoisonMessage, match=rf"{field}.*U\+{ord(hidden):04X}"):
        decode(raw)


def test_ids_of_any_script_still_pass() -> None:
    event = real_judged()
    for good in ("币安人生-1", "Ωmega_2", "ev-\U0001f680", "a" * 256):
        decoded = decode(poison(encode(event), "signal_id", json.dumps(good)))
        assert decoded.signal_id == good  # type: ignore[attr-defined]


@pytest.mark.parametrize("path", ["ai_summary", "agreements", "trade_plan_summary", "reason"])
def test_free_text_with_a_nul_is_poison(path: str) -> None:
    """PostgreSQL stores no NUL in text or jsonb: the outcomes service refused the whole
    judged signal (lost from the history). The contract now refuses it at decode; other
    control characters, which store fine, still pass as text."""
    data = json.loads(encode(real_judged("CONFIRM", "LONG", True)))
    layer = data["ai_verdict_layer"]
    if path == "ai_summary":
        layer["ai_summary"] = "fine\u0000hidden"
    elif path == "agreements":
        layer["layer_checks"]["agreements"] = ["trend up", "x\u0000"]
    elif path == "trade_plan_summary":
        layer["volatility_metrics"]["trade_plan_summary"] = "\u0000"
    else:
        data["factors"][0]["reason"] = "stale\u0000"
    with pytest.raises(PoisonMessage, match="NUL"):
        decode(json.dumps(data).encode())


def test_free_text_with_other_control_characters_still_passes() -> None:
    data = json.loads(encode(real_judged("CONFIRM", "LONG", True)))
    data["ai_verdict_layer"]["ai_summary"] = "tab\there\nand a new line \u202e"
    decoded = decode(json.dumps(data).encode())
    assert decoded.ai_verdict_layer.ai_summary.startswith("tab\t")  # type: ignore[attr-defined]
