// Discovery: MSS candidates with their three phases and tier, and the new-listings feed.

import { apiGet } from "../api.js";
import { symbolHref } from "../symbols.js";
import { badge, errorBox, fmtInput, fmtNum, fmtPrice, fmtSignedPct, fmtTime, fmtUsd, h, humanName } from "../dom.js";

const PHASES = [
  ["discovery", "Discovery"],
  ["socialMomentum", "Social momentum"],
  ["institutionalValidation", "Institutional validation"],
];

function phaseCell(phase, label) {
  const inputs = Object.entries(phase.inputs || {});
  return h(
    "td",
    { class: "phase" },
    h("div", { class: "mini-bar", role: "meter", "aria-valuemin": 0, "aria-valuemax": 100, "aria-valuenow": Math.round(phase.score), "aria-label": label },
      h("span", { style: `width:${Math.max(0, Math.min(100, phase.score))}%` })),
    h("span", { class: "num" }, fmtNum(phase.score, 0)),
    inputs.length || (phase.missing || []).length
      ? h("details", {}, h("summary", {}, "inputs"),
          h("dl", { class: "inputs" }, inputs.map(([k, v]) => [h("dt", {}, humanName(k)), h("dd", {}, fmtInput(v))])),
          (phase.missing || []).length ? h("p", { class: "hint" }, `missing: ${phase.missing.join(", ")}`) : null)
      : null,
  );
}

export function mount(main) {
  let disposed = false;
  const mss = h("section", { class: "card", "aria-labelledby": "mss-title" }, h("h3", { id: "mss-title" }, "MSS candidates"));
  const listings = h("section", { class: "card", "aria-labelledby": "lst-title" }, h("h3", { id: "lst-title" }, "New listings"));
  main.append(h("div", { class: "page-head" }, h("h2", {}, "Discovery")), mss, listings);

  apiGet("/mss", { limit: 100 })
    .then((body) => {
      if (disposed) return;
      mss.append(
        body.results.length
          ? h("div", { class: "table-wrap" }, h("table", { class: "data", id: "mss-table" },
              h("caption", { class: "visually-hidden" }, "Emerging coins by MSS score"),
              h("thead", {}, h("tr", {}, ["Coin", "MSS", "Tier", ...PHASES.map((p) => p[1]), "Perpetual", "Updated"].map((t, i) => h("th", { scope: "col", class: i === 1 ? "num" : "" }, t)))),
              h("tbody", {}, body.results.map((m) =>
                h("tr", { dataset: { coin: m.coin } },
                  h("th", { scope: "row" }, m.coin, m.name ? h("span", { class: "hint" }, ` ${m.name}`) : null),
                  h("td", { class: "num" }, fmtNum(m.mss, 1)),
                  h("td", {}, badge(m.tier, "tier")),
                  PHASES.map(([key, label]) => phaseCell(m[key], label)),
                  h("td", {}, m.binanceSymbol ? h("a", { href: symbolHref(m.binanceSymbol) }, m.binanceSymbol) : "—"),
                  h("td", {}, fmtTime(m.timestamp)),
                )))))
          : h("p", { class: "hint" }, "No MSS results yet."),
      );
    })
    .catch((err) => mss.append(errorBox(err)));

  apiGet("/listings/new", { limit: 100 })
    .then((body) => {
      if (disposed) return;
      listings.append(
        body.listings.length
          ? h("div", { class: "table-wrap" }, h("table", { class: "data", id: "listings-table" },
              h("caption", { class: "visually-hidden" }, "Newly listed perpetuals, newest first"),
              h("thead", {}, h("tr", {}, ["Symbol", "Listed", "Detected after", "Last price", "24h", "24h volume"].map((t, i) => h("th", { scope: "col", class: i > 1 ? "num" : "" }, t)))),
              h("tbody", {}, body.listings.map((l) =>
                h("tr", {},
                  h("th", { scope: "row" }, h("a", { href: symbolHref(l.symbol) }, l.symbol)),
                  h("td", {}, fmtTime(l.onboardAt)),
                  h("td", { class: "num" }, `${fmtNum(l.detectionLatencyS, 0)} s`),
                  h("td", { class: "num" }, fmtPrice(l.lastPrice)),
                  h("td", { class: "num" }, fmtSignedPct(l.priceChangePct24h)),
                  h("td", { class: "num" }, fmtUsd(l.quoteVolume24h)),
                )))))
          : h("p", { class: "hint" }, "No new listings detected."),
      );
    })
    .catch((err) => listings.append(errorBox(err)));

  return () => {
    disposed = true;
  };
}
