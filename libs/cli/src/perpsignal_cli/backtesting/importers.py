"""Importers: history files as venues and exporters publish them -> typed market events.

What a file may look like is declared as data, once, in `KINDS`: per input kind (candles,
funding, open interest, long/short, fear & greed, liquidations, social, taker flow) the canonical
fields, every column name that means each field (Binance, OKX, Bybit, Coinglass v4, CCXT,
freqtrade, Binance's public data files, LunarCrush), the percent columns to scale, and the
header-less row layouts (arrays by position). Names are compared normalised (lower case,
letters and digits only), so `open_time`, `openTime` and `Open Time` are one name, and
`Open Interest (USD)` is `open_interest_usd`; a column spelled exactly like a name wins over
one that only normalises to it (Hyperliquid's `t` is the open time, its `T` the close time).
Files may be:

* CSV, with or without a header;
* JSON: a list of objects, a list of arrays, or a venue envelope (`{"data": [...]}` of
  Binance/OKX/Coinglass, `{"result": {"list": [...]}}` of Bybit, any object holding one list
  of rows such as Kraken Futures' `candles`), or column arrays (Deribit); gzip-compressed JSON too
  (freqtrade's `.json.gz`), and JSON lines;
* feather (Arrow IPC v1/v2, LZ4/ZSTD compressed too; freqtrade's default) and parquet
  (freqtrade's other format, and most research exporters'), read with pyarrow.

Times may be epoch s/ms/us/ns (per value, by magnitude), ISO strings or spreadsheet dates
(slash dates day or month first as each file proves, or `--date-order` says: see
`_with_date_order`); everything becomes aware UTC. Anything else is covered by an explicit
mapping (`perpsignal backtest --columns close=c,time=ts`), and a file that matches no layout
fails naming the columns it has and the names accepted for each missing field. Event ids are
deterministic (`deterministic_id`); `observed_at` is when the value became known: a candle's
close time, a point's own time.

The code lives in `importing/`, one module per concern: `layouts` (the table above), `options`
(`--columns`, `--date-order`), `files` (which reader a file needs), `delimited` (CSV, read as
it goes), `jsonrows`, `columnar` (feather, parquet), `archives` (gzip, zip and the cap on
files read whole), `times`, `resolving` (fields to columns, one market's rows, a file's date
order), `candles` (the bar checks, aggregation, events) and `points` (the other kinds). This
module re-exports what callers use. The caps are read where they are defined: a test lowers
`importing.archives.MAX_UNPACKED_BYTES` or `importing.resolving.DATE_SCAN_ROWS`, not these
copies.
"""

from __future__ import annotations

from perpsignal_cli.backtesting.importing.archives import MAX_UNPACKED_BYTES
from perpsignal_cli.backtesting.importing.base import SOURCE, HistoryFormatError, Table, norm
from perpsignal_cli.backtesting.importing.candles import (
    CandleSeries,
    _plain_series,
    aggregate,
    candle_events,
    read_candles,
    timeframe_label,
)
from perpsignal_cli.backtesting.importing.columnar import _ARROW_SUFFIXES
from perpsignal_cli.backtesting.importing.delimited import MAX_LINE_CHARS, _csv_table
from perpsignal_cli.backtesting.importing.files import read_table
from perpsignal_cli.backtesting.importing.layouts import KINDS, LS_KINDS, Field, Kind, Layout
from perpsignal_cli.backtesting.importing.options import (
    DATE_ORDERS,
    ColumnMap,
    column_overrides,
    columns_checked_elsewhere,
    date_order,
    parse_column_map,
)
from perpsignal_cli.backtesting.importing.points import (
    describe,
    read_fear_greed,
    read_funding,
    read_liquidations,
    read_long_short,
    read_open_interest,
    read_social,
    read_taker_flow,
)
from perpsignal_cli.backtesting.importing.resolving import (
    DATE_SCAN_ROWS,
    Resolved,
    number,
    resolve,
    row_time,
    rows_date_order,
    same_symbol,
)
from perpsignal_cli.backtesting.importing.times import (
    ms_to_dt,
    parse_time_ms,
    timeframe_of,
    zone_note,
)

__all__ = [
    "DATE_ORDERS",
    "DATE_SCAN_ROWS",
    "KINDS",
    "LS_KINDS",
    "MAX_LINE_CHARS",
    "MAX_UNPACKED_BYTES",
    "SOURCE",
    "_ARROW_SUFFIXES",
    "CandleSeries",
    "ColumnMap",
    "Field",
    "HistoryFormatError",
    "Kind",
    "Layout",
    "Resolved",
    "Table",
    "_csv_table",
    "_plain_series",
    "aggregate",
    "candle_events",
    "column_overrides",
    "columns_checked_elsewhere",
    "date_order",
    "describe",
    "ms_to_dt",
    "norm",
    "number",
    "parse_column_map",
    "parse_time_ms",
    "read_candles",
    "read_fear_greed",
    "read_funding",
    "read_liquidations",
    "read_long_short",
    "read_open_interest",
    "read_social",
    "read_table",
    "read_taker_flow",
    "resolve",
    "row_time",
    "rows_date_order",
    "same_symbol",
    "timeframe_label",
    "timeframe_of",
    "zone_note",
]
