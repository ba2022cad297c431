"""report.html's price chart, from a real backtest of recorded XRPUSDT history.

The chart data embedded in the page is checked against the run's own signal records; a headless
Chromium (when installed) opens the page from disk and the chart draws without a page error.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from perpsignal_cli.backtest import run_symbol
from perpsignal_cli.backtesting import chart, html
from perpsignal_cli.backtesting.columns import read_signals
from perpsignal_cli.backtesting.pipeline import History, load_history
from tests.helpers import REPO

DATA = re.compile(r"<script type=application/json id=price-chart-data>(.*?)</script>", re.S)


@pytest.fixture(scope="module")
def run(
    xrp_small: Path, market: Path, tmp_path_factory: pytest.TempPathFactory
) -> tuple[dict[str, Any], History]:
    """The real single-symbol run (signals streamed to signals.jsonl), its rows put back into
    the report dict so each test can render the page into its own folder."""
    h = load_history(
        "XRPUSDT",
        xrp_small,
        funding=market / "XRP_USDT_USDT-8h-funding_rate.csv",
        timeframe="15m",
    )
    out = tmp_path_factory.mktemp("chart-run")
    _, data = run_symbol(h, out, horizons=["1h", "4h"], equity_horizon="1h")
    assert "signals" not in data  # the product streams them; the page read them from disk
    full = {**data, "signals": list(read_signals(out))}
    # the run's page read only the directional lines, at the offsets its writer noted: the
    # same chart as the one drawn from every record in memory
    assert sum(r["direction"] != "NEUTRAL" for r in full["signals"]) >= 5
    assert _embedded((out / "report.html").read_text()) == _embedded(
        html.render(full, candles=h.primary)
    )
    return full, h


def _embedded(page: str) -> dict[str, Any]:
    found = DATA.search(page)
    assert found is not None, "no chart data in the page"
    return json.loads(found.group(1).replace("<\\/", "</"))


def test_page_embeds_candles_markers_and_plans(
    run: tuple[dict[str, Any], History], tmp_path: Path
) -> None:
    data, h = run
    path = html.write_html(data, tmp_path, candles=h.primary)
    page = path.read_text()
    chart_data = _embedded(page)
    # candles: the scoring timeframe, every bar (far below the cap)
    assert chart_data["timeframe"] == "15m"
    assert len(chart_data["candles"]) == len(h.primary)
    assert chart_data["candles"][0][0] * 1000 == h.primary.open_ms[0]
    # one marker per directional signal, with its verdict and plan
    directional = [s for s in data["signals"] if s["direction"] in ("LONG", "SHORT")]
    assert directional, "the run produced no directional signal to draw"
    markers = chart_data["markers"]
    assert len(markers) == len(directional) == chart_data["directional_signals"]
    times = {c[0] for c in chart_data["candles"]}
    for m, s in zip(markers, directional, strict=True):
        assert (m["dir"], m["verdict"], m["sl"], m["tp"]) == (
            s["direction"],
            s["verdict"],
            s["stop_loss_price"],
            s["take_profit_price"],
        )
        assert m["time"] in times  # on a drawn bar
        # the bar that closed when the signal was emitted
        closed = datetime.fromisoformat(s["observed_at"]).timestamp()
        assert m["time"] + 15 * 60 == closed
    assert any(m["sl"] is not None and m["tp"] is not None for m in markers)
    assert f"{len(markers)} of {len(directional)} directional signals marked" in page
    # the panels that were there stay
    assert "Does it carry information?" in page and "Calibration by score bucket" in page
    # offline: the library is inlined, nothing is fetched
    assert "createChart" in page and "<script src" not in page and "https://cdn" not in page


def test_signals_are_streamed_from_signals_jsonl(
    run: tuple[dict[str, Any], History], tmp_path: Path
) -> None:
    data, h = run
    rows = data["signals"]
    (tmp_path / "signals.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    slim = {k: v for k, v in data.items() if k != "signals"}
    chart_data = _embedded(html.write_html(slim, tmp_path, candles=h.primary).read_text())
    assert len(chart_data["markers"]) == sum(r["direction"] != "NEUTRAL" for r in rows)
    # only lines that may be directional are parsed: the page is the one drawn from every
    # record in memory (json.dumps spaces its lines unlike the product's own writer)
    assert chart_data == _embedded(html.render(data, candles=h.primary))


@dataclass
class _Series:
    timeframe: str
    open_ms: list[int] = field(default_factory=list)
    open: list[float] = field(default_factory=list)
    high: list[float] = field(default_factory=list)
    low: list[float] = field(default_factory=list)
    close: list[float] = field(default_factory=list)

    @property
    def step_ms(self) -> int:
        return 60_000


def test_big_runs_are_downsampled_and_markers_capped(market: Path) -> None:
    # 45,000 real 1m bars of the FTX BTC-PERP export
    lines = (market / "ftx-btc-perp-20211231-20220201_1m.csv").read_text().splitlines()
    header = lines[0].split(",")
    cols = {name: header.index(name) for name in ("open_time", "open", "high", "low", "close")}
    s = _Series("1m")
    for line in lines[1:45_001]:
        v = line.split(",")
        s.open_ms.append(int(float(v[cols["open_time"]])))
        for name in ("open", "high", "low", "close"):
            getattr(s, name).append(float(v[cols[name]]))
    # a signal every 5 minutes, verdicts cycling: 9,000 directional records
    verdicts = ["SKIP", "WAIT", "DOWNSIZE", "SKIP", "CONFIRM", "SKIP"]
    sigs = [
        {
            "observed_at": datetime.fromtimestamp((t + 60_000) / 1000, UTC).isoformat(),
            "direction": "LONG" if k % 2 else "SHORT",
            "verdict": verdicts[k % len(verdicts)],
            "price": s.close[i],
            "stop_loss_price": s.close[i] * 0.99,
            "take_profit_price": s.close[i] * 1.02,
        }
        for k, (i, t) in enumerate((i, t) for i, t in enumerate(s.open_ms) if i % 5 == 0)
    ]
    data = chart.chart_data(s, iter(sigs), horizons=["4h"], max_candles=3000, max_markers=2000)
    assert len(data["candles"]) <= 3000 and data["bars_per_candle"] == 15
    assert max(c[2] for c in data["candles"]) == max(s.high)
    assert min(c[3] for c in data["candles"]) == min(s.low)
    shown = data["markers"]
    assert len(shown) == 2000
    confirm = sum(x["verdict"] == "CONFIRM" for x in sigs)
    downsize = sum(x["verdict"] == "DOWNSIZE" for x in sigs)
    assert sum(m["verdict"] == "CONFIRM" for m in shown) == confirm  # all kept
    assert sum(m["verdict"] == "DOWNSIZE" for m in shown) == min(downsize, 2000 - confirm)
    assert [m["time"] for m in shown] == sorted(m["time"] for m in shown)


def test_the_vendored_library_is_the_dashboards() -> None:
    ours = Path(chart.__file__).parent / "vendor" / "lightweight-charts" / chart.LIBRARY
    theirs = (
        REPO
        / "services/gateway/src/perpsignal_gateway/static/vendor/lightweight-charts"
        / chart.LIBRARY
    )
    assert ours.read_bytes() == theirs.read_bytes()
    assert "@license" in chart.library_source()[:300]


@pytest.mark.browser
async def test_chart_renders_in_chromium_from_disk(
    run: tuple[dict[str, Any], History], tmp_path: Path
) -> None:
    from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS

    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed")
    pw_api = pytest.importorskip("playwright.async_api")
    data, h = run
    path = html.write_html(data, tmp_path, candles=h.primary)
    directional = sum(s["direction"] != "NEUTRAL" for s in data["signals"])
    async with pw_api.async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            page = await browser.new_page(viewport={"width": 1200, "height": 900})
            errors: list[str] = []
            page.on("pageerror", lambda exc: errors.append(str(exc)))
            page.on("console", lambda msg: errors.append(msg.text) if msg.type == "error" else None)
            page.on(
                "request",
                lambda req: (
                    errors.append(f"fetched {req.url}")
                    if not req.url.startswith(("file:", "data:", "blob:"))
                    else None
                ),
            )
            await page.goto(path.as_uri())
            await page.wait_for_function("window.priceChart !== undefined", timeout=10_000)
            got = await page.evaluate(
                "({m: priceChart.markers, c: priceChart.candles, plan: priceChart.state.planLines,"
                " canvases: document.querySelectorAll('#price-chart canvas').length})"
            )
            assert got["m"] == directional and got["c"] == len(h.primary)
            assert got["plan"] >= 2  # the latest signal's stop and target at least
            assert got["canvases"] > 0
            legend = await page.text_content("#price-chart-legend")
            assert legend is not None and "stop" in legend and "target" in legend
            shots = REPO / "test-artifacts" / "screenshots"
            shots.mkdir(parents=True, exist_ok=True)
            await page.locator("#price-chart-panel").screenshot(
                path=str(shots / "report-chart.png")
            )
            assert errors == []
        finally:
            await browser.close()
