"""The dashboard's symbol handling (`static/js/symbols.js`) under Node, against the gateway's.

What a user types or clicks must name the symbol the API names: "sol" with a long s is not
SOLUSDT (JS `toUpperCase` folds the long s to S), 币安人生 is 币安人生USDT, and a look-alike
with an invisible joiner is no symbol at all, exactly as `perpsignal_gateway.symbols` decides.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from perpsignal_gateway.symbols import ascii_upper, is_symbol, normalize_symbol

JS = Path(__file__).resolve().parents[3] / "services/gateway/src/perpsignal_gateway/static/js"

HARNESS = r"""
const m = await import(process.argv[2]);
const typed = JSON.parse(process.argv[3]);
const out = typed.map((t) => [m.isSymbol(t), m.typedSymbol(t), m.symbolHref(t)]);
console.log(JSON.stringify(out));
"""

TYPED = ["btc", "BTC/USDT", "eth-usdt", " sol ", "币安人生", "币安人生usdt", "\u017fol",
         "\u00dftc", "\u03b1\u03b2\u03b3", "BTC-USDT-SWAP", "btc.p", "1000pepe",
         "币安\u200d人生USDT", "BTC\u0301", "币安人生\ufe0f", "\u2060BTC", "BTC USDT", "<b>",
         "1000", "a" * 64, "a" * 65, "\U0001d538BC"]  # fmt: skip


@pytest.mark.skipif(shutil.which("node") is None, reason="node is not installed")
def test_the_dashboard_names_the_symbols_the_gateway_names(tmp_path: Path) -> None:
    harness = tmp_path / "harness.mjs"
    harness.write_text(HARNESS)
    done = subprocess.run(
        ["node", str(harness), (JS / "symbols.js").as_uri(), json.dumps(TYPED)],
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    for typed, (valid, symbol, href) in zip(TYPED, json.loads(done.stdout), strict=True):
        stripped = typed.strip()
        assert valid == (is_symbol(typed) and typed == stripped), typed
        expected = normalize_symbol(typed) if is_symbol(stripped) else None
        assert symbol == expected, (typed, symbol, expected)
        assert href == "#/symbol/" + "".join(
            c if c.isascii() and (c.isalnum() or c in "-_.!~*'()") else _pct(c) for c in typed
        )
    assert (
        json.loads(done.stdout)[TYPED.index("\u017fol")][1]
        == "\u017fOLUSDT"
        == ascii_upper("\u017fol") + "USDT"
    )


def _pct(c: str) -> str:
    return "".join(f"%{b:02X}" for b in c.encode())
