"""Fixtures of the backtest tests: real recorded history from ../shared/data/market."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def market(shared_data: Path) -> Path:
    """The recorded market CSVs (skips when ../shared/data is absent)."""
    path = shared_data / "market"
    if not path.is_dir():
        pytest.skip("../shared/data/market is not present")
    return path


@pytest.fixture(scope="session")
def xrp_small(market: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The first 400 XRPUSDT 5m candles (about 33 hours): a fast, real history."""
    lines = (market / "XRP_USDT_USDT-5m-futures.csv").read_text().splitlines()[:401]
    path = tmp_path_factory.mktemp("hist") / "xrp_5m_small.csv"
    path.write_text("\n".join(lines) + "\n")
    return path
