"""`perpsignal bench`: run every benchmark in bench/, print one table and write one JSON file.

Each benchmark runs in its own process (`python -m bench.<name>`), so one benchmark's memory
or threads never skew another's, and writes bench/results/<name>.json; this command then
merges the rows of *this run* into bench/results/summary.json and prints the combined table.
A result file left by an earlier run never leaks in: each benchmark's file is deleted before
it runs and read back only if this run wrote it.

The table has two parts: same-run comparisons (a figure against a baseline measured in the
same run, judged on the ratio) and absolute figures (judged against a fixed bound), which
are context only and always printed with the machine named. `--readme` writes the table of
a full run (every benchmark) into README.md's `bench` block.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, TextIO

REPO = Path(__file__).resolve().parents[4]
BENCH = REPO / "bench"
RESULTS = BENCH / "results"
SKIP = {"__init__", "common"}


def discover(bench_dir: Path = BENCH) -> list[str]:
    """Return the benchmark module names under bench/."""
    return sorted(
        p.stem for p in bench_dir.glob("*.py") if p.stem not in SKIP and not p.stem.startswith("_")
    )


def _machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text(encoding="utf-8").splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def main(argv: list[str]) -> int:
    """Run the selected benchmarks (all by default)."""
    parser = argparse.ArgumentParser(prog="perpsignal bench")
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--list", action="store_true")
    parser.add_argument(
        "--json",
        action="store_true",
        help="print the summary as JSON on stdout (progress goes to stderr)",
    )
    parser.add_argument(
        "--readme",
        action="store_true",
        help="after the run, write its table into README.md's benchmark block (full runs only)",
    )
    parser.add_argument(
        "--readme-from-summary",
        action="store_true",
        help="run nothing; write the table of bench/results/summary.json (a full run) into "
        "README.md",
    )
    args = parser.parse_args(argv)
    if args.list:
        print(json.dumps(discover()) if args.json else "\n".join(discover()))
        return 0
    if args.readme_from_summary:
        path = RESULTS / "summary.json"
        if not path.exists():
            print(f"no {path}: run `make bench` first", file=sys.stderr)
            return 2
        return write_readme_table(json.loads(path.read_text()))
    names = args.names or discover()
    unknown = sorted(set(names) - set(discover()))
    if unknown:
        print(f"unknown benchmark(s): {', '.join(unknown)}", file=sys.stderr)
        return 2
    summary = run(names, log=sys.stderr if args.json else sys.stdout)
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print()
        print(render_markdown(summary))
        print(f"\nJSON: {RESULTS / 'summary.json'}")
    code = 1 if summary["failed"] else 0
    if args.readme:
        code = write_readme_table(summary) or code
    return code


def run(names: list[str], log: TextIO | None = None, bench_dir: Path = BENCH) -> dict[str, Any]:
    """Run `names` one after another; return (and write) the summary of this run only."""
    out = log or sys.stdout
    results_dir = bench_dir / "results"
    results_dir.mkdir(exist_ok=True)
    (results_dir / "summary.json").unlink(missing_ok=True)
    rows: list[dict[str, Any]] = []
    failures: list[str] = []
    took: dict[str, float] = {}
    started_all = time.monotonic()
    load = _loadavg()
    for i, name in enumerate(names, 1):
        print(f"[{i}/{len(names)}] {name} ...", file=out, flush=True)
        result = results_dir / f"{name}.json"
        result.unlink(missing_ok=True)  # whatever an earlier run left must not be read back
        started_wall = time.time()
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", f"bench.{name}"],
            cwd=bench_dir.parent,
            env={**os.environ},
            stdout=out,
            check=False,
        )
        took[name] = round(time.monotonic() - started, 1)
        fresh = result.exists() and result.stat().st_mtime >= started_wall - 1
        if proc.returncode != 0 or not fresh:
            failures.append(name)
            print(f"  {name} failed (exit {proc.returncode})", file=out)
            continue
        rows.extend({"benchmark": name, **row} for row in _rows(result))
        print(f"  done in {took[name]:.0f}s", file=out)
    summary: dict[str, Any] = {
        "machine": _machine(),
        "load_average_at_start": load,
        "benchmarks": names,
        "complete": sorted(names) == discover(bench_dir),
        "rows": rows,
        "failed": failures,
        "seconds": took,
        "total_seconds": round(time.monotonic() - started_all, 1),
    }
    (results_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return summary


def _loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def _rows(path: Path) -> list[dict[str, Any]]:
    data = json.loads(path.read_text())
    rows: list[dict[str, Any]] = data["rows"] if isinstance(data, dict) else data
    return rows


def write_readme_table(summary: dict[str, Any], readme: Path | None = None) -> int:
    """Put one run's table into the README's bench block; refuse a partial run's."""
    from perpsignal_cli.docs import replace_block

    if not summary.get("complete"):
        print(
            "README not written: these results are not from a full run (`make bench`)",
            file=sys.stderr,
        )
        return 2
    path = readme or REPO / "README.md"
    path.write_text(replace_block(path.read_text(), "bench", render_markdown(summary)))
    print(f"README benchmark table: {len(summary['rows'])} rows")
    return 0


