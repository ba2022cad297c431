"""The mypyc-compiled domain core: used only when built from the current source, and it
gives the very signals the interpreted source gives.

`perpsignal_domain._native` serves the package from a compiled copy in the venv when that
copy's digest equals the source's. A stale copy running after an edit would be a silent
wrong answer; a compiled engine that differs from the interpreted one would make the
backtest and the live scorer disagree with every test that runs interpreted.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

import perpsignal_domain
from perpsignal_domain import _native

REPO = Path(__file__).resolve().parents[3]
SOURCE = Path(perpsignal_domain.__file__).parent


def _stamp(root: Path, digest: str) -> None:
    (root / _native.NAME).mkdir(parents=True)
    (root / _native.STAMP).write_text(json.dumps({"digest": digest, "mypy": "test"}))


def test_a_build_from_other_source_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("PERPSIGNAL_NATIVE", raising=False)
    monkeypatch.setattr(_native, "native_root", lambda: tmp_path)
    _stamp(tmp_path, "0" * 64)
    path = [str(SOURCE)]
    assert "older than the source" in _native.activate(path)
    assert path == [str(SOURCE)]


def test_a_build_from_this_source_is_used_unless_switched_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_native, "native_root", lambda: tmp_path)
    _stamp(tmp_path, _native.source_digest())
    monkeypatch.setenv("PERPSIGNAL_NATIVE", "0")
    path = [str(SOURCE)]
    assert _native.activate(path) == "pure Python (PERPSIGNAL_NATIVE=0)"
    assert path == [str(SOURCE)]
    monkeypatch.delenv("PERPSIGNAL_NATIVE")
    monkeypatch.setattr(sys, "path", list(sys.path))
    assert _native.activate(path).startswith("compiled with mypyc")
    assert path == [str(tmp_path / _native.NAME), str(SOURCE)]


def test_editing_any_source_file_changes_the_digest(tmp_path: Path) -> None:
    copy = tmp_path / "pkg"
    shutil.copytree(SOURCE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    before = _native.source_digest(copy)
    assert _native.source_digest(copy) == before
    rules = copy / "judging" / "rules.py"
    rules.write_text(rules.read_text() + "\n# an edit\n")
    assert _native.source_digest(copy) != before
    rules.unlink()
    assert _native.source_digest(copy) != before


def _backtest(candles: Path, market: Path, out: Path, native: str) -> tuple[str, str]:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "perpsignal_cli.main",
            "backtest",
            "--symbol",
            "XRPUSDT",
            "--candles",
            str(candles),
            "--funding",
            str(market / "XRP_USDT_USDT-8h-funding_rate.csv"),
            "--fear-greed",
            str(market / "alternative_me-fear_greed-1d.csv"),
            "--out",
            str(out),
            "--timeframe",
            "5m",
            "--jobs",
            "1",
            "--no-progress",
            "--quiet",
        ],
        capture_output=True,
        text=True,
        cwd=REPO,
        env={**os.environ, "PERPSIGNAL_NATIVE": native},
        timeout=600,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return (out / "signals.jsonl").read_text(), done.stderr


def test_the_compiled_engine_gives_the_interpreted_engines_signals(
    market: Path, tmp_path: Path
) -> None:
    """Every signal, verdict and trade plan of 2,000 real 5m bars (each bar scored) with
    funding and fear & greed, byte for byte (ids and times included: they derive from the
    data)."""
    probe = subprocess.run(
        [sys.executable, "-c", "import perpsignal_domain._native as n; print(n.status)"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "PERPSIGNAL_NATIVE"},
        check=True,
    ).stdout.strip()
    if not probe.startswith("compiled"):
        if os.environ.get("CI"):
            pytest.fail(f"CI must exercise the compiled domain core (`make native`): {probe}")
        pytest.skip(f"no compiled domain core: {probe}")
    lines = (market / "XRP_USDT_USDT-5m-futures.csv").read_text().splitlines()[:4001]
    candles = tmp_path / "xrp_5m.csv"
    candles.write_text("\n".join(lines) + "\n")
    compiled, log = _backtest(candles, market, tmp_path / "compiled", "1")
    interpreted, _ = _backtest(candles, market, tmp_path / "interpreted", "0")
    assert "domain core: compiled with mypyc" in log
    assert compiled.count("\n") > 1900  # its first 4,000 rows hold 2,000 distinct bars
    assert compiled == interpreted


def test_a_build_that_cannot_be_written_says_so_before_compiling(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A system-wide install whose prefix is not writable: `make install` goes on (the
    domain runs interpreted) with one line saying why, at once rather than after a minute
    of compiling and a traceback."""
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("")
    monkeypatch.setattr(_native, "native_root", lambda: blocker / "perpsignal-native")
    said = _native.build()
    assert "cannot be written" in said and "pure Python" in said
