// Banners above every page: a replay demo (what data, what speed) and data sources that are
// degraded or down (which, since when, why), from GET /ui/status every few seconds.

import { apiGet } from "./api.js";

const POLL_MS = 5000;

function since(iso) {
  const at = new Date(iso);
  if (Number.isNaN(at.getTime())) return iso;
  const mins = Math.max(0, Math.round((Date.now() - at.getTime()) / 60000));
  const clock = at.toISOString().slice(11, 16) + " UTC";
  return mins < 1 ? `${clock} (just now)` : `${clock} (${mins} min ago)`;
}

function banner(kind, title, text) {
  const el = document.createElement("div");
  el.className = `banner banner-${kind}`;
  el.dataset.banner = kind;
  const strong = document.createElement("strong");
  strong.textContent = title;
  el.append(strong, " ", text);
  return el;
}

export function render(box, status) {
  const items = [];
  if (status.demo) {
    items.push(banner("demo", "Replay demo:", status.demo.message));
  }
  for (const src of status.sources || []) {
    const reason = src.reason ? ` — ${src.reason}` : "";
    items.push(
      banner(
        "outage",
        `Data source ${src.name} is ${src.state}`,
        `since ${since(src.since)}${reason}. Signals that need it are stale or incomplete.`,
      ),
    );
  }
  box.replaceChildren(...items);
  box.hidden = items.length === 0;
}

async function poll(box) {
  try {
    render(box, await apiGet("/ui/status"));
  } catch {
    // no key yet or the gateway is away: the connection indicator says so already
  }
  setTimeout(() => poll(box), POLL_MS);
}

const box = document.getElementById("banners");
if (box) poll(box);
