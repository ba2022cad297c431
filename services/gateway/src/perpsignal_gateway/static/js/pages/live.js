// Live signals: latest judged signal per symbol, updated in place from /ws/signals, with filters.

import { badge, errorBox, fmtAge, fmtNum, fmtPrice, h, isNum } from "../dom.js";
import { asciiUpper, symbolHref } from "../symbols.js";

const FRESH_MS = 8000;
const COLUMNS = [
  ["Symbol", "symbol"],
  ["Direction", "direction"],
  ["Score", "num"],
  ["Confidence", "num"],
  ["Verdict", "verdict"],
  ["Risk mode", "risk"],
  ["Size", "num"],
  ["Entry", "num"],
  ["Stop", "num"],
  ["Target", "num"],
  ["R:R", "num"],
  ["Age", "num"],
];

function select(id, label, options) {
  return h(
    "div",
    { class: "field" },
    h("label", { for: id }, label),
    h("select", { id, name: id }, options.map(([v, t]) => h("option", { value: v }, t))),
  );
}

function filtersForm() {
  return h(
    "form",
    { class: "filters", role: "search", "aria-label": "Filter signals", onsubmit: (e) => e.preventDefault() },
    h(
      "div",
      { class: "field" },
      h("label", { for: "f-search" }, "Symbol"),
      h("input", { id: "f-search", type: "search", placeholder: "BTC", autocomplete: "off" }),
    ),
    select("f-direction", "Direction", [["", "Any"], ["LONG", "Long"], ["SHORT", "Short"], ["NEUTRAL", "Neutral"]]),
    select("f-verdict", "Verdict", [
      ["", "Any"],
      ["CONFIRM", "Confirm"],
      ["DOWNSIZE", "Downsize"],
      ["WAIT", "Wait"],
      ["SKIP", "Skip"],
    ]),
    h(
      "div",
      { class: "field" },
      h("label", { for: "f-min-score" }, "Min score"),
      h("input", { id: "f-min-score", type: "number", min: 0, max: 100, step: 1, inputmode: "numeric", placeholder: "0" }),
    ),
  );
}

function readFilters(root) {
  const min = parseFloat(root.querySelector("#f-min-score").value);
  return {
    search: asciiUpper(root.querySelector("#f-search").value.trim()),
    direction: root.querySelector("#f-direction").value,
    verdict: root.querySelector("#f-verdict").value,
    minScore: Number.isFinite(min) ? min : 0,
  };
}

function matches(sig, f) {
  if (f.search && !sig.symbol.includes(f.search)) return false;
  if (f.direction && sig.signal !== f.direction) return false;
  if (f.verdict && sig.aiVerdictLayer.verdict !== f.verdict) return false;
  return sig.score >= f.minScore;
}

function cells(sig) {
  const layer = sig.aiVerdictLayer || {};
  const vol = layer.volatilityMetrics || {};
  const size = isNum(layer.positionMultiplier) ? `${fmtNum(layer.positionMultiplier, 2)}×` : "—";
  return [
    h("th", { scope: "row" }, h("a", { href: symbolHref(sig.symbol) }, sig.symbol)),
    h("td", {}, badge(sig.signal)),
    h("td", { class: "num" }, fmtNum(sig.score, 1)),
    h("td", { class: "num" }, fmtNum(sig.confidence, 0)),
    h("td", {}, badge(layer.verdict)),
    h("td", {}, layer.riskMode || "—"),
    h("td", { class: "num" }, size),
    h("td", { class: "num" }, fmtPrice(sig.price)),
    h("td", { class: "num stop" }, fmtPrice(vol.stopLossPrice)),
    h("td", { class: "num target" }, fmtPrice(vol.takeProfitPrice)),
    h("td", { class: "num" }, isNum(vol.riskReward) ? fmtNum(vol.riskReward, 2) : "—"),
    h("td", { class: "num age", dataset: { ts: sig.timestamp } }, fmtAge(sig.timestamp)),
  ];
}

