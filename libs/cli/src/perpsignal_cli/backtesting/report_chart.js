// report.html's price chart (see backtesting/chart.py); runs after the inlined library,
// which binds `LightweightCharts`. Reads the JSON of #price-chart-data.
const data = JSON.parse(document.getElementById("price-chart-data").textContent);
const box = document.getElementById("price-chart");
const legend = document.getElementById("price-chart-legend");
const {createChart, CandlestickSeries, LineSeries, LineStyle, createSeriesMarkers} = LightweightCharts;
const chart = createChart(box, {
  height: 460,
  layout: {background: {color: "#ffffff"}, textColor: "#222"},
  // 5,000 bars must fit the page's width when zoomed out
  timeScale: {timeVisible: true, secondsVisible: false, minBarSpacing: 0.05},
  crosshair: {mode: 0},
});
const priceFormat = {type: "price", precision: data.precision, minMove: 10 ** -data.precision};
const candles = chart.addSeries(CandlestickSeries, {
  priceFormat, upColor: "#26a69a", downColor: "#ef5350", borderVisible: false,
  wickUpColor: "#26a69a", wickDownColor: "#ef5350",
});
candles.setData(data.candles.map(([time, open, high, low, close]) => ({time, open, high, low, close})));
const faint = (v) => v === "SKIP" || v === "WAIT";
const markers = data.markers.map((m) => ({
  time: m.time,
  position: m.dir === "LONG" ? "belowBar" : "aboveBar",
  shape: m.dir === "LONG" ? "arrowUp" : "arrowDown",
  color: m.dir === "LONG" ? (faint(m.verdict) ? "#9ccfc9" : "#1b7f3b") : (faint(m.verdict) ? "#f3b1b0" : "#c62828"),
  // full words for the verdicts that trade; WAIT / SKIP as one letter (they crowd the chart)
  text: faint(m.verdict) ? m.verdict[0] : m.verdict,
}));
createSeriesMarkers(candles, markers);
const line = (color) => chart.addSeries(LineSeries, {
  color, priceFormat, lineWidth: 2, lineStyle: LineStyle.Dashed, priceLineVisible: false,
  crosshairMarkerVisible: false, lastValueVisible: true,
});
const stopLine = line("#c62828");
const targetLine = line("#1b7f3b");
const entryLine = line("#555555");
const times = data.candles.map((c) => c[0]);
const longest = Math.max(0, ...data.horizons.map((h) => ({"1h": 3600, "4h": 14400, "24h": 86400})[h] || 0));
const lastTime = times.length ? times[times.length - 1] : 0;
function barAtOrBefore(t) {
  let lo = 0, hi = times.length - 1;
  while (lo < hi) { const mid = (lo + hi + 1) >> 1; if (times[mid] <= t) lo = mid; else hi = mid - 1; }
  return times[lo];
}
function markerAtOrBefore(t) {
  let lo = 0, hi = data.markers.length;  // first marker after t
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (data.markers[mid].time <= t) lo = mid + 1; else hi = mid;
  }
  return lo ? data.markers[lo - 1] : null;
}
const pct = (x) => (x === null || x === undefined ? "-" : `${x >= 0 ? "+" : ""}${x.toFixed(2)} %`);
let pinned = null;
const state = {selected: null, planLines: 0};
function select(m) {
  state.selected = m;
  const segment = (series, price) => {
    if (!m || price === null || price === undefined) { series.setData([]); return 0; }
    const end = barAtOrBefore(Math.min(lastTime, m.time + Math.max(longest, data.candle_seconds)));
    series.setData(end > m.time ? [{time: m.time, value: price}, {time: end, value: price}] : [{time: m.time, value: price}]);
    return 1;
  };
  state.planLines = segment(stopLine, m && m.sl) + segment(targetLine, m && m.tp) + segment(entryLine, m && m.entry);
  if (!m) { legend.textContent = "Hover a bar to see the latest signal's plan; click to pin it."; return; }
  const outs = Object.entries(m.outcomes).map(([h, o]) => `${h}: ${pct(o.pnl)} gross, ${pct(o.net)} net, ${o.result}`).join(" · ");
  legend.textContent = `${m.at} · ${m.dir} · ${m.verdict} · score ${m.score} · entry ${m.entry}` +
    ` · stop ${m.sl ?? "-"} · target ${m.tp ?? "-"} · R:R ${m.rr ?? "-"}` +
    (m.plan ? ` · ${m.plan}` : "") + (outs ? ` · measured ${outs}` : " · not measured");
}
chart.subscribeCrosshairMove((p) => { if (!pinned) select(p.time === undefined ? null : markerAtOrBefore(p.time)); });
chart.subscribeClick((p) => { pinned = p.time === undefined ? null : markerAtOrBefore(p.time); select(pinned); });
select(data.markers.length ? data.markers[data.markers.length - 1] : null);
chart.timeScale().fitContent();
window.priceChart = {chart, state, markers: markers.length, candles: data.candles.length, select, data};
