// Symbol detail: candles with entry/stop/target and SMC levels, factor bars, judge, liquidations.

import { Stream, apiGet } from "../api.js";
import { asciiUpper, symbolHref, typedSymbol } from "../symbols.js";
import {
  badge,
  errorBox,
  fmtInput,
  fmtNum,
  fmtPrice,
  fmtTime,
  fmtUsd,
  h,
  humanName,
  isNum,
} from "../dom.js";

export const COLORS = {
  up: "#3fb68b",
  down: "#d9534f",
  entry: "#2f80ed",
  stop: "#ff2d55",
  target: "#00c853",
  structure: "#f5a623",
  swing: "#9b8cff",
  liquidity: "#00b8d9",
  fvg: "#c77dff",
};
// SMC detail keys are `<timeframe>.<kind>` = level (see the scorer's smc_summary)
const SMC_STYLE = {
  swing_high: ["Swing high", COLORS.swing, 1],
  swing_low: ["Swing low", COLORS.swing, 1],
  bos: ["BOS", COLORS.structure, 2],
  choch: ["CHoCH", COLORS.structure, 2],
  equal_highs: ["Liquidity (equal highs)", COLORS.liquidity, 3],
  equal_lows: ["Liquidity (equal lows)", COLORS.liquidity, 3],
  fvg: ["FVG", COLORS.fvg, 3],
  fvg_mitigated: ["FVG mitigated", COLORS.fvg, 1],
};
const LIQ_KEPT = 50;

function picker(signals) {
  const list = [...signals.bySymbol.keys()].sort();
  const form = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Open a symbol" },
    h(
      "div",
      { class: "field" },
      h("label", { for: "sym-input" }, "Symbol"),
      h("input", { id: "sym-input", list: "sym-list", placeholder: "BTC or BTCUSDT", autocomplete: "off", required: true }),
      h("datalist", { id: "sym-list" }, list.map((s) => h("option", { value: s }))),
    ),
    h("button", { type: "submit", class: "btn" }, "Open"),
  );
  form.addEventListener("submit", (ev) => {
    ev.preventDefault();
    const input = form.querySelector("input");
    const s = typedSymbol(input.value);
    input.setCustomValidity(s || !input.value.trim() ? "" : "Letters or digits, _ . : / + $ - only");
    if (s) location.hash = symbolHref(s);
    else input.reportValidity();
  });
  return h(
    "section",
    {},
    h("h2", {}, "Symbol detail"),
    form,
    list.length
      ? h("ul", { class: "chips" }, list.map((s) => h("li", {}, h("a", { href: symbolHref(s) }, s))))
      : h("p", { class: "hint" }, "No symbols with signals yet."),
  );
}

function levels(sig) {
  const vol = sig.aiVerdictLayer.volatilityMetrics || {};
  const out = [{ id: "entry", title: "Entry", price: sig.price, color: COLORS.entry, style: 0, width: 2 }];
  if (isNum(vol.stopLossPrice)) out.push({ id: "stop", title: "Stop loss", price: vol.stopLossPrice, color: COLORS.stop, style: 0, width: 2 });
  if (isNum(vol.takeProfitPrice)) out.push({ id: "target", title: "Take profit", price: vol.takeProfitPrice, color: COLORS.target, style: 0, width: 2 });
  const details = (sig.smc && sig.smc.details) || {};
  for (const [key, value] of Object.entries(details)) {
    const [tf, kind] = key.split(".");
    const style = SMC_STYLE[kind];
    if (!style || tf !== sig.timeframe || !isNum(value)) continue;
    out.push({ id: `smc-${kind}`, title: `${style[0]} (${tf})`, price: value, color: style[1], style: style[2], width: 1 });
  }
  return out;
}

function priceDigits(price) {
  const abs = Math.abs(price);
  return abs >= 1000 ? 2 : abs >= 1 ? 4 : abs >= 0.01 ? 5 : 8;
}

