// Accuracy: the analytics endpoints drawn: verdict tables, calibration chart, signal research
// (factor information and judge lift), outcomes history.

import { apiGet } from "../api.js";
import { symbolHref } from "../symbols.js";
import { badge, errorBox, fmtNum, fmtPct, fmtPrice, fmtSignedPct, fmtTime, h, humanName, isNum, svg } from "../dom.js";

const PAGE_SIZE = 20;

/** The analytics bodies may arrive snake_case or camelCase: read both as camelCase. */
export function camelize(value) {
  if (Array.isArray(value)) return value.map(camelize);
  if (value && typeof value === "object") {
    const out = {};
    for (const [k, v] of Object.entries(value)) {
      out[k.replace(/_([a-z0-9])/g, (_, c) => c.toUpperCase())] = camelize(v);
    }
    return out;
  }
  return value;
}

async function get(path, params) {
  return camelize(await apiGet(path, params));
}

function rateCell(g) {
  if (!isNum(g.winRatePct)) return h("td", { class: "num" }, "—");
  return h(
    "td",
    { class: "num", title: "95 % Wilson interval" },
    fmtPct(g.winRatePct),
    h("span", { class: "ci" }, ` (${fmtNum(g.winRateLowPct, 1)}–${fmtNum(g.winRateHighPct, 1)})`),
    g.smallSample ? h("span", { class: "small-sample", title: "fewer than 30 outcomes" }, " *") : null,
  );
}

function statsTable(id, caption, firstCols, rows) {
  const head = [...firstCols.map((c) => c[0]), "Count", "Wins", "Losses", "Neutral", "Win rate (95 % CI)", "Avg P&L", "Median P&L"];
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "data", id },
      h("caption", {}, caption),
      h("thead", {}, h("tr", {}, head.map((t, i) => h("th", { scope: "col", class: i >= firstCols.length ? "num" : "" }, t)))),
      h(
        "tbody",
        {},
        rows.length
          ? rows.map((g) =>
              h(
                "tr",
                { dataset: { key: firstCols.map((c) => g[c[1]]).join("|") } },
                firstCols.map((c, i) => (i === 0 ? h("th", { scope: "row" }, g[c[1]] ?? "all") : h("td", {}, g[c[1]] ?? "all"))),
                h("td", { class: "num count" }, String(g.count)),
                h("td", { class: "num" }, String(g.wins)),
                h("td", { class: "num" }, String(g.losses)),
                h("td", { class: "num" }, String(g.neutrals)),
                rateCell(g),
                h("td", { class: "num" }, fmtSignedPct(g.avgPnlPct)),
                h("td", { class: "num" }, fmtSignedPct(g.medianPnlPct)),
              ),
            )
          : h("tr", {}, h("td", { colspan: head.length }, "No completed outcomes yet.")),
      ),
    ),
  );
}

function calibrationChart(cal) {
  const W = 640;
  const H = 260;
  const pad = { l: 44, r: 12, t: 12, b: 36 };
  const iw = W - pad.l - pad.r;
  const ih = H - pad.t - pad.b;
  const size = cal.bucketSize || 10;
  const n = Math.ceil(100 / size);
  const bw = iw / n;
  const y = (pct) => pad.t + ih - (pct / 100) * ih;
  const nodes = [];
  for (const t of [0, 25, 50, 75, 100]) {
    nodes.push(svg("line", { x1: pad.l, x2: W - pad.r, y1: y(t), y2: y(t), class: "grid" }));
    nodes.push(svg("text", { x: pad.l - 6, y: y(t) + 4, "text-anchor": "end", class: "axis" }, `${t}%`));
  }
  for (let i = 0; i <= n; i += Math.max(1, Math.round(n / 10))) {
    nodes.push(svg("text", { x: pad.l + i * bw, y: H - pad.b + 16, "text-anchor": "middle", class: "axis" }, String(Math.min(100, i * size))));
  }
  nodes.push(svg("text", { x: pad.l + iw / 2, y: H - 4, "text-anchor": "middle", class: "axis" }, "score bucket"));
  for (const b of cal.buckets) {
    if (!isNum(b.winRatePct)) continue;
    const i = Math.round(b.scoreFrom / size);
    const x = pad.l + i * bw + bw * 0.15;
    const w = bw * 0.7;
    const cx = x + w / 2;
    nodes.push(
      svg(
        "rect",
        { x, y: y(b.winRatePct), width: w, height: Math.max(1, y(0) - y(b.winRatePct)), class: b.smallSample ? "cal-bar small" : "cal-bar" },
        svg("title", {}, `${b.scoreFrom}–${b.scoreTo}: ${fmtPct(b.winRatePct)} of ${b.count} (95 % CI ${fmtNum(b.winRateLowPct)}–${fmtNum(b.winRateHighPct)})`),
      ),
    );
    if (isNum(b.winRateLowPct) && isNum(b.winRateHighPct)) {
      nodes.push(svg("line", { x1: cx, x2: cx, y1: y(b.winRateLowPct), y2: y(b.winRateHighPct), class: "whisker" }));
      for (const v of [b.winRateLowPct, b.winRateHighPct]) {
        nodes.push(svg("line", { x1: cx - w / 4, x2: cx + w / 4, y1: y(v), y2: y(v), class: "whisker" }));
      }
    }
  }
  return svg(
    "svg",
    { viewBox: `0 0 ${W} ${H}`, class: "calibration-chart", role: "img", "aria-labelledby": "cal-title", id: "calibration-chart" },
    ...nodes,
  );
}

