"""Argument checks `backtest` and `calibrate` share: done before any history is read, so a
bad value is one line and exit 2, never a traceback half-way through a run."""

from __future__ import annotations

import sys
from pathlib import Path


def out_folder(out: Path, prog: str) -> bool:
    """Create the report folder; say in one line why it cannot be (a file, /dev/null...)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        why = "not a folder" if isinstance(exc, FileExistsError) else exc.strerror or exc
        print(f"{prog}: cannot write to --out {out}: {why}", file=sys.stderr)
        return False
    return True


def valid_symbol(symbol: str, prog: str) -> bool:
    """Return True when the event contracts accept `symbol`; else say so in one line.

    Checked up front: events are built lazily, so the contract would refuse it at the first
    bar, mid-run.
    """
    from pydantic import TypeAdapter, ValidationError

    from perpsignal_common.events.values import Symbol

    try:
        TypeAdapter(Symbol).validate_python(symbol)
    except ValidationError:
        print(
            f"{prog}: --symbol {symbol!r} is not a symbol: 1-64 letters, digits or _ . : / + $ -",
            file=sys.stderr,
        )
        return False
    return True
