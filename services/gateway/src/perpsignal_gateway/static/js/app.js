// Shell: API key panel, hash router, the app-wide /ws/signals stream and its indicator.

import { Stream, apiGet, getKey, onAuthRequired, setKey } from "./api.js";

/** Latest judged signal per symbol, filled from GET /signals and kept live by /ws/signals. */
export const signals = {
  bySymbol: new Map(),
  fresh: new Map(), // symbol -> time it last changed live (for highlighting)
  listeners: new Set(),
  loaded: false,
  error: null,
  put(sig, live) {
    const old = this.bySymbol.get(sig.symbol);
    if (old && Date.parse(old.timestamp) > Date.parse(sig.timestamp)) return;
    this.bySymbol.set(sig.symbol, sig);
    if (live) this.fresh.set(sig.symbol, Date.now());
    this.emit({ kind: "signal", signal: sig, live });
  },
  emit(change) {
    for (const fn of this.listeners) fn(change);
  },
  subscribe(fn) {
    this.listeners.add(fn);
    return () => this.listeners.delete(fn);
  },
};

async function loadSignals() {
  try {
    const body = await apiGet("/signals", { limit: 500 });
    for (const sig of body.signals) signals.put(sig, false);
    signals.loaded = true;
    signals.error = null;
  } catch (err) {
    signals.error = err;
  }
  signals.emit({ kind: "reload" });
}

const CONN_TEXT = {
  connecting: "Connecting…",
  reconnecting: "Reconnecting…",
  live: "Live",
  down: "Disconnected",
  unauthorized: "API key needed",
};

function showConnection(state, detail) {
  const conn = document.getElementById("conn");
  conn.dataset.state = state;
  let text = CONN_TEXT[state] || state;
  if (state === "down" && detail) text += ` — retrying in ${Math.ceil(detail.retryInMs / 1000)} s`;
  conn.querySelector(".conn-text").textContent = text;
  conn.title = `Signal stream: ${text}`;
}

let signalStream = null;

// A gateway that just (re)started accepts sockets before its read model has caught up with
// the topics, and replays no catch-up events to sockets: wait for /readyz, then refetch.
async function refetchWhenReady() {
  const deadline = Date.now() + 60000;
  while (Date.now() < deadline) {
    try {
      const response = await fetch("/readyz", { cache: "no-store" });
      if (response.ok) break;
    } catch {
      // the gateway went away again; the stream's own reconnect handles that
    }
    await new Promise((resolve) => setTimeout(resolve, 500));
  }
  await loadSignals();
}

function startSignalStream() {
  signalStream = new Stream("/ws/signals", {}, {
    onState: showConnection,
    // after every (re)connect, refetch so signals published while down are not missed
    onOpen: refetchWhenReady,
    onMessage: (msg) => {
      if (msg.type === "signal" && msg.data) signals.put(msg.data, true);
    },
  }).start();
}

// API key ---------------------------------------------------------------------------------------

function setupKeyPanel() {
  const panel = document.getElementById("key-panel");
  const toggle = document.getElementById("key-toggle");
  const input = document.getElementById("api-key");
  const message = document.getElementById("key-message");
  const open = (why) => {
    panel.hidden = false;
    toggle.setAttribute("aria-expanded", "true");
    message.textContent = why || "";
    input.value = getKey();
    input.focus();
  };
  const close = () => {
    panel.hidden = true;
    toggle.setAttribute("aria-expanded", "false");
  };
  toggle.addEventListener("click", () => (panel.hidden ? open() : close()));
  document.getElementById("key-form").addEventListener("submit", (ev) => {
    ev.preventDefault();
    setKey(input.value);
    close();
    signalStream.restart();
    route();
  });
  document.getElementById("key-clear").addEventListener("click", () => {
    setKey("");
    input.value = "";
    message.textContent = "Key forgotten.";
  });
  panel.addEventListener("keydown", (ev) => {
    if (ev.key === "Escape") {
      close();
      toggle.focus();
    }
  });
  onAuthRequired(() => {
    if (panel.hidden) open(getKey() ? "The saved key was refused." : "This gateway needs an API key.");
  });
}

// Router ----------------------------------------------------------------------------------------

const PAGES = {
  live: () => import("./pages/live.js"),
  symbol: () => import("./pages/symbol.js"),
  accuracy: () => import("./pages/accuracy.js"),
  discovery: () => import("./pages/discovery.js"),
  health: () => import("./pages/health.js"),
};

let unmount = null;
let routeSeq = 0;

async function route() {
  const seq = ++routeSeq;
  const [name = "live", ...rest] = location.hash.replace(/^#\/?/, "").split("/");
  const page = PAGES[name] ? name : "live";
  for (const a of document.querySelectorAll(".nav a")) {
    if (a.dataset.page === page) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  if (unmount) {
    unmount();
    unmount = null;
  }
  const main = document.getElementById("main");
  const module = await PAGES[page]();
  if (seq !== routeSeq) return;
  main.replaceChildren();
  main.dataset.page = page;
  const params = rest.map(decodeURIComponent);
  unmount = module.mount(main, params, { signals }) || null;
}

function boot() {
  setupKeyPanel();
  loadSignals();
  startSignalStream();
  window.addEventListener("hashchange", () => {
    route();
    document.getElementById("main").focus({ preventScroll: true });
  });
  route();
}

boot();