function calibrationTable(cal) {
  return h(
    "details",
    {},
    h("summary", {}, "Calibration as a table"),
    h(
      "table",
      { class: "data compact", id: "calibration-table" },
      h("caption", { class: "visually-hidden" }, "Win rate per score bucket"),
      h("thead", {}, h("tr", {}, ["Score", "Count", "Win rate", "95 % CI", "Avg P&L"].map((t, i) => h("th", { scope: "col", class: i ? "num" : "" }, t)))),
      h("tbody", {}, cal.buckets.map((b) =>
        h("tr", {},
          h("th", { scope: "row" }, `${b.scoreFrom}–${b.scoreTo}`),
          h("td", { class: "num" }, String(b.count)),
          h("td", { class: "num" }, fmtPct(b.winRatePct)),
          h("td", { class: "num" }, isNum(b.winRateLowPct) ? `${fmtNum(b.winRateLowPct)}–${fmtNum(b.winRateHighPct)}` : "—"),
          h("td", { class: "num" }, fmtSignedPct(b.avgPnlPct)),
        ))),
    ),
  );
}

const signed = (v, digits, unit) => (isNum(v) ? `${v > 0 ? "+" : ""}${fmtNum(v, digits)}${unit}` : "—");
const interval = (lo, hi, digits, unit) => (isNum(lo) && isNum(hi) ? `${signed(lo, digits, unit)} to ${signed(hi, digits, unit)}` : "—");

function liftLine(id, label, l, otherName) {
  if (!isNum(l.pnlPct)) {
    return h("p", { id }, `${label}: — (${l.confirm} CONFIRM, ${l.other} ${otherName}: too few to measure)`);
  }
  return h(
    "p",
    { id },
    `${label}: `,
    h("strong", {}, signed(l.pnlPct, 3, " % P&L")),
    ` (95 % CI ${interval(l.pnlLowPct, l.pnlHighPct, 3, " %")}), win rate ${signed(l.winRatePts, 1, " points")}`,
    ` (95 % CI ${interval(l.winRateLowPts, l.winRateHighPts, 1, "")}); ${l.confirm} CONFIRM vs ${l.other} ${otherName}`,
  );
}

function researchHorizon(r) {
  const cols = ["Factor", "Outcomes with data", "Mean sub-score", "IC", "IC 95 % CI", "Information"];
  const span = r.outcomes
    ? `${r.outcomes} completed outcomes entered ${fmtTime(r.firstEntryAt)} – ${fmtTime(r.lastEntryAt)}${r.truncated ? " (newest only: limit reached)" : ""}; bootstrap block ${r.block}`
    : "No completed outcomes in this window yet.";
  return h(
    "div",
    { class: "research-horizon", dataset: { horizon: r.horizon } },
    h("h4", {}, `Horizon ${r.horizon}`),
    h("p", { class: "hint" }, span),
    liftLine(`lift-skip-${r.horizon}`, "Judge lift, CONFIRM − SKIP", r.confirmMinusSkip, "SKIP"),
    liftLine(`lift-all-${r.horizon}`, "CONFIRM − all signals", r.confirmMinusAll, "in all"),
    h(
      "div",
      { class: "table-wrap" },
      h(
        "table",
        { class: "data compact", id: `research-factors-${r.horizon}` },
        h("caption", { class: "visually-hidden" }, `Factor information at ${r.horizon}`),
        h("thead", {}, h("tr", {}, cols.map((t, i) => h("th", { scope: "col", class: i ? "num" : "" }, t)))),
        h("tbody", {}, r.factors.map((f) =>
          h("tr", { dataset: { factor: f.factor } },
            h("th", { scope: "row" }, humanName(f.factor)),
            h("td", { class: "num" }, String(f.outcomes)),
            h("td", { class: "num" }, fmtNum(f.meanScore, 1)),
            h("td", { class: "num" }, signed(f.ic, 3, "")),
            h("td", { class: "num" }, interval(f.icLow, f.icHigh, 3, "")),
            h("td", {}, isNum(f.ic) ? (f.informative ? "yes: interval excludes 0" : "none measurable") : f.outcomes ? "too few outcomes" : "no data"),
          ))),
      ),
    ),
  );
}