async function drawChart(el, candles, sig, lines) {
  // loaded only on this page, so the live table paints without the chart library
  const lib = await import("/static/vendor/lightweight-charts/lightweight-charts.standalone.production.mjs");
  const dark = matchMedia("(prefers-color-scheme: dark)").matches;
  const chart = lib.createChart(el, {
    autoSize: true,
    layout: {
      background: { type: "solid", color: dark ? "#131722" : "#ffffff" },
      textColor: dark ? "#d1d4dc" : "#1f2937",
      attributionLogo: true,
    },
    grid: { vertLines: { color: dark ? "#1f2433" : "#eef0f3" }, horzLines: { color: dark ? "#1f2433" : "#eef0f3" } },
    timeScale: { timeVisible: true, secondsVisible: false },
    rightPriceScale: { scaleMargins: { top: 0.1, bottom: 0.1 } },
  });
  const series = chart.addSeries(lib.CandlestickSeries, {
    upColor: COLORS.up,
    downColor: COLORS.down,
    wickUpColor: COLORS.up,
    wickDownColor: COLORS.down,
    borderVisible: false,
    priceLineVisible: false,
    priceFormat: { type: "price", precision: priceDigits(sig.price), minMove: 10 ** -priceDigits(sig.price) },
    // keep stop and target in view even when price never reached them
    autoscaleInfoProvider: (original) => {
      const res = original();
      if (!res) return res;
      const prices = lines.filter((l) => ["entry", "stop", "target"].includes(l.id)).map((l) => l.price);
      res.priceRange.minValue = Math.min(res.priceRange.minValue, ...prices);
      res.priceRange.maxValue = Math.max(res.priceRange.maxValue, ...prices);
      return res;
    },
  });
  series.setData(candles);
  for (const l of lines) {
    series.createPriceLine({ price: l.price, color: l.color, lineWidth: l.width, lineStyle: l.style, axisLabelVisible: l.width > 1, title: l.title });
  }
  if (sig.smc && sig.smc.lastEvent && candles.length) {
    const up = /\bup\b/i.test(sig.smc.lastEvent);
    lib.createSeriesMarkers(series, [
      {
        time: candles[candles.length - 1].time,
        position: up ? "belowBar" : "aboveBar",
        color: COLORS.structure,
        shape: up ? "arrowUp" : "arrowDown",
        text: sig.smc.lastEvent,
      },
    ]);
  }
  chart.timeScale().fitContent();
  el.dataset.drawn = String(candles.length);
  return chart;
}

function factorRows(sig) {
  const factors = (sig.debug && sig.debug.factors) || [];
  if (!factors.length) return h("p", { class: "hint" }, "No factor breakdown in this signal.");
  return h(
    "ul",
    { class: "factors" },
    factors.map((f) => {
      const delta = f.score - 50;
      const left = delta >= 0 ? 50 : 50 + delta;
      const inputs = Object.entries(f.inputs || {});
      return h(
        "li",
        { class: `factor factor-${f.status}`, dataset: { factor: f.name } },
        h(
          "div",
          { class: "factor-head" },
          h("span", { class: "factor-name" }, humanName(f.name)),
          f.status !== "ok" ? badge(f.status) : null,
          h("span", { class: "factor-score" }, fmtNum(f.score, 0)),
        ),
        h(
          "div",
          {
            class: "bar",
            role: "meter",
            "aria-valuemin": 0,
            "aria-valuemax": 100,
            "aria-valuenow": Math.round(f.score),
            "aria-label": `${humanName(f.name)} sub-score`,
          },
          h("span", { class: `bar-fill ${delta >= 0 ? "pos" : "neg"}`, style: `left:${left}%;width:${Math.abs(delta)}%` }),
          h("span", { class: "bar-mid", "aria-hidden": "true" }),
        ),
        h(
          "p",
          { class: "factor-meta" },
          `weight ${fmtNum(f.weight, 0)} · contribution ${f.contribution >= 0 ? "+" : ""}${fmtNum(f.contribution, 2)}`,
          isNum(f.ageS) ? ` · age ${fmtNum(f.ageS, 0)} s` : "",
          f.reason ? ` · ${f.reason}` : "",
        ),
        inputs.length
          ? h("dl", { class: "inputs" }, inputs.map(([k, v]) => [h("dt", {}, humanName(k)), h("dd", {}, fmtInput(v))]))
          : null,
      );
    }),
  );
}

