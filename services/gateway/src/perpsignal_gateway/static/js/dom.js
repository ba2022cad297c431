// DOM building without innerHTML (every value from the API is text, never markup) and formatting.

export function h(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") node.className = v;
    // through the CSSOM: the page's CSP blocks style attributes (no 'unsafe-inline'), not this
    else if (k === "style") node.style.cssText = String(v);
    else if (k === "dataset") Object.assign(node.dataset, v);
    else if (k.startsWith("on") && typeof v === "function") node.addEventListener(k.slice(2), v);
    else if (v === true) node.setAttribute(k, "");
    else node.setAttribute(k, String(v));
  }
  append(node, children);
  return node;
}

function append(node, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(node, child);
    else node.append(child instanceof Node ? child : String(child));
  }
}

const SVG_NS = "http://www.w3.org/2000/svg";
export function svg(tag, attrs = {}, ...children) {
  const node = document.createElementNS(SVG_NS, tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v !== undefined && v !== null) node.setAttribute(k, String(v));
  }
  for (const child of children) {
    if (child === undefined || child === null) continue;
    node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

export function isNum(v) {
  return typeof v === "number" && Number.isFinite(v);
}

/** Price with enough digits for coins worth fractions of a cent. */
export function fmtPrice(v) {
  if (!isNum(v)) return "—";
  const abs = Math.abs(v);
  const digits = abs >= 1000 ? 2 : abs >= 1 ? 4 : abs >= 0.01 ? 5 : 8;
  return v.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: digits });
}

export function fmtNum(v, digits = 1) {
  if (!isNum(v)) return "—";
  return v.toLocaleString("en-US", { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export function fmtPct(v, digits = 1) {
  return isNum(v) ? `${fmtNum(v, digits)} %` : "—";
}

export function fmtSignedPct(v, digits = 2) {
  if (!isNum(v)) return "—";
  return `${v > 0 ? "+" : ""}${fmtNum(v, digits)} %`;
}

export function fmtUsd(v) {
  if (!isNum(v)) return "—";
  return "$" + v.toLocaleString("en-US", { maximumFractionDigits: 0 });
}

export function fmtAge(iso, now = Date.now()) {
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return "—";
  let s = Math.max(0, Math.round((now - t) / 1000));
  if (s < 60) return `${s}s`;
  const m = Math.floor(s / 60);
  if (m < 60) return `${m}m ${s % 60}s`;
  const hrs = Math.floor(m / 60);
  if (hrs < 48) return `${hrs}h ${m % 60}m`;
  return `${Math.floor(hrs / 24)}d`;
}

export function fmtTime(iso) {
  const t = Date.parse(iso);
  if (!Number.isFinite(t)) return "—";
  return new Date(t).toISOString().replace("T", " ").slice(0, 19) + " UTC";
}

export function fmtInput(v) {
  if (isNum(v)) {
    if (Number.isInteger(v)) return String(v);
    return Math.abs(v) >= 1 ? v.toFixed(4).replace(/0+$/, "").replace(/\.$/, "") : v.toPrecision(4);
  }
  if (v === null || v === undefined) return "—";
  return String(v);
}

export function badge(text, kind) {
  return h("span", { class: `badge badge-${String(kind || text).toLowerCase()}` }, text);
}

export function errorBox(err) {
  const status = err && err.status ? ` (${err.status})` : "";
  return h("p", { class: "error", role: "alert" }, `${(err && err.message) || err}${status}`);
}

export function humanName(name) {
  return String(name).replaceAll("_", " ");
}
