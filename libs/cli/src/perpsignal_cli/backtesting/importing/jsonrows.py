"""JSON bodies as rows: a list of objects or arrays, a venue's envelope, column arrays,
pandas' shapes, recorded stream messages (Binance forceOrder, Bybit and OKX topics)."""

from __future__ import annotations

from typing import Any

from perpsignal_cli.backtesting.importing.base import HistoryFormatError, Table


def _unwrap(body: Any) -> Any:
    """Return the rows of a venue envelope (Binance/OKX/Coinglass `data`, Bybit `result`).

    Also the one list of rows an envelope holds under another name (Kraken Futures' and
    Coinbase's `candles`), and rows zipped from column arrays of one length (Deribit's chart
    data: `ticks`, `open`, ... side by side).
    """
    for _ in range(3):
        if not isinstance(body, dict):
            return body
        columns, data = body.get("columns"), body.get("data")
        if isinstance(columns, list) and isinstance(data, list):  # pandas orient="split"
            return [dict(zip(columns, r, strict=False)) for r in data if isinstance(r, list)]
        inner = list(body.values())
        if len(inner) >= 2 and all(isinstance(v, dict) and v for v in inner):
            # pandas' default orient="columns": {column: {index: value}}, the index kept
            keys = list(inner[0])
            if all(list(v) == keys for v in inner):
                return [{"index": k, **{c: body[c][k] for c in body}} for k in keys]
        # any spelling: CryptoCompare's `{"Data": {"Data": [...]}}`
        named = {str(k).lower(): v for k, v in body.items()}
        for key in ("data", "result", "list", "rows"):
            if key in named and isinstance(named[key], list | dict):
                body = named[key]
                break
        else:
            lists = {k: v for k, v in body.items() if isinstance(v, list) and v}
            rows = [v for v in lists.values() if isinstance(v[0], dict | list)]
            if len(rows) == 1:
                body = rows[0]
                continue
            if len(lists) >= 2 and not rows and len({len(v) for v in lists.values()}) == 1:
                columns = list(lists.values())  # one length (checked): strict holds
                return [dict(zip(lists, vs, strict=True)) for vs in zip(*columns, strict=True)]
            return body
    return body


_BINANCE_ORDER_KEYS: dict[str, str] = {
    "s": "symbol",
    "S": "side",
    "o": "order_type",
    "q": "original_quantity",
}


def _event_payload(row: dict[str, Any]) -> dict[str, Any]:
    """Return a Binance stream event's payload beside its header fields: `forceOrder`
    messages (`{"e": "forceOrder", "E": ..., "o": {...}}`) as recorded from the stream.

    Bybit's liquidations (`allLiquidation` items `{T, s, S, v, p}`, the older `liquidation`
    topic's `{updatedTime, symbol, side, size, price}`) name the liquidated *position*'s
    side: Buy is a long forced out, where Binance's SELL order is. Their side is given here
    as the position (`liquidated_side`), so it is never read with Binance's meaning.
    """
    inner = row.get("o")
    if "e" in row and isinstance(inner, dict):
        # its one-letter `s` and `S` would read alike once normalised: named here
        named = {_BINANCE_ORDER_KEYS.get(str(k), str(k)): v for k, v in inner.items()}
        return {**{k: v for k, v in row.items() if k != "o"}, **named}
    if {"T", "s", "S", "v", "p"} <= row.keys():  # Bybit allLiquidation
        return {
            "time": row["T"],
            "symbol": row["s"],
            "liquidated_side": _BYBIT_POSITION.get(str(row["S"]).lower(), row["S"]),
            "quantity": row["v"],
            "price": row["p"],
        }
    if {"updatedTime", "symbol", "side", "size", "price"} <= row.keys():  # Bybit liquidation
        rest = {k: v for k, v in row.items() if k not in ("updatedTime", "side")}
        side = _BYBIT_POSITION.get(str(row["side"]).lower(), row["side"])
        return {"time": row["updatedTime"], "liquidated_side": side, **rest}
    return row


_BYBIT_POSITION = {"buy": "LONG", "sell": "SHORT"}


