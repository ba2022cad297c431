"""`perpsignal bench`: run every benchmark in bench/, print one table and write one JSON file.

Each benchmark runs in its own process (`python -m bench.<name>`), so one benchmark's memory
or threads never skew another's, and writes bench/results/<name>.json; this command then
merges them into bench/results/summary.json and prints the combined table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[4]
BENCH = REPO / "bench"
RESULTS = BENCH / "results"
SKIP = {"__init__", "common"}


def discover() -> list[str]:
    """Return the benchmark module names under bench/."""
    return sorted(
        p.stem for p in BENCH.glob("*.py") if p.stem not in SKIP and not p.stem.startswith("_")
    )


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
        help="write the table of the latest results (bench/results/*.json) into README.md",
    )
    args = parser.parse_args(argv)
    if args.readme:
        return write_readme_table()
    names = args.names or discover()
    if args.list:
        print(json.dumps(discover()) if args.json else "\n".join(discover()))
        return 0
    # With --json, stdout carries only the JSON document
    log = sys.stderr if args.json else sys.stdout
    rows: list[dict[str, object]] = []
    failures = []
    for i, name in enumerate(names, 1):
        print(f"[{i}/{len(names)}] {name} ...", file=log, flush=True)
        started = time.monotonic()
        proc = subprocess.run(
            [sys.executable, "-m", f"bench.{name}"],
            cwd=REPO,
            env={**os.environ},
            stdout=log,
            check=False,
        )
        took = time.monotonic() - started
        result = RESULTS / f"{name}.json"
        if proc.returncode != 0 or not result.exists():
            failures.append(name)
            print(f"  {name} failed (exit {proc.returncode})", file=log)
            continue
        rows.extend({"benchmark": name, **row} for row in _rows(result))
        print(f"  done in {took:.0f}s", file=log)
    summary = {
        "machine": f"{platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}",
        "rows": rows,
        "failed": failures,
    }
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "summary.json").write_text(json.dumps(summary, indent=2))
    if args.json:
        print(json.dumps(summary, indent=2))
        return 1 if failures else 0
    print()
    print(render_markdown(rows))
    print(f"\nmachine: {summary['machine']}; JSON: {RESULTS / 'summary.json'}")
    return 1 if failures else 0


def _rows(path: Path) -> list[dict[str, object]]:
    data = json.loads(path.read_text())
    rows: list[dict[str, object]] = data["rows"] if isinstance(data, dict) else data
    return rows


def _machine(path: Path) -> str:
    data = json.loads(path.read_text())
    return str(data.get("machine", "")) if isinstance(data, dict) else ""


def write_readme_table() -> int:
    """Put the latest results of every benchmark into the README's bench block."""
    from perpsignal_cli.docs import replace_block

    rows: list[dict[str, object]] = []
    machines = set()
    for name in discover():
        result = RESULTS / f"{name}.json"
        if not result.exists():
            continue
        rows.extend({"benchmark": name, **row} for row in _rows(result))
        machines.add(_machine(result))
    readme = REPO / "README.md"
    table = render_markdown(rows) + f"\n\nMachine: {'; '.join(sorted(m for m in machines if m))}."
    readme.write_text(replace_block(readme.read_text(), "bench", table))
    print(f"README benchmark table: {len(rows)} rows")
    return 0


def render_markdown(rows: list[dict[str, object]]) -> str:
    """Return the rows as a Markdown table (the README's benchmark table)."""
    lines = [
        "| benchmark | figure | value | baseline (same run) | ratio | goal | met |",
        "|---|---|---:|---|---:|---|---|",
    ]
    for r in rows:
        met = {True: "yes", False: "no", None: "-"}[r.get("passed")]  # type: ignore[index]
        lines.append(
            f"| {r['benchmark']} | {r['name']} | {float(r['value']):,.1f} {r['unit']} | "  # type: ignore[arg-type]
            f"{r['baseline_name']}: {float(r['baseline_value']):,.1f} | "  # type: ignore[arg-type]
            f"{float(r['ratio']):.2f} | {r['goal']} | {met} |"  # type: ignore[arg-type]
        )
    return "\n".join(lines)
