"""`perpsignal export` on a real PostgreSQL: stored NaN/infinite values are named, not
silently exported as "unknown"; a lower-case --symbol finds the stored upper-case one."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import orjson
import pytest
from sqlalchemy import update

from perpsignal_cli import export
from perpsignal_common.db.engine import session_scope
from perpsignal_common.db.models.outcomes import OutcomeSignal, SignalOutcome
from perpsignal_outcomes import repository as repo
from tests.integration.outcomes.conftest import judged

pytestmark = pytest.mark.db

HORIZONS = {"1h": 3600, "4h": 14_400, "24h": 86_400}


async def test_nan_and_infinite_values_are_named_and_a_symbol_matches_any_case(
    sessions,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with session_scope(sessions) as s:
        await repo.store_signals(
            s,
            [
                judged(signal_id="a"),
                judged(signal_id="b", symbol="BTCUSDT", direction="SHORT", price=60000.0),
            ],
            HORIZONS,
            timedelta(0),
        )
        # what a buggy or hand-run writer can leave: double precision stores NaN and infinity
        await s.execute(
            update(OutcomeSignal).where(OutcomeSignal.signal_id == "a").values(price=float("nan"))
        )
        await s.execute(
            update(SignalOutcome)
            .where(SignalOutcome.signal_id == "a", SignalOutcome.horizon == "4h")
            .values(pnl_pct=float("inf"))
        )
    monkeypatch.setenv("DATABASE_URL", database_url)

    out = tmp_path / "history.jsonl"
    assert await asyncio.to_thread(export.main, ["--out", str(out)]) == 0
    err = capsys.readouterr().err
    # the old code wrote null (the file's "not measured") and said nothing
    assert (
        "warning: 2 stored value(s) are NaN or infinite and were written as null "
        "(JSON has no NaN): signal a price; signal a outcomes[4h].pnl_pct"
    ) in err
    a = orjson.loads(out.read_bytes().splitlines()[0])
    assert a["signal_id"] == "a" and a["price"] is None  # the line itself is kept

    # the services store symbols upper-case: `btcusdt` used to export nothing, exit 0
    btc = tmp_path / "btc.jsonl"
    assert await asyncio.to_thread(export.main, ["--out", str(btc), "--symbol", "btcusdt"]) == 0
    assert [orjson.loads(raw)["signal_id"] for raw in btc.read_bytes().splitlines()] == ["b"]


async def test_an_export_that_matches_nothing_says_so(
    sessions,
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    async with session_scope(sessions) as s:
        await repo.store_signals(s, [judged(signal_id="a")], HORIZONS, timedelta(0))
    monkeypatch.setenv("DATABASE_URL", database_url)
    capsys.readouterr()
    # a misspelt symbol: the old export wrote an empty file and exited 0 without a word (to
    # stdout, not even "exported 0 lines")
    assert await asyncio.to_thread(export.main, ["--symbol", "XRPUSD"]) == 0
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err == "perpsignal export: nothing matched --symbol XRPUSD\n"
    out = tmp_path / "h.jsonl"
    argv = ["--out", str(out), "--since", "2030-01-01"]
    assert await asyncio.to_thread(export.main, argv) == 0
    assert capsys.readouterr().err.endswith(
        "perpsignal export: nothing matched --since 2030-01-01T00:00:00+00:00\n"
    )
    assert out.read_bytes() == b""
