// Health: what the gateway can tell about itself (readiness, read-model lag, its metrics).

import { apiText } from "../api.js";
import { badge, errorBox, fmtNum, h } from "../dom.js";

const REFRESH_MS = 5000;
const CIRCUIT = { 0: "closed", 1: "half-open", 2: "open" };

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

export function mount(main) {
  let disposed = false;
  const body = h("div", {}, h("p", { class: "loading" }, "Loading…"));
  main.append(
    h("div", { class: "page-head" }, h("h2", {}, "Health"), h("p", { class: "hint" }, `Refreshes every ${REFRESH_MS / 1000} s.`)),
    body,
  );

  async function refresh() {
    let ready;
    let metrics = [];
    const errors = [];
    try {
      ready = await readiness();
    } catch (err) {
      errors.push(errorBox(new Error("the gateway does not answer /readyz")));
    }
    try {
      metrics = parseMetrics(await apiText("/metrics"));
    } catch {
      errors.push(errorBox(new Error("the gateway does not answer /metrics")));
    }
    if (disposed) return;
    const of = (name) => metrics.filter((m) => m.name === name);
    const wsRows = of("gateway_ws_clients").map((m) => [m.labels.stream, fmtNum(m.value, 0)]);
    const circuitRows = of("perpsignal_vendor_circuit_state").map((m) => [m.labels.vendor, badge(CIRCUIT[m.value] || String(m.value), CIRCUIT[m.value] === "closed" ? "ok" : "bad")]);
    const dlqRows = of("perpsignal_dlq_messages_total").map((m) => [m.labels.service, m.labels.topic, m.labels.error_type, fmtNum(m.value, 0)]);
    const lagRows = of("perpsignal_consumer_lag_records").map((m) => [m.labels.service, m.labels.topic, m.labels.partition, fmtNum(m.value, 0)]);
    body.replaceChildren(
      ...errors,
      h("section", { class: "card", "aria-labelledby": "svc-title" },
        h("h3", { id: "svc-title" }, "Services"),
        table("services-table", "Readiness and read-model lag", ["Service", "Status", "Caught up", "Records read", "Lag (records)"],
          ready ? [["gateway", badge(ready.status, ready.caughtUp ? "ok" : "bad"), ready.caughtUp ? "yes" : "no", fmtNum(ready.recordsRead, 0), fmtNum(ready.lag, 0)]] : [],
          "Gateway readiness unknown."),
        h("p", { class: "hint" }, "The gateway does not yet report the other services' readiness; see each service's ops port (/readyz, /metrics) or Grafana.")),
      h("section", { class: "card", "aria-labelledby": "ws-title" },
        h("h3", { id: "ws-title" }, "WebSocket clients"),
        table("ws-table", "Connected clients per stream", ["Stream", "Clients"], wsRows, "No WebSocket metrics.")),
      h("section", { class: "card", "aria-labelledby": "circ-title" },
        h("h3", { id: "circ-title" }, "Vendor circuits"),
        table("circuit-table", "Circuit state per vendor", ["Vendor", "State"], circuitRows, "No vendor circuit has reported in this process yet.")),
      h("section", { class: "card", "aria-labelledby": "dlq-title" },
        h("h3", { id: "dlq-title" }, "Dead-letter queues and consumer lag"),
        table("dlq-table", "Messages sent to a DLQ", ["Service", "Topic", "Error", "Messages"], dlqRows, "No dead-lettered messages reported by this process."),
        table("lag-table", "Consumer lag", ["Service", "Topic", "Partition", "Lag"], lagRows, "No consumer-group lag reported by this process.")),
    );
  }

  refresh();
  const timer = setInterval(refresh, REFRESH_MS);
  return () => {
    disposed = true;
    clearInterval(timer);
  };
}
