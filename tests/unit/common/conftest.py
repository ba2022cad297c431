"""Fixtures of the shared-library tests."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """Give back the root logger's handlers and level after each test.

    `run_service` installs a handler on the sys.stderr of its test (pytest's capture, closed
    when the test ends); left in place, every later log line in the worker (alembic's, in
    the `up` tests) printed '--- Logging error ---' with a traceback into their output.
    """
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)