export function mount(main, _params, { signals }) {
  const tbody = h("tbody");
  const status = h("p", { class: "table-status", id: "live-status" });
  const announcer = h("p", { class: "visually-hidden", "aria-live": "polite", id: "live-announcer" });
  const errorSlot = h("div");
  const filters = filtersForm();
  const table = h(
    "table",
    { class: "data live-table", id: "live-table", "aria-describedby": "live-status" },
    h("caption", { class: "visually-hidden" }, "Latest judged signal per symbol, highest score first"),
    h("thead", {}, h("tr", {}, COLUMNS.map(([name, cls]) => h("th", { scope: "col", class: cls === "num" ? "num" : "" }, name)))),
    tbody,
  );
  main.append(
    h("div", { class: "page-head" }, h("h2", {}, "Live signals"), status),
    filters,
    errorSlot,
    h("div", { class: "table-wrap", tabindex: 0, role: "region", "aria-label": "Signals table" }, table),
    announcer,
  );

  const rows = new Map();

  function render() {
    const f = readFilters(filters);
    const all = [...signals.bySymbol.values()].sort(
      (a, b) => b.score - a.score || Date.parse(b.timestamp) - Date.parse(a.timestamp),
    );
    let shown = 0;
    const now = Date.now();
    for (const sig of all) {
      let tr = rows.get(sig.symbol);
      if (!tr || tr.dataset.ts !== sig.timestamp || tr.dataset.id !== sig.signalId) {
        const fresh = tr ? tr : h("tr");
        fresh.replaceChildren(...cells(sig));
        fresh.dataset.symbol = sig.symbol;
        fresh.dataset.ts = sig.timestamp;
        fresh.dataset.id = sig.signalId;
        fresh.dataset.direction = sig.signal;
        fresh.dataset.verdict = sig.aiVerdictLayer.verdict;
        tr = fresh;
        rows.set(sig.symbol, tr);
      }
      const changedAt = signals.fresh.get(sig.symbol);
      tr.classList.toggle("is-new", changedAt !== undefined && now - changedAt < FRESH_MS);
      tr.hidden = !matches(sig, f);
      if (!tr.hidden) shown += 1;
      tbody.append(tr); // appending an attached node moves it: the order follows the sort
    }
    if (signals.error && !signals.loaded) {
      errorSlot.replaceChildren(errorBox(signals.error));
    } else {
      errorSlot.replaceChildren();
    }
    status.textContent = signals.loaded || all.length
      ? `Showing ${shown} of ${all.length} symbols`
      : "Waiting for signals…";
    if (all.length === 0 && signals.loaded) {
      tbody.replaceChildren(h("tr", { class: "empty" }, h("td", { colspan: COLUMNS.length }, "No judged signals yet.")));
      rows.clear();
    } else {
      for (const tr of tbody.querySelectorAll("tr.empty")) tr.remove();
    }
  }

  const off = signals.subscribe((change) => {
    render();
    if (change.kind === "signal" && change.live) {
      const s = change.signal;
      announcer.textContent = `New signal: ${s.symbol} ${s.signal}, score ${fmtNum(s.score, 0)}, ${s.aiVerdictLayer.verdict}`;
    }
  });
  filters.addEventListener("input", render);
  filters.addEventListener("change", render);
  const ticker = setInterval(() => {
    const now = Date.now();
    for (const td of tbody.querySelectorAll("td.age")) td.textContent = fmtAge(td.dataset.ts, now);
    for (const tr of tbody.querySelectorAll("tr.is-new")) {
      const t = signals.fresh.get(tr.dataset.symbol);
      if (t === undefined || now - t >= FRESH_MS) tr.classList.remove("is-new");
    }
  }, 1000);
  render();
  return () => {
    off();
    clearInterval(ticker);
  };
}