/** Net P&L after fees, slippage and funding; a missing funding settlement is said, not zeroed. */
function netCell(o) {
  if (o.status !== "completed" || !isNum(o.costPct)) return h("td", { class: "num" }, "—");
  const detail = `fees+slippage ${fmtSignedPct(-o.costPct, 3)}, funding ${isNum(o.fundingPct) ? `${fmtSignedPct(-o.fundingPct, 3)} (${o.fundingSettlements} settlements)` : "unknown"}`;
  if (!isNum(o.netPnlPct)) {
    return h("td", { class: "num funding-unknown", title: `${detail}: a funding settlement of this window is missing` }, "funding unknown");
  }
  return h("td", { class: "num", title: detail }, fmtSignedPct(o.netPnlPct));
}

function historyTable(page) {
  const cols = ["Entry time", "Symbol", "Dir.", "Verdict", "Score", "Horizon", "Status", "Entry", "Exit", "P&L (gross)", "Net P&L", "Result", "First hit"];
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "data compact", id: "history-table" },
      h("caption", { class: "visually-hidden" }, "Outcomes history, newest first"),
      h("thead", {}, h("tr", {}, cols.map((t) => h("th", { scope: "col" }, t)))),
      h("tbody", {}, page.items.length
        ? page.items.map((o) =>
            h("tr", { dataset: { signal: o.signalId, horizon: o.horizon } },
              h("td", {}, fmtTime(o.entryAt)),
              h("th", { scope: "row" }, h("a", { href: symbolHref(o.symbol) }, o.symbol)),
              h("td", {}, o.direction),
              h("td", {}, badge(o.verdict)),
              h("td", { class: "num" }, fmtNum(o.score, 0)),
              h("td", {}, o.horizon),
              h("td", {}, o.status),
              h("td", { class: "num" }, fmtPrice(o.entryPrice)),
              h("td", { class: "num" }, fmtPrice(o.exitPrice)),
              h("td", { class: "num" }, fmtSignedPct(o.pnlPct)),
              netCell(o),
              h("td", {}, o.result ? badge(o.result) : "—"),
              h("td", {}, o.firstHit || "—"),
            ))
        : h("tr", {}, h("td", { colspan: cols.length }, "No outcomes match."))),
    ),
  );
}