def _num(x: Any) -> float:
    try:
        return float(x)
    except (TypeError, ValueError):
        return math.nan


def _fmt(x: float) -> str:
    if math.isnan(x):
        return "-"
    return f"{x:,.2f}" if abs(x) < 10 else f"{x:,.1f}"


def _kind(row: dict[str, Any]) -> str:
    if "kind" in row:
        return str(row["kind"])
    # rows of a benchmark that predates kinds: a same-run baseline is all it can claim
    return "same-run" if row.get("baseline_name") else "absolute"


_MET = {True: "met", False: "not met", None: "-"}


def render_markdown(summary: dict[str, Any]) -> str:
    """Return one run's rows as Markdown: same-run comparisons, then absolute figures."""
    rows: list[dict[str, Any]] = list(summary.get("rows") or [])
    machine = summary.get("machine") or "unknown machine"
    head = (
        "| benchmark | figure | measured value | same-run baseline | ratio | goal | met |\n"
        "|---|---|---:|---|---:|---|---|"
    )
    same = [r for r in rows if _kind(r) == "same-run"]
    absolute = [r for r in rows if _kind(r) != "same-run"]
    parts = ["**Same-run comparisons** (ratio to a baseline measured in the same run)", "", head]
    parts += [_line(r) for r in same] or ["| - | - | - | - | - | - | - |"]
    parts += [
        "",
        f"**Absolute figures, context only** (machine: {machine}; load average at start: "
        f"{_load(summary.get('load_average_at_start'))})",
        "",
        head,
    ]
    parts += [_line(r) for r in absolute] or ["| - | - | - | - | - | - | - |"]
    failed = summary.get("failed") or []
    if failed:
        parts += ["", f"Failed in this run (no rows): {', '.join(map(str, failed))}."]
    seconds = summary.get("seconds")
    if isinstance(seconds, dict) and seconds:
        took = ", ".join(f"{k} {v:.0f} s" for k, v in seconds.items())
        parts += ["", f"Run time: {took}; total {summary.get('total_seconds', '?')} s."]
    return "\n".join(parts)


def _load(load: Any) -> str:
    return ", ".join(f"{x:g}" for x in load) if isinstance(load, list) else "unknown"


def _line(r: dict[str, Any]) -> str:
    baseline = (
        f"{r['baseline_name']}: {_fmt(_num(r.get('baseline_value')))}"
        if r.get("baseline_name")
        else "-"
    )
    met = _MET.get(r.get("passed"), "-")
    return (
        f"| {r['benchmark']} | {r['name']} | {_fmt(_num(r['value']))} {r['unit']} | "
        f"{baseline} | {_fmt(_num(r.get('ratio')))} | {r['goal']} | {met} |"
    )