function judgeSection(sig) {
  const layer = sig.aiVerdictLayer;
  const vol = layer.volatilityMetrics || {};
  const checks = layer.layerChecks || { agreements: [], conflicts: [] };
  const list = (items, cls, empty) =>
    items.length ? h("ul", { class: cls }, items.map((t) => h("li", {}, t))) : h("p", { class: "hint" }, empty);
  return h(
    "section",
    { class: "card", "aria-labelledby": "judge-title" },
    h("h3", { id: "judge-title" }, "Judge"),
    h(
      "p",
      { class: "verdict-line" },
      badge(layer.verdict),
      ` risk ${layer.riskMode} · size ${fmtNum(layer.positionMultiplier, 2)}× · by ${layer.judge}${layer.model ? ` (${layer.model})` : ""}`,
    ),
    h("p", { class: "summary" }, layer.aiSummary),
    layer.fallbackReason ? h("p", { class: "hint" }, `Rules used: ${layer.fallbackReason}`) : null,
    h("div", { class: "two-col" },
      h("div", {}, h("h4", {}, "Agreements"), list(checks.agreements, "agreements", "None.")),
      h("div", {}, h("h4", {}, "Conflicts"), list(checks.conflicts, "conflicts", "None.")),
    ),
    h("h4", {}, "Trade plan"),
    h(
      "dl",
      { class: "plan" },
      h("dt", {}, "Entry"), h("dd", { id: "plan-entry" }, fmtPrice(sig.price)),
      h("dt", {}, "Stop loss"), h("dd", { id: "plan-stop", class: "stop" }, fmtPrice(vol.stopLossPrice)),
      h("dt", {}, "Take profit"), h("dd", { id: "plan-target", class: "target" }, fmtPrice(vol.takeProfitPrice)),
      h("dt", {}, "Risk/reward"), h("dd", {}, isNum(vol.riskReward) ? fmtNum(vol.riskReward, 2) : "—"),
      h("dt", {}, "ATR"), h("dd", {}, isNum(vol.atr) ? `${fmtPrice(vol.atr)} (${fmtNum(vol.atrPct, 2)} %)` : "—"),
      h("dt", {}, "Volatility"), h("dd", {}, vol.volatilityClass || "—"),
    ),
    vol.tradePlanSummary ? h("p", { class: "hint" }, vol.tradePlanSummary) : null,
  );
}

function smcSection(sig) {
  const smc = sig.smc;
  if (!smc) return h("section", { class: "card" }, h("h3", {}, "Structure (SMC)"), h("p", { class: "hint" }, "No SMC view in this signal."));
  const rows = Object.entries(smc.details || {})
    .filter(([k]) => k.includes("."))
    .sort(([a], [b]) => a.localeCompare(b));
  return h(
    "section",
    { class: "card", "aria-labelledby": "smc-title" },
    h("h3", { id: "smc-title" }, "Structure (SMC)"),
    h("p", {}, badge(smc.bias), smc.lastEvent ? ` last event: ${smc.lastEvent}` : ""),
    h("p", { class: "hint" }, Object.entries(smc.byTimeframe || {}).map(([tf, b]) => `${tf}: ${b}`).join(" · ")),
    rows.length
      ? h("table", { class: "data compact" },
          h("caption", { class: "visually-hidden" }, "SMC levels per timeframe"),
          h("thead", {}, h("tr", {}, h("th", { scope: "col" }, "Level"), h("th", { scope: "col", class: "num" }, "Price"))),
          h("tbody", {}, rows.map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, humanName(k)), h("td", { class: "num" }, isNum(v) && !Number.isInteger(v) ? fmtPrice(v) : fmtInput(v))))))
      : null,
  );
}

