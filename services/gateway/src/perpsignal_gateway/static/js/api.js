// Talks to the gateway's own REST routes and WebSockets; nothing else is ever contacted.

const KEY_STORAGE = "perpsignal.apiKey";
const keyListeners = new Set();

export function getKey() {
  try {
    return localStorage.getItem(KEY_STORAGE) || "";
  } catch {
    return "";
  }
}

export function setKey(value) {
  const key = (value || "").trim();
  try {
    if (key) localStorage.setItem(KEY_STORAGE, key);
    else localStorage.removeItem(KEY_STORAGE);
  } catch {
    // storage disabled (private mode): the key lives for this page only
  }
  for (const fn of keyListeners) fn(key);
}

export function onKeyChange(fn) {
  keyListeners.add(fn);
  return () => keyListeners.delete(fn);
}

/** An HTTP error with the gateway's `{error: {code, message}}` body. */
export class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

const authListeners = new Set();
export function onAuthRequired(fn) {
  authListeners.add(fn);
}

export async function apiGet(path, params = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
  }
  const headers = { Accept: "application/json" };
  const key = getKey();
  if (key) headers["X-API-Key"] = key;
  let response;
  try {
    response = await fetch(url, { headers });
  } catch (err) {
    throw new ApiError(0, "network", "the gateway cannot be reached");
  }
  if (response.ok) return response.json();
  let code = "http_" + response.status;
  let message = response.statusText || "request failed";
  try {
    const body = await response.json();
    if (body && body.error) {
      code = body.error.code || code;
      message = body.error.message || message;
    }
  } catch {
    // not JSON: keep the status text
  }
  if (response.status === 401) for (const fn of authListeners) fn();
  throw new ApiError(response.status, code, message);
}

export async function apiText(path) {
  const response = await fetch(new URL(path, location.origin));
  if (!response.ok) throw new ApiError(response.status, "http_" + response.status, "failed");
  return response.text();
}

/**
 * Fetch a short-lived, single-use WebSocket ticket with the key in the header.
 * Browsers cannot set headers on a WebSocket; a ticket keeps the long-lived key
 * out of URLs (and so out of proxy and server logs).
 */
async function wsTicket() {
  const key = getKey();
  if (!key) return null;
  const response = await fetch(new URL("/ws/ticket", location.origin), {
    method: "POST",
    headers: { "X-API-Key": key, Accept: "application/json" },
  });
  if (response.status === 401) throw new ApiError(401, "unauthorized", "invalid key");
  if (!response.ok) throw new ApiError(response.status, "http_" + response.status, "no ticket");
  return (await response.json()).ticket;
}

// Close codes of a refused WebSocket: 4401 bad key or ticket, 4429 rate limited
const WS_UNAUTHORIZED = 4401;
const WS_RATE_LIMITED = 4429;

/**
 * A WebSocket that reconnects by itself with capped exponential backoff.
 * Each connection opens with a fresh ticket (`?ticket=`), never the key.
 */
export class Stream {
  constructor(path, params, { onMessage, onState, onOpen } = {}) {
    this.path = path;
    this.params = params || {};
    this.onMessage = onMessage || (() => {});
    this.onState = onState || (() => {});
    this.onOpen = onOpen || (() => {});
    this.ws = null;
    this.closed = false;
    this.attempt = 0;
    this.timer = null;
    this.watchdog = null;
    this.state = "connecting";
  }

  start() {
    this.closed = false;
    this._connect();
    return this;
  }

  stop() {
    this.closed = true;
    clearTimeout(this.timer);
    clearTimeout(this.watchdog);
    if (this.ws) this.ws.close(1000, "page closed");
    this.ws = null;
  }

  restart() {
    clearTimeout(this.timer);
    if (this.ws) {
      this.ws.onclose = null;
      this.ws.close(1000, "restart");
    }
    this.attempt = 0;
    this._connect();
  }

  _url(ticket) {
    const url = new URL(this.path, location.origin);
    url.protocol = location.protocol === "https:" ? "wss:" : "ws:";
    for (const [k, v] of Object.entries(this.params)) {
      if (v !== undefined && v !== null && v !== "") url.searchParams.set(k, v);
    }
    if (ticket) url.searchParams.set("ticket", ticket);
    return url;
  }

  _unauthorized() {
    this._setState("unauthorized");
    for (const fn of authListeners) fn();
  }

  _setState(state, detail) {
    this.state = state;
    this.onState(state, detail);
  }

  async _connect() {
    if (this.closed) return;
    const generation = (this.generation = (this.generation || 0) + 1);
    this._setState(this.attempt === 0 ? "connecting" : "reconnecting");
    let ticket;
    try {
      ticket = await wsTicket();
    } catch (err) {
      if (err.status === 401) this._unauthorized();
      else this._schedule();
      return;
    }
    // stopped, or restarted while the ticket was on its way: that newer attempt wins
    if (this.closed || generation !== this.generation) return;
    let ws;
    try {
      ws = new WebSocket(this._url(ticket));
    } catch {
      this._schedule();
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      this.attempt = 0;
      this._setState("live");
      this._feed();
      this.onOpen();
    };
    ws.onmessage = (ev) => {
      this._feed();
      let msg;
      try {
        msg = JSON.parse(ev.data);
      } catch {
        return;
      }
      if (msg.type !== "heartbeat") this.onMessage(msg);
    };
    ws.onclose = (ev) => {
      clearTimeout(this.watchdog);
      if (this.ws !== ws) return;
      this.ws = null;
      if (this.closed) return;
      if (ev.code === WS_UNAUTHORIZED || ev.code === 1008) {
        // missing or wrong key: retry once a key is entered
        this._unauthorized();
        return;
      }
      // rate limited: wait out most of the window rather than hammering it
      this._schedule(ev.code === WS_RATE_LIMITED ? 30000 : undefined);
    };
  }

  // The gateway sends a heartbeat every 15 s: silence for 40 s means a dead connection
  _feed() {
    clearTimeout(this.watchdog);
    this.watchdog = setTimeout(() => {
      if (this.ws) this.ws.close(4000, "no heartbeat");
    }, 40000);
  }

  _schedule(minDelay = 0) {
    const delay = Math.max(minDelay, Math.min(5000, 500 * 2 ** this.attempt));
    this.attempt += 1;
    this._setState("down", { retryInMs: delay });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this._connect(), delay);
  }
}
