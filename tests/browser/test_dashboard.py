"""The dashboard in a real headless Chromium against the gateway process on the embedded broker.

The test plays the judge (and scorer/ingestor): it publishes judged signals built from the
recorded XRPUSDT candles in ../shared/data, liquidations, MSS results and listings, and seeds
outcome rows in PostgreSQL; then it checks what a user sees.
"""

from __future__ import annotations

import csv
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import text

from perpsignal_common.db.engine import create_engine, create_sessionmaker, session_scope
from perpsignal_common.events.market import LiquidationOrderV1, ListingDetectedV1
from perpsignal_common.events.signals import (
    FACTOR_NAMES,
    FactorScore,
    LayerChecks,
    MssScoredV1,
    Ohlc,
    PhaseScore,
    SignalJudgedV1,
    SmcSummary,
    VerdictLayer,
    VolatilityMetrics,
)
from perpsignal_common.settings import DatabaseSettings
from tests.browser.conftest import API_KEY, CHROMIUM, enter_key, screenshot
from tests.helpers import eventually

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not CHROMIUM.exists(), reason="Debian's chromium is not installed"),
    pytest.mark.kafka,
    pytest.mark.db,
    pytest.mark.asyncio(loop_scope="module"),
]
DASH = "\N{EN DASH}"

XRP_1H = Path("market") / "XRP_USDT_USDT-1h-futures.csv"


def now() -> datetime:
    return datetime.now(UTC)


def judged(
    symbol: str,
    *,
    score: float,
    direction: str = "LONG",
    verdict: str = "CONFIRM",
    price: float = 100.0,
    stop: float | str | None = "auto",
    target: float | str | None = "auto",
    candles: tuple[Ohlc, ...] = (),
    factors: tuple[FactorScore, ...] = (),
    checks: LayerChecks | None = None,
    smc: SmcSummary | None = None,
    at: datetime | None = None,
) -> SignalJudgedV1:
    sid = uuid.uuid4().hex
    # levels on the correct side of the entry unless a test gives them (NEUTRAL: no plan)
    side = {"LONG": 1, "SHORT": -1}.get(direction, 0)
    if stop == "auto":
        stop = round(price * (1 - 0.03 * side), 6) if side else None
    if target == "auto":
        target = round(price * (1 + 0.06 * side), 6) if side else None
    return SignalJudgedV1(
        event_id=f"ev-{sid}",
        source="judge",
        symbol=symbol,
        observed_at=at or now(),
        signal_id=sid,
        timeframe="1h",
        direction=direction,  # type: ignore[arg-type]
        score=score,
        confidence=61.0,
        price=price,
        factors=factors,
        candles=candles,
        smc=smc,
        ai_verdict_layer=VerdictLayer(
            verdict=verdict,  # type: ignore[arg-type]
            risk_mode="NORMAL" if verdict == "CONFIRM" else "REDUCED",
            position_multiplier=1.0 if verdict == "CONFIRM" else 0.5,
            ai_summary=f"{symbol} judged {verdict}",
            layer_checks=checks or LayerChecks(),
            volatility_metrics=VolatilityMetrics(
                stop_loss_price=stop,  # type: ignore[arg-type]
                take_profit_price=target,  # type: ignore[arg-type]
            ),
        ),
    )


def recorded_candles(shared_data: Path) -> tuple[Ohlc, ...]:
    with (shared_data / XRP_1H).open() as fh:
        rows = list(csv.DictReader(fh))
    return tuple(
        Ohlc(
            open_time=datetime.fromtimestamp(int(r["open_time"]) / 1000, UTC),
            open=float(r["open"]),
            high=float(r["high"]),
            low=float(r["low"]),
            close=float(r["close"]),
            volume=float(r["volume"]),
        )
        for r in rows[-60:]
    )


def eight_factors() -> tuple[FactorScore, ...]:
    scores = [80, 35, 64, 50, 71, 58, 50, 22]
    return tuple(
        FactorScore(
            name=name,  # type: ignore[arg-type]
            score=s,
            weight=12.5,
            contribution=12.5 / 100 * (s - 50),
            status="missing" if name == "social" else "ok",
            inputs={} if name == "social" else {f"{name}_input": s / 10},
            reason="no LunarCrush key" if name == "social" else None,
        )
        for name, s in zip(FACTOR_NAMES, scores, strict=True)
    )


