"""Symbol forms the gateway accepts, and garbage it must not silently map to a real symbol."""

from __future__ import annotations

import pytest

from perpsignal_gateway.symbols import normalize_symbol


@pytest.mark.parametrize(
    ("raw", "want"),
    [("BTC", "BTCUSDT"), ("btc", "BTCUSDT"), ("BTCUSDT", "BTCUSDT"), ("BTC-USDT", "BTCUSDT"),
     ("btc/usdt", "BTCUSDT"), (" eth ", "ETHUSDT")],
)  # fmt: skip
def test_accepted_forms(raw: str, want: str) -> None:
    assert normalize_symbol(raw) == want


@pytest.mark.parametrize("raw", ["BTC$", "BTC USDT", "<script>", "../../etc/passwd", "B-T-C"])
def test_garbage_is_not_turned_into_a_real_symbol(raw: str) -> None:
    assert normalize_symbol(raw) not in {"BTCUSDT", "SCRIPTUSDT", "ETCPASSWDUSDT"}
    assert normalize_symbol(raw) == raw.strip().upper()
