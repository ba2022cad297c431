"""report.html's interactive price chart: candles, the signals as markers, each one's trade plan.

Drawn by TradingView Lightweight Charts (the library the dashboard ships), inlined into the page
so report.html stays one file that works offline and from `file://` (a browser refuses to load
an ES module file next to a page opened from disk, so the module text is embedded).

What is drawn, and the limits that keep a 45,000-bar run usable:
* Candles: the series given (the backtest passes the scoring timeframe, e.g. 3,000 15m bars for
  a month of 1m input). Above `MAX_CANDLES` consecutive bars are merged (first open, highest
  high, lowest low, last close) into at most that many; the page says so.
* Markers: one per directional (LONG/SHORT) signal, on the bar that closed when it was emitted:
  an up arrow below the bar for LONG, a down arrow above it for SHORT, labelled with the verdict
  (SKIP and WAIT faint, as S / W: they are most of the markers and would crowd the chart).
  Above `MAX_MARKERS` the page keeps CONFIRM, then DOWNSIZE, then WAIT, then SKIP signals, the
  last kind admitted thinned evenly over time; it says how many of how many are shown.
  NEUTRAL signals (no position) get no marker.
* Trade plan: hovering a bar selects the latest signal at or before it (a click pins it); its
  stop loss and take profit are drawn as segments from the entry over the longest horizon, with
  the entry price, verdict, score, plan summary and measured outcomes in the legend.

Signals are read once from any iterable of report signal records (report.json's `signals`, or
the streamed signals.jsonl), keeping only the few fields drawn per directional signal.
"""

from __future__ import annotations

import html
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from functools import cache
from importlib import resources
from typing import Any, Protocol

MAX_CANDLES = 5000
MAX_MARKERS = 2000
VERDICT_PRIORITY = ("CONFIRM", "DOWNSIZE", "WAIT", "SKIP")
LIBRARY = "lightweight-charts.standalone.production.mjs"
LIBRARY_VERSION = "5.2.1"


class Candles(Protocol):
    """Closed candles as parallel columns, oldest first (the backtest's `CandleSeries`)."""

    # read-only members: a series holding lists (or any sequences) fits
    @property
    def timeframe(self) -> str: ...
    @property
    def open_ms(self) -> Sequence[int]: ...
    @property
    def open(self) -> Sequence[float]: ...
    @property
    def high(self) -> Sequence[float]: ...
    @property
    def low(self) -> Sequence[float]: ...
    @property
    def close(self) -> Sequence[float]: ...
    @property
    def step_ms(self) -> int:
        """The bar length in milliseconds."""
        ...


def display_candles(candles: Candles, cap: int = MAX_CANDLES) -> tuple[list[list[float]], int]:
    """Return `[time_s, open, high, low, close]` rows (at most `cap`) and bars per row."""
    n = len(candles.open_ms)
    per = max(1, math.ceil(n / cap)) if n else 1
    rows: list[list[float]] = []
    for i in range(0, n, per):
        j = min(n, i + per)
        rows.append(
            [
                candles.open_ms[i] // 1000,
                candles.open[i],
                max(candles.high[i:j]),
                min(candles.low[i:j]),
                candles.close[j - 1],
            ]
        )
    return rows, per


def _ms(iso: str) -> int:
    return round(datetime.fromisoformat(iso).timestamp() * 1000)


def _marker(rec: Mapping[str, Any]) -> dict[str, Any] | None:
    """The fields drawn for one signal record (None for a NEUTRAL one)."""
    direction = rec.get("direction")
    if direction not in ("LONG", "SHORT"):
        return None
    outcomes = {
        h: {"pnl": o.get("pnl_pct"), "net": o.get("net_pnl_pct"), "result": o.get("result")}
        for h, o in (rec.get("outcomes") or {}).items()
        if o
    }
    return {
        "ms": _ms(str(rec["observed_at"])),
        "at": rec["observed_at"],
        "dir": direction,
        "verdict": rec.get("verdict"),
        "score": rec.get("score"),
        "entry": rec.get("price"),
        "sl": rec.get("stop_loss_price"),
        "tp": rec.get("take_profit_price"),
        "rr": rec.get("risk_reward"),
        "plan": rec.get("trade_plan_summary"),
        "outcomes": outcomes,
    }


def _thin(items: list[dict[str, Any]], keep: int) -> list[dict[str, Any]]:
    """Return `keep` of `items` (time-ordered) evenly spaced over time."""
    if keep >= len(items):
        return items
    if keep <= 0:
        return []
    step = len(items) / keep
    return [items[int(k * step)] for k in range(keep)]


def select_markers(markers: list[dict[str, Any]], cap: int = MAX_MARKERS) -> list[dict[str, Any]]:
    """Return at most `cap` markers by verdict priority (see the module doc), in time order."""
    if len(markers) <= cap:
        return sorted(markers, key=lambda m: m["ms"])
    kept: list[dict[str, Any]] = []
    verdicts = list(VERDICT_PRIORITY) + sorted(
        {str(m["verdict"]) for m in markers} - set(VERDICT_PRIORITY)
    )
    for verdict in verdicts:
        group = sorted((m for m in markers if m["verdict"] == verdict), key=lambda m: m["ms"])
        kept.extend(_thin(group, cap - len(kept)))
    return sorted(kept, key=lambda m: m["ms"])