async def row_texts(page: Any) -> dict[str, list[str]]:
    """Visible rows of the live table: symbol -> cell texts."""
    return await page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('#live-table tbody tr')]
              .filter((tr) => !tr.hidden && tr.dataset.symbol)
              .map((tr) => [tr.dataset.symbol, [...tr.children].map((c) => c.innerText.trim())]))"""
    )


async def wait_rows(page: Any, expected: set[str], what: str) -> dict[str, list[str]]:
    """Wait until the visible rows are exactly `expected`."""

    async def check() -> dict[str, list[str]] | None:
        rows = await row_texts(page)
        return rows if set(rows) == expected else None

    return await eventually(check, timeout=15, interval=0.1, what=what)


# live table ------------------------------------------------------------------------------------


async def api_signals(gateway) -> list[dict[str, Any]]:
    async with gateway.client() as api:
        return (await api.get("/signals", params={"limit": 500})).json()["signals"]


async def test_live_table_fills_updates_filters_and_keeps_the_key(page, gateway, producer) -> None:
    for sig in (
        judged("BTCUSDT", score=72.0, price=43000.0, stop=42250.0, target=44500.0),
        judged("ETHUSDT", score=35.0, direction="SHORT", verdict="DOWNSIZE", price=2300.0),
        judged("DOGEUSDT", score=55.0, direction="NEUTRAL", verdict="WAIT", stop=None, target=None),
    ):
        await producer.publish(sig, wait=True)
    mine = {"BTCUSDT", "ETHUSDT", "DOGEUSDT"}

    async def api_has_mine() -> list[dict[str, Any]] | None:
        listed = await api_signals(gateway)
        return listed if mine <= {x["symbol"] for x in listed} else None

    await eventually(api_has_mine, timeout=15, what="signals in the gateway's read model")

    await page.goto(gateway.url + "/")
    await enter_key(page)  # the gateway requires a key: the page asks for it once
    await page.locator("#conn[data-state='live']").wait_for()
    # the table holds exactly what the API lists (other tests of this module may add symbols)
    expected = {x["symbol"] for x in await api_signals(gateway)}
    rows = await wait_rows(page, expected, "the table filled from the API")
    btc = rows["BTCUSDT"]
    assert btc[1] == "LONG" and btc[2] == "72.0" and btc[4] == "CONFIRM"
    assert btc[7] == "43,000.00" and btc[8] == "42,250.00" and btc[9] == "44,500.00"
    assert rows["DOGEUSDT"][8] == "—"  # a NEUTRAL signal has no plan: nothing invented
    order = await page.eval_on_selector_all(
        "#live-table tbody tr", "trs => trs.map(t => t.dataset.symbol)"
    )
    assert [o for o in order if o in mine] == ["BTCUSDT", "DOGEUSDT", "ETHUSDT"]  # by score

    # a new judged signal appears and an existing row updates in place, both highlighted
    await producer.publish(judged("SOLUSDT", score=88.0, price=150.0), wait=True)
    await producer.publish(
        judged("ETHUSDT", score=41.0, direction="SHORT", verdict="SKIP"), wait=True
    )

    async def updated() -> dict[str, list[str]] | None:
        rows = await row_texts(page)
        ok = "SOLUSDT" in rows and rows.get("ETHUSDT", ["", "", ""])[2] == "41.0"
        return rows if ok else None

    rows = await eventually(updated, timeout=15, interval=0.1, what="live update of the table")
    assert rows["ETHUSDT"][4] == "SKIP"
    fresh = await page.eval_on_selector_all(
        "#live-table tbody tr.is-new", "trs => trs.map(t => t.dataset.symbol).sort()"
    )
    assert fresh == ["ETHUSDT", "SOLUSDT"]
    assert "New signal" in await page.inner_text("#live-announcer")
    await screenshot(page, "live-signals")

    # filters, checked against the API's own filtering of the same signals
    listed = await api_signals(gateway)

    def where(pred: Any) -> set[str]:
        return {x["symbol"] for x in listed if pred(x)}

    await page.select_option("#f-direction", "SHORT")
    assert set(await row_texts(page)) == where(lambda x: x["signal"] == "SHORT") >= {"ETHUSDT"}
    await page.select_option("#f-direction", "")
    await page.select_option("#f-verdict", "CONFIRM")
    confirmed = where(lambda x: x["aiVerdictLayer"]["verdict"] == "CONFIRM")
    assert set(await row_texts(page)) == confirmed >= {"BTCUSDT", "SOLUSDT"}
    await page.fill("#f-min-score", "80")
    high = where(lambda x: x["aiVerdictLayer"]["verdict"] == "CONFIRM" and x["score"] >= 80)
    assert set(await row_texts(page)) == high >= {"SOLUSDT"}
    assert "BTCUSDT" not in high
    await page.select_option("#f-verdict", "")
    await page.fill("#f-min-score", "")
    await page.fill("#f-search", "do")
    assert set(await row_texts(page)) == where(lambda x: "DO" in x["symbol"]) >= {"DOGEUSDT"}
    assert f"of {len(listed)} symbols" in await page.inner_text("#live-status")

    # the key was kept: a reload fills the table without asking again
    await page.reload()
    await wait_rows(page, {x["symbol"] for x in listed}, "table after reload")
    assert await page.locator("#key-panel").is_hidden()

    # readable on a phone: no horizontal page scroll, the table scrolls inside its own box
    await page.set_viewport_size({"width": 390, "height": 844})
    overflow = await page.evaluate(
        "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 1
    await screenshot(page, "live-signals-phone")
    assert page.errors == []


# symbol detail ---------------------------------------------------------------------------------

PIXELS = """(colors) => {
  const out = {};
  const canvases = [...document.querySelectorAll('#price-chart canvas')];
  for (const [name, hex] of Object.entries(colors)) {
    const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16));
    let n = 0, ySum = 0;
    for (const c of canvases) {
      if (!c.width || !c.height) continue;
      const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
      for (let i = 0; i < d.length; i += 4) {
        if (Math.abs(d[i] - r) < 8 && Math.abs(d[i + 1] - g) < 8 && Math.abs(d[i + 2] - b) < 8
            && d[i + 3] > 200 && c.width > 200) {
          n++; ySum += Math.floor(i / 4 / c.width);
        }
      }
    }
    out[name] = { n, y: n ? ySum / n : null };
  }
  return out;
}"""


async def test_symbol_page_draws_candles_with_stop_and_target(
    page, gateway, producer, shared_data
) -> None:
    candles = recorded_candles(shared_data)
    last = candles[-1].close
    ranges = [c.high - c.low for c in candles[-14:]]
    atr = sum(ranges) / len(ranges)
    stop, target = round(last - 1.5 * atr, 5), round(last + 3 * atr, 5)
    swing_high = max(c.high for c in candles[-20:])
    sig = judged(
        "XRPUSDT",
        score=74.0,
        price=last,
        stop=stop,
        target=target,
        candles=candles,
        factors=eight_factors(),
        checks=LayerChecks(
            agreements=("funding and momentum agree",), conflicts=("fear & greed is extreme",)
        ),
        smc=SmcSummary(
            bias="BULLISH",
            by_timeframe={"1h": "BULLISH"},
            last_event="BOS up @ 1h",
            details={"1h.swing_high": swing_high, "1h.bos": candles[-5].high},
        ),
    )
    await producer.publish(sig, wait=True)
    t = now()
    for n, (side, usd) in enumerate([("LONG", 12_000.0), ("SHORT", 3_000.0)]):
        await producer.publish(
            LiquidationOrderV1(
                event_id=uuid.uuid4().hex,
                source="binance",
                symbol="XRPUSDT",
                observed_at=t - timedelta(seconds=60 - n),
                liquidated_side=side,  # type: ignore[arg-type]
                price=last,
                quantity=usd / last,
                notional_usd=usd,
            ),
            wait=True,
        )

    await page.add_init_script(f"localStorage.setItem('perpsignal.apiKey', '{API_KEY}')")
    await page.goto(gateway.url + "/#/symbol/XRPUSDT")
    chart = page.locator("#price-chart[data-drawn]")
    await chart.wait_for()
    assert await chart.get_attribute("data-drawn") == str(len(candles))

    legend = await page.eval_on_selector_all(
        "#chart-legend li", "lis => lis.map(l => [l.dataset.line, Number(l.dataset.price)])"
    )
    by_line = dict(legend)
    assert by_line["stop"] == pytest.approx(stop)
    assert by_line["target"] == pytest.approx(target)
    assert by_line["entry"] == pytest.approx(last)
    assert by_line["smc-swing_high"] == pytest.approx(swing_high)

    # the lines are really painted: their colours are on the canvas, target above entry above stop
    async def painted() -> dict[str, Any] | None:
        px = await page.evaluate(
            PIXELS, {"stop": "#ff2d55", "target": "#00c853", "entry": "#2f80ed"}
        )
        return px if all(v["n"] > 50 for v in px.values()) else None

    px = await eventually(painted, timeout=10, interval=0.2, what="stop/target lines painted")
    assert px["target"]["y"] < px["entry"]["y"] < px["stop"]["y"]

    # factor bars with their raw inputs, and the judge's summary with agreements and conflicts
    factors = page.locator(".factors > li")
    assert await factors.count() == 8
    momentum = page.locator(".factors > li[data-factor='momentum']")
    assert await momentum.locator("[role='meter']").get_attribute("aria-valuenow") == "64"
    assert "6.4" in await momentum.locator("dl.inputs").inner_text()
    assert "missing" in await page.locator(".factors > li[data-factor='social']").inner_text()
    assert await page.inner_text("ul.agreements") == "funding and momentum agree"
    assert await page.inner_text("ul.conflicts") == "fear & greed is extreme"

    # liquidations: the recorded ones, then a live one on top
    await page.locator("#liq-table tbody tr").nth(1).wait_for()
    await producer.publish(
        LiquidationOrderV1(
            event_id=uuid.uuid4().hex,
            source="binance",
            symbol="XRPUSDT",
            observed_at=now(),
            liquidated_side="SHORT",
            price=last,
            quantity=777_777 / last,
            notional_usd=777_777.0,
        ),
        wait=True,
    )

    async def live_liq() -> bool:
        rows = page.locator("#liq-table tbody tr")
        return await rows.count() == 3 and "$777,777" in await rows.first.inner_text()

    await eventually(live_liq, timeout=15, interval=0.1, what="live liquidation row")
    await screenshot(page, "symbol-detail")
    await page.set_viewport_size({"width": 390, "height": 844})
    await screenshot(page, "symbol-detail-phone")
    assert page.errors == []


# accuracy --------------------------------------------------------------------------------------

# (verdict, horizon, score, result, pnl): CONFIRM 4h wins 3 of 4 (75 %), SKIP 4h 0 of 2,
# DOWNSIZE 1h 10 of 19: 25 rows in all, so the history has two pages of 20
SEEDED = (
    [("CONFIRM", "4h", 85, "WIN", 1.5)] * 2
    + [("CONFIRM", "4h", 75, "WIN", 0.5), ("CONFIRM", "4h", 75, "LOSS", -1.0)]
    + [("SKIP", "4h", 55, "LOSS", -0.8)] * 2
    + [("DOWNSIZE", "1h", 65, "WIN", 0.4)] * 10
    + [("DOWNSIZE", "1h", 65, "LOSS", -0.3)] * 9
)


async def seed_outcomes(database_url: str) -> None:
    from perpsignal_outcomes import repository as repo

    engine = create_engine(DatabaseSettings(database_url=SecretStr(database_url)))
    sessions = create_sessionmaker(engine)
    base = datetime(2021, 11, 18, tzinfo=UTC)
    try:
        async with session_scope(sessions) as s:
            for i, (verdict, horizon, score, result, pnl) in enumerate(SEEDED):
                ev = judged(
                    "XRPUSDT",
                    score=score,
                    verdict=verdict,
                    price=1.0,
                    stop=0.97,
                    target=1.06,
                    at=base + timedelta(hours=i),
                )
                await repo.store_signals(s, [ev], {horizon: 3600}, timedelta(0))
                await s.execute(
                    text(
                        "UPDATE signal_outcomes SET status='completed', pnl_pct=:p, result=:r, "
                        "exit_price=1, evaluated_at=now(), evaluation_count=1 "
                        "WHERE signal_id=:id"
                    ),
                    {"p": pnl, "r": result, "id": ev.signal_id},
                )
    finally:
        await engine.dispose()


def camel(d: dict[str, Any], name: str) -> Any:
    snake = "".join("_" + c.lower() if c.isupper() else c for c in name)
    return d[name] if name in d else d[snake]


async def test_accuracy_page_shows_what_the_analytics_api_returns(
    page, gateway, module_database
) -> None:
    await seed_outcomes(module_database)
    async with gateway.client() as api:
        perf = (await api.get("/analytics/verdict-performance")).json()
        calib = (await api.get("/analytics/calibration", params={"horizon": "4h"})).json()

    await page.add_init_script(f"localStorage.setItem('perpsignal.apiKey', '{API_KEY}')")
    await page.goto(gateway.url + "/#/accuracy")
    await page.locator("#performance-table tbody tr[data-key]").first.wait_for()
    cells = await page.evaluate(
        """() => Object.fromEntries([...document.querySelectorAll('#performance-table tbody tr')]
             .map((tr) => [tr.dataset.key, [...tr.children].map((c) => c.innerText.trim())]))"""
    )
    groups = perf["groups"]
    assert len(cells) == len(groups) == 3
    for g in groups:
        row = cells[f"{g['verdict']}|{g['horizon']}"]
        assert row[2] == str(g["count"])
        assert row[3] == str(g["wins"])
        rate = camel(g, "winRatePct")
        low, high = camel(g, "winRateLowPct"), camel(g, "winRateHighPct")
        assert row[6].startswith(f"{rate:.1f} %"), row
        assert f"({low:.1f}{DASH}{high:.1f})" in row[6], row
    # and worked out by hand from the seed: CONFIRM at 4h won 3 of 4
    assert cells["CONFIRM|4h"][2] == "4" and cells["CONFIRM|4h"][6].startswith("75.0 %")
    assert cells["SKIP|4h"][6].startswith("0.0 %")

    # calibration at 4h: buckets 50-60, 70-80 and 80-90 hold outcomes
    assert len(calib["buckets"]) == 3
    await page.locator("#calibration-chart").wait_for()
    bars = await page.eval_on_selector_all(
        "#calibration-chart rect.cal-bar",
        "rs => rs.map(r => [r.getBBox().x, r.getBBox().height])",
    )
    assert len(bars) == 3
    # bar heights follow the API's win rates (hand-checked: 0 of 2, 1 of 2, 2 of 2 at 4h)
    rates = [camel(b, "winRatePct") for b in calib["buckets"]]
    assert rates == [0.0, 50.0, 100.0]
    heights = [hgt for _, hgt in sorted(bars)]
    full = heights[2]
    assert full > 100
    assert heights[1] == pytest.approx(full / 2, rel=0.02)
    assert heights[0] <= 1.5
    whiskers = await page.locator("#calibration-chart line.whisker").count()
    assert whiskers == 3 * 3  # one vertical and two caps per bucket

    # outcomes history pages through all 25 rows
    assert await page.inner_text("#hist-range") == f"1{DASH}20 of 25"
    assert await page.locator("#history-table tbody tr").count() == 20
    await page.click("#hist-next")
    await page.locator("#hist-range", has_text=f"21{DASH}25 of 25").wait_for()
    assert await page.locator("#history-table tbody tr").count() == 5
    assert await page.locator("#hist-next").is_disabled()
    await page.click("#hist-prev")
    await page.locator("#hist-range", has_text=f"1{DASH}20 of 25").wait_for()
    await screenshot(page, "accuracy")
    assert page.errors == []


async def test_accuracy_page_shows_factor_information_and_judge_lift(page, gateway) -> None:
    async with gateway.client() as api:
        body = (await api.get("/analytics/signal-research")).json()
    await page.add_init_script(f"localStorage.setItem('perpsignal.apiKey', '{API_KEY}')")
    await page.goto(gateway.url + "/#/accuracy")
    await page.locator("#research-factors-24h").wait_for()
    for h in body["horizons"]:
        rows = page.locator(f"#research-factors-{h['horizon']} tbody tr")
        assert await rows.count() == len(h["factors"]) == 8
        first = h["factors"][0]
        cells = await rows.first.locator("td").all_inner_texts()
        assert cells[0] == str(first["outcomes"])
        lift = await page.inner_text(f"#lift-skip-{h['horizon']}")
        assert lift.startswith("Judge lift, CONFIRM")
        if h["confirmMinusSkip"]["pnlPct"] is None:
            assert "too few to measure" in lift
    assert "block bootstrap" in await page.inner_text("#research")
    assert page.errors == []


# discovery and health --------------------------------------------------------------------------


async def test_discovery_and_health_pages(page, gateway, producer) -> None:
    await producer.publish(
        MssScoredV1(
            event_id=uuid.uuid4().hex,
            source="scorer",
            symbol="NEWCOIN",
            observed_at=now(),
            coin="NEWCOIN",
            name="New Coin",
            mss=77.5,
            tier="STRONG",
            discovery=PhaseScore(score=81, inputs={"fdv_to_mcap": 1.8}),
            social_momentum=PhaseScore(score=64, missing=("lunarcrush",)),
            institutional_validation=PhaseScore(score=70),
            binance_symbol="NEWCOINUSDT",
        ),
        wait=True,
    )
    onboard = now() - timedelta(hours=2)
    await producer.publish(
        ListingDetectedV1(
            event_id=uuid.uuid4().hex,
            source="ingestor",
            symbol="FRESHUSDT",
            observed_at=onboard,
            base_asset="FRESH",
            quote_asset="USDT",
            onboard_at=onboard,
            detected_at=onboard + timedelta(seconds=42),
            detection_latency_s=42.0,
        ),
        wait=True,
    )
    await page.add_init_script(f"localStorage.setItem('perpsignal.apiKey', '{API_KEY}')")
    await page.goto(gateway.url + "/#/discovery")

    async def mss_row() -> str | None:
        await page.reload() if not await page.locator("#mss-table").count() else None
        row = page.locator("#mss-table tr[data-coin='NEWCOIN']")
        return await row.inner_text() if await row.count() else None

    text_ = await eventually(mss_row, timeout=15, interval=0.3, what="MSS row")
    assert "77.5" in text_ and "STRONG" in text_ and "81" in text_
    assert "FRESHUSDT" in await page.inner_text("#listings-table")
    assert "42 s" in await page.inner_text("#listings-table")
    await screenshot(page, "discovery")

    await page.click("nav a[data-page='health']")
    services = page.locator("#services-table tbody tr")
    await services.first.wait_for()
    row = await services.first.inner_text()
    assert "gateway" in row and "ready" in row
    # this page's own /ws/signals connection is counted by the gateway
    ws = await page.locator("#ws-table").inner_text()
    assert "signals" in ws
    await screenshot(page, "health")
    assert page.errors == []


# outage ----------------------------------------------------------------------------------------


async def test_stream_outage_shows_disconnected_and_recovers(page, gateway, producer) -> None:
    await producer.publish(judged("OUTAUSDT", score=70.0), wait=True)
    await page.add_init_script(f"localStorage.setItem('perpsignal.apiKey', '{API_KEY}')")
    await page.goto(gateway.url + "/")
    await eventually(
        lambda: page.locator("#live-table tr[data-symbol='OUTAUSDT']").count(),
        timeout=15,
        what="first signal",
    )
    await page.locator("#conn[data-state='live']").wait_for()

    gateway.kill()  # the WebSocket source goes away at once (a crashed or evicted pod)
    await page.locator("#conn[data-state='down']").wait_for(timeout=15_000)
    assert "Disconnected" in await page.inner_text("#conn")
    await screenshot(page, "outage-disconnected", full_page=False)

    # a signal judged while the stream is down is not lost: the page refetches on reconnect
    await producer.publish(
        judged("OUTBUSDT", score=66.0, price=0.5, stop=0.48, target=0.55), wait=True
    )
    await gateway.start()
    await page.locator("#conn[data-state='live']").wait_for(timeout=20_000)
    await eventually(
        lambda: page.locator("#live-table tr[data-symbol='OUTBUSDT']").count(),
        timeout=15,
        what="signal judged during the outage, after reconnect",
    )

    await producer.publish(judged("OUTAUSDT", score=91.0), wait=True)

    async def live_again() -> bool:
        return (await row_texts(page)).get("OUTAUSDT", ["", "", ""])[2] == "91.0"

    await eventually(live_again, timeout=15, interval=0.1, what="live update after recovery")
    await screenshot(page, "outage-recovered", full_page=False)
    assert page.errors == []
