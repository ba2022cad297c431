"""Connector test fixtures: the recorded vendor bodies and the local fake vendors."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.fakes.vendors import FakeVendors


@pytest.fixture(scope="session")
def api_dir(shared_data: Path) -> Path:
    """`../shared/data/api` (skips when absent)."""
    path = shared_data / "api"
    if not path.is_dir():
        pytest.skip("../shared/data/api is not present")
    return path


@pytest.fixture
def load(api_dir: Path):
    """Return a loader of one recorded body by `vendor/file` name."""

    def _load(rel: str) -> Any:
        return json.loads((api_dir / rel).read_text())

    return _load


@pytest.fixture
async def fake(shared_data: Path) -> AsyncIterator[FakeVendors]:
    """A fake of every vendor on a free local port."""
    async with FakeVendors(shared_data) as server:
        yield server