export function mount(main, params, { signals }) {
  const symbol = asciiUpper(params[0] || "");
  if (!symbol) {
    main.append(picker(signals));
    return null;
  }
  let chart = null;
  let stream = null;
  let disposed = false;
  const head = h("div", { class: "page-head" }, h("h2", {}, symbol));
  const body = h("div", { class: "symbol-body" }, h("p", { class: "loading" }, "Loading…"));
  const liqSection = h("section", { class: "card", "aria-labelledby": "liq-title" });
  main.append(head, body);

  async function load() {
    let sig;
    let candles = [];
    try {
      sig = await apiGet(`/signals/${encodeURIComponent(symbol)}`, { debug: "true" });
    } catch (err) {
      body.replaceChildren(err.status === 202 ? h("p", {}, "Being analysed for the first time; try again shortly.") : errorBox(err));
      return;
    }
    try {
      candles = (await apiGet(`/ui/candles/${encodeURIComponent(symbol)}`)).candles;
    } catch {
      candles = [];
    }
    if (disposed) return;
    head.replaceChildren(
      h("h2", {}, sig.symbol),
      h("p", { class: "head-meta" }, badge(sig.signal), ` score ${fmtNum(sig.score, 1)} · confidence ${fmtNum(sig.confidence, 0)} · ${sig.timeframe} · ${fmtTime(sig.timestamp)} `, badge(sig.aiVerdictLayer.verdict)),
    );
    const lines = levels(sig);
    const chartEl = h("div", { class: "chart", id: "price-chart", role: "img", "aria-label": `${sig.symbol} candles with entry, stop loss and take profit` });
    const legend = h(
      "ul",
      { class: "legend", id: "chart-legend", "aria-label": "Lines drawn on the chart" },
      lines.map((l) =>
        h("li", { dataset: { line: l.id, price: l.price } }, h("span", { class: "swatch", style: `background:${l.color}`, "aria-hidden": "true" }), `${l.title} ${fmtPrice(l.price)}`),
      ),
    );
    const missing = [...(sig.missingFactors || []), ...(sig.staleFactors || [])];
    body.replaceChildren(
      h(
        "section",
        { class: "card chart-card", "aria-labelledby": "chart-title" },
        h("h3", { id: "chart-title" }, `Price (${sig.timeframe})`),
        candles.length ? chartEl : h("p", { class: "hint" }, "This signal carries no candles to draw."),
        legend,
      ),
      h(
        "div",
        { class: "grid-2" },
        h(
          "section",
          { class: "card", "aria-labelledby": "factors-title" },
          h("h3", { id: "factors-title" }, "Factors"),
          missing.length ? h("p", { class: "hint" }, `Missing or stale (neutral, lower confidence): ${missing.join(", ")}`) : null,
          factorRows(sig),
        ),
        h("div", {}, judgeSection(sig), smcSection(sig)),
      ),
      liqSection,
    );
    if (chart) chart.remove();
    chart = null;
    if (candles.length) {
      try {
        chart = await drawChart(chartEl, candles, sig, lines);
      } catch (err) {
        chartEl.replaceWith(errorBox(err));
      }
    }
  }

  const liq = { orders: [] };
  function renderLiq() {
    const longUsd = liq.orders.filter((o) => o.liquidatedSide === "LONG").reduce((s, o) => s + o.notionalUsd, 0);
    const shortUsd = liq.orders.filter((o) => o.liquidatedSide === "SHORT").reduce((s, o) => s + o.notionalUsd, 0);
    liqSection.replaceChildren(
      h("h3", { id: "liq-title" }, "Liquidations (live)"),
      h("p", { class: "hint" }, `Last ${liq.orders.length}: longs ${fmtUsd(longUsd)} · shorts ${fmtUsd(shortUsd)}`),
      liq.orders.length
        ? h("div", { class: "table-wrap" }, h("table", { class: "data compact", id: "liq-table" },
            h("caption", { class: "visually-hidden" }, "Recent liquidation orders, newest first"),
            h("thead", {}, h("tr", {}, ["Time", "Side", "Price", "Quantity", "Notional"].map((t, i) => h("th", { scope: "col", class: i > 1 ? "num" : "" }, t)))),
            h("tbody", { "aria-live": "polite" }, liq.orders.map((o) => h("tr", {},
              h("td", {}, fmtTime(o.timestamp)),
              h("td", {}, badge(o.liquidatedSide, o.liquidatedSide === "LONG" ? "short" : "long")),
              h("td", { class: "num" }, fmtPrice(o.price)),
              h("td", { class: "num" }, fmtInput(o.quantity)),
              h("td", { class: "num" }, fmtUsd(o.notionalUsd)),
            )))))
        : h("p", { class: "hint" }, "No liquidations seen for this symbol yet."),
    );
  }
  apiGet(`/liquidations/${encodeURIComponent(symbol)}`, { limit: LIQ_KEPT })
    .then((body) => {
      const seen = new Set(liq.orders.map((o) => o.timestamp + o.notionalUsd));
      for (const o of body.orders) if (!seen.has(o.timestamp + o.notionalUsd)) liq.orders.push(o);
      liq.orders.sort((a, b) => Date.parse(b.timestamp) - Date.parse(a.timestamp));
      renderLiq();
    })
    .catch(() => renderLiq());
  stream = new Stream("/ws/liquidations", { symbols: symbol }, {
    onMessage: (msg) => {
      if (msg.type !== "liquidation" || msg.data.symbol !== symbol) return;
      liq.orders.unshift(msg.data);
      liq.orders.length = Math.min(liq.orders.length, LIQ_KEPT);
      renderLiq();
    },
  }).start();

  const off = signals.subscribe((change) => {
    if (change.kind === "signal" && change.live && change.signal.symbol === symbol) load();
  });
  load().then(renderLiq);
  return () => {
    disposed = true;
    off();
    if (stream) stream.stop();
    if (chart) chart.remove();
  };
}
