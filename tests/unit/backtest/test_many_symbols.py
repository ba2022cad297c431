"""Several symbols in one backtest run: each gets what it gets alone."""

from __future__ import annotations

import gc
from pathlib import Path
from typing import Any

import pytest

from perpsignal_cli.backtesting.pipeline import (
    RunResult,
    load_history,
    run_in_process,
    run_many,
)


def _view(result: RunResult) -> list[tuple[Any, ...]]:
    return [
        (
            r.judged.model_dump(mode="json", exclude={"produced_at"}),
            {
                h: None if o is None else (o.evaluation, o.path_timeframe)
                for h, o in r.outcomes.items()
            },
        )
        for r in result.records
    ]


def test_each_symbol_in_a_shared_run_gets_its_solo_signals_and_outcomes(
    xrp_small: Path, market: Path
) -> None:
    funding = market / "XRP_USDT_USDT-8h-funding_rate.csv"
    a = load_history("AAAUSDT", xrp_small, funding=funding)
    b = load_history("BBBUSDT", xrp_small)
    together = run_many([a, b], progress=False)
    assert [r.events_done for r in together] == [len(a.events) + len(b.events)] * 2
    for history, shared in zip((a, b), together, strict=True):
        alone = run_in_process(history, progress=False)
        assert shared.records and _view(shared) == _view(alone)
        assert {r.judged.symbol for r in shared.records} == {history.symbol}


def test_the_run_leaves_the_garbage_collector_as_it_found_it(xrp_small: Path) -> None:
    before = gc.get_threshold(), gc.get_freeze_count(), gc.isenabled()
    run_in_process(load_history("XRPUSDT", xrp_small), progress=False)
    assert (gc.get_threshold(), gc.get_freeze_count(), gc.isenabled()) == before


def test_two_histories_of_one_symbol_are_refused(xrp_small: Path) -> None:
    h = load_history("XRPUSDT", xrp_small)
    with pytest.raises(ValueError, match="one history per symbol"):
        run_many([h, h], progress=False)