def _stream_items(body: list[Any]) -> list[Any]:
    """Return the items of recorded stream messages (`{"topic": ..., "data": [...]}` per
    line, Bybit's and OKX's shape), or `body` when it is not such a recording."""
    if not all(isinstance(m, dict) and ("topic" in m or "arg" in m) for m in body):
        return body
    items: list[Any] = []
    for m in body:
        data = m.get("data")
        items += data if isinstance(data, list) else [data] if isinstance(data, dict) else []
    return items or body


# what venues' envelopes say when all went well (Bybit retCode 0, OKX "0", Bitget "00000",
# KuCoin "200000")
_OK_CODES = {"0", "00000", "200000", "200"}


def _api_error(body: Any) -> str | None:
    """Return the venue's own error message when `body` is an error answer saved as the
    history (Bybit `retCode`/`retMsg`, OKX/Bitget/KuCoin `code`/`msg`, JSON-RPC and BitMEX
    `error`, Kraken's `error` list, Kraken Futures' `result: "error"`, Coinbase `message`)."""
    if not isinstance(body, dict):
        return None
    for code_key, msg_key in (("retCode", "retMsg"), ("code", "msg"), ("code", "message")):
        code = body.get(code_key)
        if code is not None and str(code) not in _OK_CODES and body.get(msg_key):
            return f"{body[msg_key]} ({code_key} {code})"
    error = body.get("error")
    if isinstance(error, dict) and (error.get("message") or error.get("msg")):
        text = error.get("message") or error.get("msg")
        return f"{text}" + (f" (code {error['code']})" if "code" in error else "")
    if isinstance(error, list) and error:  # Kraken spot: a list of texts
        return "; ".join(map(str, error))
    if isinstance(error, str) and error:
        return error
    if set(body) <= {"message", "error", "error_details", "status"} and body.get("message"):
        return str(body["message"])  # Coinbase
    return None


def _is_empty(body: Any) -> bool:
    """Return True for an answer that holds rows, none of them: `[]`, an envelope of an
    empty list, Deribit's `status: no_data` with empty column arrays."""
    if isinstance(body, list):
        return not body
    if not isinstance(body, dict):
        return False
    lists = [v for v in body.values() if isinstance(v, list)]
    inner = [v for v in body.values() if isinstance(v, dict)]
    if lists:
        return not any(lists)
    return any(_is_empty(v) for v in inner)


# the envelope fields that describe every row: Bybit v5's `result.category` (`inverse`:
# amounts in USD contracts) and `result.symbol` (the market, which its rows do not repeat)
_ENVELOPE_KEYS = ("category", "symbol")


def _envelope(body: Any) -> dict[str, str]:
    """Return the `_ENVELOPE_KEYS` texts of the envelopes around the rows (inner wins)."""
    out: dict[str, str] = {}
    for _ in range(3):
        if not isinstance(body, dict):
            break
        for key, value in body.items():
            if str(key).lower() in _ENVELOPE_KEYS and isinstance(value, str) and value:
                out[str(key).lower()] = value
        named = {str(k).lower(): v for k, v in body.items()}
        body = next((named[k] for k in ("data", "result") if isinstance(named.get(k), dict)), None)
    return out


def _json_table(body: Any) -> Table:
    raw, body = body, _unwrap(body)
    if not isinstance(body, list) or not body:
        error = _api_error(raw)
        if error is not None:
            raise HistoryFormatError(
                f"an error answer of the venue's API, not history: {error}; fetch it again"
            )
        if _is_empty(raw):
            raise HistoryFormatError(
                "no rows: the answer is empty (a time range the venue has no history for?)"
            )
        seen = f" (keys seen: {', '.join(map(str, body))})" if isinstance(body, dict) else ""
        raise HistoryFormatError(
            f"JSON without a list of rows, an envelope holding one or column arrays{seen}"
        )
    body = _stream_items(body)
    if all(isinstance(r, dict) for r in body):
        body = [_event_payload(r) for r in body]
        header: list[str] = []
        for r in body:
            header += [k for k in r if k not in header]
        rows = [[r.get(k) for k in header] for r in body]
        return Table(header, rows, "JSON", envelope=_envelope(raw))
    if all(isinstance(r, list) for r in body):
        return Table(None, body, "JSON", envelope=_envelope(raw))
    raise HistoryFormatError("JSON rows are neither all objects nor all arrays")
