"""Shared shape of benchmark results: one row per figure, judged against a same-run baseline.

Two kinds of rows, kept apart in every table:

* same-run comparisons: the figure next to a baseline measured in the same run on the same
  machine (a raw client loop, a peer library, a simpler code path), judged on their ratio.
  Load from neighbours on a shared machine moves both alike, so the ratio is what a reader
  can compare across machines;
* absolute figures (context only): a figure judged against a fixed bound (a vendor's rate
  budget, a latency ceiling, a throughput floor). Such figures depend on the machine, so
  they are only ever printed with the machine named, never as the headline.

A row with `limit` set, or without a measured baseline, is an absolute row.
"""

from __future__ import annotations

import json
import math
import os
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Row:
    """One measured figure and what it is judged against.

    `baseline_value` must be measured in the same run (empty `baseline_name` = none);
    `goal_ratio` judges the ratio value/baseline (>= or <= by `higher_is_better`), `limit`
    judges the value itself against a fixed bound (which makes it an absolute row).
    """

    name: str
    value: float
    unit: str
    baseline_name: str
    baseline_value: float
    goal: str
    higher_is_better: bool = True
    goal_ratio: float | None = None
    limit: float | None = None
    # a further condition of the goal that a number cannot carry (e.g. "order kept")
    extra_ok: bool = True

    @classmethod
    def absolute(
        cls,
        name: str,
        value: float,
        unit: str,
        goal: str,
        *,
        limit: float | None = None,
        higher_is_better: bool = True,
        baseline_name: str = "",
        baseline_value: float = math.nan,
    ) -> Row:
        """A figure judged against a fixed bound (context only, shown with the machine)."""
        return cls(
            name,
            value,
            unit,
            baseline_name,
            baseline_value,
            goal,
            higher_is_better=higher_is_better,
            limit=limit,
        )

    @property
    def kind(self) -> str:
        """ "same-run" (judged on the ratio to a baseline of this run) or "absolute"."""
        if self.limit is not None or not self.baseline_name:
            return "absolute"
        return "same-run"

    @property
    def ratio(self) -> float:
        if not self.baseline_name or not self.baseline_value or math.isnan(self.baseline_value):
            return math.nan
        return self.value / self.baseline_value

    @property
    def passed(self) -> bool | None:
        """Whether the goal is met; None when the row has no goal (information only)."""
        checks: list[bool] = []
        if self.goal_ratio is not None:
            r = self.ratio
            checks.append(
                not math.isnan(r)
                and (r >= self.goal_ratio if self.higher_is_better else r <= self.goal_ratio)
            )
        if self.limit is not None:
            checks.append(
                self.value >= self.limit if self.higher_is_better else self.value <= self.limit
            )
        if not checks:
            return None
        return all(checks) and self.extra_ok

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        ratio = self.ratio
        d["ratio"] = None if math.isnan(ratio) else round(ratio, 4)
        if isinstance(d["baseline_value"], float) and math.isnan(d["baseline_value"]):
            d["baseline_value"] = None  # JSON has no NaN
        d["kind"] = self.kind
        d["passed"] = self.passed
        return d


def machine() -> str:
    """Name the machine: CPU model, cores, Python (absolute figures are printed with it)."""
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def _fmt(x: float | None) -> str:
    return "-" if x is None or math.isnan(x) else f"{x:,.2f}" if abs(x) < 10 else f"{x:,.1f}"


def report(name: str, rows: list[Row]) -> list[dict[str, object]]:
    """Print a table and write bench/results/<name>.json; return the rows as dicts."""
    out = [r.as_dict() for r in rows]
    w = max(len(r.name) for r in rows)
    print(f"\n{name} — {machine()}")
    print(f"{'figure':<{w}}  {'value':>12}  {'unit':<10} {'baseline':>12}  ratio   goal")
    for r in rows:
        mark = {True: "met", False: "NOT MET", None: ""}[r.passed]
        kind = "" if r.kind == "same-run" else " [absolute]"
        print(
            f"{r.name:<{w}}  {_fmt(r.value):>12}  {r.unit:<10} {_fmt(r.baseline_value):>12}"
            f"  {_fmt(r.ratio):>5}   {r.goal} {mark}{kind}"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps({"machine": machine(), "rows": out}, indent=2))
    return out
