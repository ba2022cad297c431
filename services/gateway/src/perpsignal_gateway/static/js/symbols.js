// Symbols as the gateway reads them (perpsignal_gateway/symbols.py, the event contract's rule):
// letters or digits of any script, _ . : / + $ -, at least one of them no decimal digit; no
// invisible joiner, combining mark or variation selector (each makes a look-alike).

export const MAX_SYMBOL_LENGTH = 64;
const SYMBOL = /^[\p{L}\p{N}_.:\/+$-]*[\p{L}\p{Nl}\p{No}][\p{L}\p{N}_.:\/+$-]*$/u;

/** Upper-case a-z only: "ſol".toUpperCase() is "SOL" and "ß" becomes "SS" (another symbol). */
export function asciiUpper(text) {
  return text.replace(/[a-z]+/g, (m) => m.toUpperCase());
}

/** True when `text` is a symbol the gateway accepts (length in code points, as Python's). */
export function isSymbol(text) {
  return [...text].length <= MAX_SYMBOL_LENGTH && SYMBOL.test(text);
}

const PAIR = /^[\p{L}\p{N}]{1,20}(?:[-\/_][\p{L}\p{N}]{2,10})?$/u;

/** The symbol a user typed ("btc", "BTC/USDT", "币安人生"), as the gateway's normalize_symbol
 * names it; null when it is none. */
export function typedSymbol(text) {
  const s = asciiUpper(text.trim());
  if (!isSymbol(s)) return null;
  if (!PAIR.test(s)) return s; // BTC-USDT-SWAP, BTC.P: only ever exactly what the topics carry
  const joined = s.replace(/[-\/_]/, "");
  const quoted = /(USDT|USDC|BUSD|FDUSD)$/.test(joined) && [...joined].length > 4;
  return quoted ? joined : `${joined}USDT`;
}

/** The dashboard route of a symbol's page (the symbol percent-encoded: "/" splits routes). */
export function symbolHref(symbol) {
  return `#/symbol/${encodeURIComponent(symbol)}`;
}
