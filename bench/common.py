"""Shared shape of benchmark results: one row per figure, each next to its same-run baseline."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict, dataclass
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"


@dataclass
class Row:
    """One measured figure and the baseline it is compared with (measured in the same run)."""

    name: str
    value: float
    unit: str
    baseline_name: str
    baseline_value: float
    goal: str
    higher_is_better: bool = True
    goal_ratio: float | None = None  # pass when ratio meets this (>= or <=, by direction)

    @property
    def ratio(self) -> float:
        return self.value / self.baseline_value if self.baseline_value else float("nan")

    @property
    def passed(self) -> bool | None:
        if self.goal_ratio is None:
            return None
        return (
            self.ratio >= self.goal_ratio
            if self.higher_is_better
            else self.ratio <= self.goal_ratio
        )

    def as_dict(self) -> dict[str, object]:
        d = asdict(self)
        d["ratio"] = round(self.ratio, 4)
        d["passed"] = self.passed
        return d


def machine() -> str:
    import os

    cpu = platform.processor() or platform.machine()
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}"


def report(name: str, rows: list[Row]) -> list[dict[str, object]]:
    """Print a table and write bench/results/<name>.json; return the rows as dicts."""
    out = [r.as_dict() for r in rows]
    w = max(len(r.name) for r in rows)
    print(f"\n{name} — {machine()}")
    print(f"{'figure':<{w}}  {'value':>12}  {'unit':<10} {'baseline':>12}  ratio   goal")
    for r in rows:
        mark = {True: "ok", False: "MISS", None: ""}[r.passed]
        print(
            f"{r.name:<{w}}  {r.value:>12,.1f}  {r.unit:<10} {r.baseline_value:>12,.1f}"
            f"  {r.ratio:5.2f}   {r.goal} {mark}"
        )
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / f"{name}.json").write_text(json.dumps({"machine": machine(), "rows": out}, indent=2))
    return out
