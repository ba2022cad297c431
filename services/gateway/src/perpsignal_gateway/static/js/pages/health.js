// Health: the gateway's own readiness and WebSocket clients, then every other service as the
// gateway sees it through GET /health/services (readiness, consumer lag, DLQ, handled/error
// counts, vendor circuits), one table per service.

import { apiGet, apiText } from "../api.js";
import { badge, errorBox, fmtNum, fmtTime, h } from "../dom.js";

const REFRESH_MS = 5000;

/** Parse Prometheus text exposition into [{name, labels, value}] (no HELP/TYPE lines). */
export function parseMetrics(text) {
  const out = [];
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = line.match(/^([a-zA-Z_:][\w:]*)(\{(.*)\})?\s+(\S+)/);
    if (!m) continue;
    const labels = {};
    for (const lm of (m[3] || "").matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) labels[lm[1]] = lm[2];
    out.push({ name: m[1], labels, value: Number(m[4]) });
  }
  return out;
}

function table(id, caption, head, rows, empty) {
  if (!rows.length) return h("p", { class: "hint", id }, empty);
  return h("div", { class: "table-wrap" }, h("table", { class: "data compact", id },
    h("caption", {}, caption),
    h("thead", {}, h("tr", {}, head.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c, i) => (i === 0 ? h("th", { scope: "row" }, c) : h("td", {}, c))))))));
}

async function readiness() {
  const response = await fetch("/readyz");
  const body = await response.json();
  return { httpStatus: response.status, ...body };
}

/** `ready` is true, false or "unreachable" in GET /health/services. */
function readyBadge(ready) {
  if (ready === true) return badge("ready", "ok");
  if (ready === false) return badge("not ready", "wait");
  return badge("unreachable", "bad");
}

const CIRCUIT_KIND = { closed: "ok", "half-open": "wait", open: "bad" };

function count(v, bad) {
  if (v === null || v === undefined) return "—";
  const text = fmtNum(v, 0);
  return bad && v > 0 ? h("span", { class: "svc-alert" }, text) : text;
}

function serviceCard(svc) {
  const slug = String(svc.name).toLowerCase().replace(/[^a-z0-9_-]/g, "-");
  const unreachable = svc.ready === "unreachable";
  const titleId = `svc-${slug}-title`;
  const rows = [
    ["Consumer lag (records)", count(svc.consumerLag, false)],
    ["Dead-lettered messages", count(svc.dlqMessages, true)],
    ["Messages handled", count(svc.handled, false)],
    ["Handler errors", count(svc.errors, true)],
  ];
  const circuits = svc.circuits || [];
  return h("section", {
    class: `card svc-card${unreachable ? " svc-unreachable" : ""}`,
    "aria-labelledby": titleId,
    dataset: { service: svc.name, ready: String(svc.ready) },
  },
  h("h4", { id: titleId, class: "svc-title" }, svc.name, " ", readyBadge(svc.ready)),
  unreachable
    ? h("p", { class: "error svc-problem" }, `Unreachable from the gateway${svc.problem ? `: ${svc.problem}` : ""}. Its figures are unknown.`)
    : svc.problem ? h("p", { class: "hint" }, svc.problem) : null,
  table(`svc-${slug}`, `${svc.name}: consumer and DLQ counts`, ["Figure", "Value"], rows, ""),
  circuits.length
    ? table(`circuits-${slug}`, `${svc.name}: vendor circuits`, ["Vendor", "Circuit"],
      circuits.map((c) => [c.vendor, badge(c.state, CIRCUIT_KIND[c.state] || "neutral")]), "")
    : null);
}

function platformSection(platform, error) {
  let content;
  if (error) {
    content = [errorBox(error)];
  } else if (!platform) {
    content = [h("p", { class: "loading" }, "Loading…")];
  } else if (!platform.services.length) {
    content = [h("p", { class: "hint", id: "platform-empty" }, "No services configured on the gateway: set GATEWAY_SERVICE_URLS (perpsignal up sets it to the local ops ports).")];
  } else {
    const down = platform.services.filter((s) => s.ready !== true).length;
    content = [
      h("p", { class: "hint", id: "platform-summary" },
        `${platform.services.length - down} of ${platform.services.length} ready · checked ${fmtTime(platform.checkedAt)}`),
      h("div", { class: "svc-grid", id: "platform-services" }, platform.services.map(serviceCard)),
    ];
  }
  // data sources that are degraded or down (source.status events), whatever the services say
  const sources = (platform && platform.sources) || [];
  return h("section", { class: "card", "aria-labelledby": "platform-title" },
    h("h3", { id: "platform-title" }, "Platform services"),
    ...sources.map((src) =>
      h("p", { class: "svc-alert", dataset: { source: src.name } },
        `Data source ${src.name} is ${src.state} since ${fmtTime(src.since)}${src.reason ? `: ${src.reason}` : ""}`)),
    ...content);
}

export function mount(main) {
  let disposed = false;
  const body = h("div", {}, h("p", { class: "loading" }, "Loading…"));
  main.append(
    h("div", { class: "page-head" }, h("h2", {}, "Health"), h("p", { class: "hint" }, `Refreshes every ${REFRESH_MS / 1000} s.`)),
    body,
  );

  async function refresh() {
    const errors = [];
    let metricsElsewhere = false;
    const [ready, metrics, platform] = await Promise.all([
      readiness().catch(() => {
        errors.push(errorBox(new Error("the gateway does not answer /readyz")));
        return null;
      }),
      apiText("/metrics").then(parseMetrics).catch((err) => {
        // 404: the deployment serves metrics on the gateway's ops port (GATEWAY_OPS_PORT),
        // for Prometheus only, not to the internet: nothing is wrong
        if (err && err.status === 404) metricsElsewhere = true;
        else errors.push(errorBox(new Error("the gateway does not answer /metrics")));
        return [];
      }),
      apiGet("/health/services").then((p) => ({ p }), (err) => ({ err })),
    ]);
    if (disposed) return;
    const wsRows = metrics.filter((m) => m.name === "perpsignal_gateway_ws_clients").map((m) => [m.labels.stream, fmtNum(m.value, 0)]);
    body.replaceChildren(
      ...errors,
      h("section", { class: "card", "aria-labelledby": "svc-title" },
        h("h3", { id: "svc-title" }, "Gateway"),
        table("services-table", "Readiness and read-model lag", ["Service", "Status", "Caught up", "Records read", "Lag (records)"],
          ready ? [["gateway", badge(ready.status, !ready.caughtUp ? "bad" : ready.status === "degraded" ? "wait" : "ok"), ready.caughtUp ? "yes" : "no", fmtNum(ready.recordsRead, 0), fmtNum(ready.lag, 0)]] : [],
          "Gateway readiness unknown.")),
      platformSection(platform.p, platform.err),
      h("section", { class: "card", "aria-labelledby": "ws-title" },
        h("h3", { id: "ws-title" }, "WebSocket clients"),
        table("ws-table", "Connected clients per stream", ["Stream", "Clients"], wsRows,
          metricsElsewhere ? "Served on the gateway's ops port (Prometheus) in this deployment, not here." : "No WebSocket metrics.")),
    );
  }

  refresh();
  const timer = setInterval(refresh, REFRESH_MS);
  return () => {
    disposed = true;
    clearInterval(timer);
  };
}
