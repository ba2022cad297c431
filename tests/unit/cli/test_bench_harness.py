"""The benchmark harness on synthetic benchmarks: goals judged right, stale results excluded.

Runs `perpsignal bench`'s own `run` against a throw-away `bench/` package whose modules write
rows with the real `bench/common.py` (copied in), so what is checked is what `make bench`
does: which rows reach the table and README, and what "met" says. Nothing here is timed.
"""

from __future__ import annotations

import json
import math
import shutil
import sys
from pathlib import Path

import pytest

from perpsignal_cli import bench as harness

REPO = Path(__file__).resolve().parents[3]
sys.path.insert(0, str(REPO))

from bench.common import Row  # noqa: E402

GOOD = """
from bench.common import Row, report
report("good", [
    Row("fast path", 95.0, "ev/s", "raw loop", 100.0, ">= 0.90x", goal_ratio=0.9),
    Row("slow path", 80.0, "ev/s", "raw loop", 100.0, ">= 0.90x", goal_ratio=0.9),
    Row("latency", 30.0, "ms", "raw chain", 20.0, "<= 2x", higher_is_better=False,
        goal_ratio=2.0),
    Row("info only", 5.0, "x", "other path", 10.0, "info"),
    Row.absolute("p99", 120.0, "ms", "< 100 ms", limit=100.0, higher_is_better=False),
])
"""
FAILS = "raise SystemExit(1)\n"


def _bench_dir(tmp_path: Path) -> Path:
    pkg = tmp_path / "bench"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    shutil.copy(REPO / "bench" / "common.py", pkg / "common.py")
    (pkg / "good.py").write_text(GOOD)
    (pkg / "broken.py").write_text(FAILS)
    results = pkg / "results"
    results.mkdir()
    # left by an earlier run: a benchmark that fails now, and one that no longer exists
    stale = {"machine": "old", "rows": [Row("stale row", 1, "x", "b", 1, "g").as_dict()]}
    (results / "broken.json").write_text(json.dumps(stale))
    (results / "removed.json").write_text(json.dumps(stale))
    return pkg


def _summary(tmp_path: Path) -> dict[str, object]:
    pkg = _bench_dir(tmp_path)
    with (tmp_path / "log.txt").open("w") as log:
        return harness.run(harness.discover(pkg), log=log, bench_dir=pkg)


def test_goals_are_judged_on_the_same_run_ratio_or_the_absolute_bound() -> None:
    rows = {
        r.name: r.passed
        for r in [
            Row("met", 95, "x", "b", 100, "", goal_ratio=0.9),
            Row("missed", 80, "x", "b", 100, "", goal_ratio=0.9),
            Row("lower met", 30, "ms", "b", 20, "", higher_is_better=False, goal_ratio=2.0),
            Row("lower missed", 50, "ms", "b", 20, "", higher_is_better=False, goal_ratio=2.0),
            Row("order lost", 95, "x", "b", 100, "", goal_ratio=0.9, extra_ok=False),
            Row("info", 1, "x", "b", 2, "info"),
        ]
    }
    assert rows == {
        "met": True,
        "missed": False,
        "lower met": True,
        "lower missed": False,
        "order lost": False,
        "info": None,
    }
    over = Row.absolute("p99", 120, "ms", "< 100 ms", limit=100, higher_is_better=False)
    assert over.kind == "absolute"
    assert over.passed is False
    assert math.isnan(over.ratio)
    assert over.as_dict()["ratio"] is None  # valid JSON, no NaN
    assert Row("x", 1, "x", "b", 2, "", limit=3).kind == "absolute"  # a bound is absolute
    assert Row("x", 1, "x", "b", 2, "").kind == "same-run"


def test_a_run_reports_only_what_it_measured(tmp_path: Path) -> None:
    summary = _summary(tmp_path)

    names = [r["name"] for r in summary["rows"]]  # type: ignore[attr-defined]
    assert "stale row" not in names  # neither the failed benchmark's old file ...
    assert summary["failed"] == ["broken"]  # ... which is reported as failed
    assert names == ["fast path", "slow path", "latency", "info only", "p99"]
    assert summary["complete"] is True
    written = json.loads((tmp_path / "bench" / "results" / "summary.json").read_text())
    assert written["rows"] == summary["rows"]
    assert not (tmp_path / "bench" / "results" / "broken.json").exists()


def test_table_splits_same_run_from_absolute_and_says_met_or_not(tmp_path: Path) -> None:
    table = harness.render_markdown(_summary(tmp_path))
    same, absolute = table.split("**Absolute figures, context only**")

    head = "| benchmark | figure | measured value | same-run baseline | ratio | goal | met |"
    assert head in same
    assert "| good | fast path | 95.0 ev/s | raw loop: 100.0 | 0.95 | >= 0.90x | met |" in same
    assert "| good | slow path | 80.0 ev/s | raw loop: 100.0 | 0.80 | >= 0.90x | not met |" in same
    assert "| good | latency | 30.0 ms | raw chain: 20.0 | 1.50 | <= 2x | met |" in same
    assert "| good | info only | 5.00 x | other path: 10.0 | 0.50 | info | - |" in same
    assert "p99" not in same
    assert "| good | p99 | 120.0 ms | - | - | < 100 ms | not met |" in absolute
    assert "machine: " in absolute.splitlines()[0]
    assert "Failed in this run (no rows): broken." in table
    assert "stale row" not in table


def test_readme_block_is_rewritten_from_one_full_run_only(tmp_path: Path) -> None:
    summary = _summary(tmp_path)
    readme = tmp_path / "README.md"
    readme.write_text("# x\n<!-- bench:start -->\n| old | table |\n<!-- bench:end -->\nafter\n")

    assert harness.write_readme_table(summary, readme) == 0
    text = readme.read_text()
    assert "| old | table |" not in text
    assert "| good | slow path |" in text
    assert text.endswith("<!-- bench:end -->\nafter\n")

    partial = {**summary, "complete": False}
    readme.write_text("<!-- bench:start -->\nkept\n<!-- bench:end -->\n")
    assert harness.write_readme_table(partial, readme) == 2
    assert "kept" in readme.read_text()


@pytest.mark.parametrize("name", ["common", "__init__"])
def test_helpers_are_not_benchmarks(name: str) -> None:
    assert name not in harness.discover()