def chart_data(
    candles: Candles,
    signals: Iterable[Mapping[str, Any]],
    *,
    horizons: Sequence[str] = (),
    max_candles: int = MAX_CANDLES,
    max_markers: int = MAX_MARKERS,
) -> dict[str, Any]:
    """Return the JSON the page's chart script draws (deterministic for equal inputs)."""
    rows, per = display_candles(candles, max_candles)
    step_s = candles.step_ms // 1000 * per
    found = [m for m in map(_marker, signals) if m is not None]
    first = rows[0][0] if rows else 0
    last_close = rows[-1][0] + step_s if rows else 0
    # a signal is emitted at a bar's close: its marker sits on that bar (the display row
    # holding the instant just before the signal)
    inside = [m for m in found if rows and first < m["ms"] / 1000 <= last_close]
    shown = select_markers(inside, max_markers)
    for m in shown:
        k = min(len(rows) - 1, max(0, int((m.pop("ms") / 1000 - 1e-3 - first) // step_s)))
        m["time"] = rows[k][0]
    low = min((r[3] for r in rows if r[3] > 0), default=1.0)
    return {
        "timeframe": candles.timeframe,
        # decimals enough for 4 significant digits of the lowest price (2 at least)
        "precision": max(2, min(8, 3 - math.floor(math.log10(low)))),
        "bars_per_candle": per,
        "candle_seconds": step_s,
        "candles": rows,
        "horizons": list(horizons),
        "directional_signals": len(found),
        "outside_candles": len(found) - len(inside),
        "markers": shown,
    }


@cache
def library_source() -> str:
    """Return the vendored library as a module body that binds `LightweightCharts` locally.

    The file ends in one `export{local as Name, ...}` clause; in a page's inline module that
    clause is rewritten into a plain object so the chart script beside it can use the names.
    """
    text = (
        resources.files("perpsignal_cli.backtesting")
        .joinpath("vendor", "lightweight-charts", LIBRARY)
        .read_text(encoding="utf-8")
    )
    found = re.search(r"export\{([^}]*)\};?\s*$", text)
    if found is None:
        raise RuntimeError(f"{LIBRARY}: no trailing export clause to bind")
    pairs = []
    for part in found.group(1).split(","):
        local, _, name = (s.strip() for s in part.partition(" as "))
        pairs.append(f"{name or local}:{local}")
    body = text[: found.start()] + "const LightweightCharts={" + ",".join(pairs) + "};\n"
    if "</script" in body.lower() or "<!--" in body:
        raise RuntimeError(f"{LIBRARY}: cannot be inlined into a <script> element")
    return body


def _script_json(data: Any) -> str:
    """JSON safe inside a <script> element (no `</` can close it)."""
    return json.dumps(data, separators=(",", ":"), allow_nan=False).replace("</", "<\\/")


@cache
def chart_script() -> str:
    """Return the page's chart code (plain ES, no build step; `report_chart.js`)."""
    return (
        resources.files("perpsignal_cli.backtesting")
        .joinpath("report_chart.js")
        .read_text(encoding="utf-8")
    )


def section(
    candles: Candles | None,
    signals: Iterable[Mapping[str, Any]],
    *,
    horizons: Sequence[str] = (),
    max_candles: int = MAX_CANDLES,
    max_markers: int = MAX_MARKERS,
) -> str:
    """Return the chart panel: data, inlined library and script (or why there is no chart)."""
    head = "<section class=panel id=price-chart-panel><h2>Price, signals and trade plans</h2>"
    if candles is None or not len(candles.open_ms):
        return (
            head + "<p><em>No candles were given to the report writer: no price chart.</em></p>"
            "</section>"
        )
    data = chart_data(
        candles, signals, horizons=horizons, max_candles=max_candles, max_markers=max_markers
    )
    n_markers = len(data["markers"])
    inside = data["directional_signals"] - data["outside_candles"]
    notes = [
        f"{len(data['candles'])} candles of {data['candle_seconds'] // 60} min"
        + (
            f" (each merges {data['bars_per_candle']} {html.escape(data['timeframe'])} bars: "
            f"more than {max_candles} would make the page slow)"
            if data["bars_per_candle"] > 1
            else f" ({html.escape(data['timeframe'])}, the scoring timeframe)"
        ),
        f"{n_markers} of {data['directional_signals']} directional signals marked"
        + (
            f" (capped at {max_markers}: CONFIRM first, then DOWNSIZE, WAIT, SKIP, thinned"
            " evenly over time)"
            if n_markers < inside
            else ""
        )
        + (
            f"; {data['outside_candles']} fall outside the candles"
            if data["outside_candles"]
            else ""
        ),
        "Up arrow: LONG, down arrow: SHORT, labelled with the verdict (CONFIRM, DOWNSIZE; "
        "faint W = WAIT, S = SKIP). "
        "Red dashed: stop loss; green dashed: take profit; grey: entry, over the longest horizon.",
    ]
    return (
        head
        + "<p class=note>"
        + " · ".join(notes)
        + "</p><div id=price-chart style='width:100%;height:460px'></div>"
        + "<p id=price-chart-legend class=note></p>"
        + f"<script type=application/json id=price-chart-data>{_script_json(data)}</script>"
        + "<script type=module>\n"
        + library_source()
        + chart_script()
        + "</script>"
        + "<p class=note>Chart: TradingView Lightweight Charts "
        + LIBRARY_VERSION
        + " (Apache-2.0, https://www.tradingview.com/lightweight-charts/), inlined.</p>"
        + "</section>"
    )