export function mount(main) {
  let disposed = false;
  const controls = h(
    "form",
    { class: "filters", "aria-label": "Analytics options", onsubmit: (e) => e.preventDefault() },
    h("div", { class: "field" }, h("label", { for: "a-horizon" }, "Horizon"),
      h("select", { id: "a-horizon" }, [["", "All (pooled)"], ["1h", "1h"], ["4h", "4h"], ["24h", "24h"]].map(([v, t]) => h("option", { value: v }, t)))),
  );
  const perf = h("section", { class: "card", "aria-labelledby": "perf-title" }, h("h3", { id: "perf-title" }, "Verdict performance"));
  const compare = h("section", { class: "card", "aria-labelledby": "cmp-title" }, h("h3", { id: "cmp-title" }, "Verdict comparison"));
  const calib = h("section", { class: "card", "aria-labelledby": "cal-title" }, h("h3", { id: "cal-title" }, "Calibration by score bucket"));
  const history = h("section", { class: "card", "aria-labelledby": "hist-title" }, h("h3", { id: "hist-title" }, "Outcomes history"));
  const research = h("section", { class: "card", "aria-labelledby": "research-title", id: "research" }, h("h3", { id: "research-title" }, "Do the signals carry information?"));
  const tracking = h("p", { class: "hint", id: "tracking-stats" });
  main.append(h("div", { class: "page-head" }, h("h2", {}, "Accuracy"), tracking), controls, perf, compare, research, calib, history);
  let offset = 0;

  const horizon = () => controls.querySelector("#a-horizon").value;
  const fill = (section, ...nodes) => section.replaceChildren(section.firstChild, ...nodes);

  async function loadPerf() {
    try {
      const body = await get("/analytics/verdict-performance", { horizon: horizon() });
      if (disposed) return;
      fill(perf, statsTable("performance-table", "Win rate and P&L per verdict", [["Verdict", "verdict"], ["Horizon", "horizon"]], body.groups),
        h("p", { class: "hint" }, "* fewer than 30 outcomes: read the interval, not the rate."));
    } catch (err) {
      fill(perf, errorBox(err));
    }
  }

  async function loadCompare() {
    try {
      const body = await get("/analytics/verdict-compare", { horizon: horizon() });
      if (disposed) return;
      const lift = body.judgeLift || {};
      fill(compare,
        h("p", { id: "judge-lift" }, "Judge lift (CONFIRM − SKIP win rate): ",
          h("strong", {}, isNum(lift.liftPct) ? `${lift.liftPct > 0 ? "+" : ""}${fmtNum(lift.liftPct)} points` : "—"),
          isNum(lift.liftLowPct) ? ` (95 % CI ${fmtNum(lift.liftLowPct)} to ${fmtNum(lift.liftHighPct)})` : ""),
        statsTable("compare-verdict", "By verdict", [["Verdict", "value"]], body.byVerdict),
        statsTable("compare-risk", "By risk mode", [["Risk mode", "value"]], body.byRiskMode),
        statsTable("compare-judge", "By judge", [["Judge", "value"]], body.byJudge));
    } catch (err) {
      fill(compare, errorBox(err));
    }
  }

  async function loadCalibration() {
    try {
      const body = await get("/analytics/calibration", { horizon: horizon() || "4h", bucketSize: 10 });
      if (disposed) return;
      fill(calib,
        h("p", { class: "hint" }, `Horizon ${body.horizon}. Bars: win rate; whiskers: 95 % Wilson interval. A well-calibrated score wins more often as it rises.`),
        body.buckets.length ? calibrationChart(body) : h("p", {}, "No completed outcomes at this horizon yet."),
        calibrationTable(body));
    } catch (err) {
      fill(calib, errorBox(err));
    }
  }

  async function loadResearch() {
    try {
      const body = await get("/analytics/signal-research", { horizon: horizon() });
      if (disposed) return;
      fill(research,
        h("p", { class: "hint" }, `Outcomes entered since ${fmtTime(body.since)}. ${body.method}`),
        ...body.horizons.map(researchHorizon));
    } catch (err) {
      fill(research, errorBox(err));
    }
  }

  async function loadHistory() {
    try {
      const page = await get("/analytics/outcomes-history", { horizon: horizon(), limit: PAGE_SIZE, offset });
      if (disposed) return;
      const first = page.total ? page.offset + 1 : 0;
      const last = page.offset + page.items.length;
      const prev = h("button", { type: "button", class: "btn", id: "hist-prev", disabled: page.offset === 0 }, "Previous");
      const next = h("button", { type: "button", class: "btn", id: "hist-next", disabled: last >= page.total }, "Next");
      prev.addEventListener("click", () => {
        offset = Math.max(0, offset - PAGE_SIZE);
        loadHistory();
      });
      next.addEventListener("click", () => {
        offset += PAGE_SIZE;
        loadHistory();
      });
      fill(history, historyTable(page),
        h("nav", { class: "pager", "aria-label": "Outcomes pages" }, prev,
          h("span", { id: "hist-range", "aria-live": "polite" }, `${first}–${last} of ${page.total}`), next));
    } catch (err) {
      fill(history, errorBox(err));
    }
  }

  async function loadTracking() {
    try {
      const t = await get("/analytics/tracking-stats");
      if (disposed) return;
      tracking.textContent = `Tracking: ${t.pending} pending (${t.pendingOverdue} overdue), ${t.completed} completed, ${t.failed} failed` +
        (t.fundingUnknown ? `; ${t.fundingUnknown} completed with funding unknown (net P&L not shown)` : "");
    } catch {
      tracking.textContent = "";
    }
  }

  const loadAll = () => {
    loadPerf();
    loadCompare();
    loadResearch();
    loadCalibration();
    loadHistory();
    loadTracking();
  };
  controls.addEventListener("change", () => {
    offset = 0;
    loadAll();
  });
  loadAll();
  return () => {
    disposed = true;
  };
}
