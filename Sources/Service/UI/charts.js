// charts.js: small SVG charts drawn by the dashboard itself (no library, no external request).
// Colours come from classes in app.css (no inline styles: the CSP forbids them).

const NS = "http://www.w3.org/2000/svg";

function el(name, attrs, text) {
  const node = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, String(v));
  if (text !== undefined) node.textContent = text;
  return node;
}

function ticks(lo, hi, count) {
  if (!(hi > lo)) return [lo];
  const raw = (hi - lo) / count, mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw) || raw;
  const out = [];
  for (let v = Math.ceil(lo / step) * step; v <= hi + step * 1e-9; v += step) out.push(+v.toPrecision(12));
  return out;
}

function fmt(v) {
  if (!Number.isFinite(v)) return "–";
  const a = Math.abs(v);
  return a !== 0 && (a < 0.01 || a >= 1e5) ? v.toExponential(1) : +v.toPrecision(3) + "";
}

/**
 * A line chart: `series` is [{ name, cls, points: [[x, y], …] }]. Returns the <figure>; call
 * `chart.update(series)` to redraw with more points. The SVG's `data-points` is the number of points.
 */
export function lineChart({ title, xLabel, yLabel, series, yRange }) {
  const figure = document.createElement("figure");
  figure.className = "chart";
  const caption = document.createElement("figcaption");
  caption.textContent = title;
  const W = 560, H = 260, L = 56, R = 12, T = 12, B = 44;
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", class: "chart-svg" });
  const legend = document.createElement("ul");
  legend.className = "legend";
  figure.append(caption, svg, legend);

  function draw(list) {
    svg.replaceChildren();
    const all = list.flatMap((s) => s.points).filter((p) => Number.isFinite(p[0]) && Number.isFinite(p[1]));
    svg.setAttribute("data-points", String(all.length));
    svg.setAttribute("aria-label", `${title}: ${list.map((s) => `${s.name} ${s.points.length} points` +
      (s.points.length ? `, last ${fmt(s.points[s.points.length - 1][1])}` : "")).join("; ")}`);
    let x0 = Math.min(...all.map((p) => p[0])), x1 = Math.max(...all.map((p) => p[0]));
    let y0 = yRange ? yRange[0] : Math.min(...all.map((p) => p[1])), y1 = yRange ? yRange[1] : Math.max(...all.map((p) => p[1]));
    if (!all.length) { x0 = 0; x1 = 1; y0 = 0; y1 = 1; }
    if (x1 === x0) { x0 -= 0.5; x1 += 0.5; }
    if (y1 === y0) { y0 -= Math.abs(y0) * 0.1 + 0.05; y1 += Math.abs(y1) * 0.1 + 0.05; }
    const sx = (x) => L + ((x - x0) / (x1 - x0)) * (W - L - R);
    const sy = (y) => H - B - ((y - y0) / (y1 - y0)) * (H - T - B);
    svg.append(el("rect", { x: L, y: T, width: W - L - R, height: H - T - B, class: "plot-bg" }));
    for (const t of ticks(y0, y1, 5)) {
      svg.append(el("line", { x1: L, x2: W - R, y1: sy(t), y2: sy(t), class: "grid" }));
      svg.append(el("text", { x: L - 6, y: sy(t) + 4, class: "tick", "text-anchor": "end" }, fmt(t)));
    }
    for (const t of ticks(x0, x1, 6)) {
      svg.append(el("line", { x1: sx(t), x2: sx(t), y1: T, y2: H - B, class: "grid" }));
      svg.append(el("text", { x: sx(t), y: H - B + 16, class: "tick", "text-anchor": "middle" }, fmt(t)));
    }
    svg.append(el("text", { x: (L + W - R) / 2, y: H - 6, class: "axis-label", "text-anchor": "middle" }, xLabel));
    svg.append(el("text", { x: 14, y: (T + H - B) / 2, class: "axis-label", "text-anchor": "middle",
      transform: `rotate(-90 14 ${(T + H - B) / 2})` }, yLabel));
    legend.replaceChildren();
    list.forEach((s, i) => {
      const cls = s.cls || `s${i}`;
      const pts = s.points.filter((p) => Number.isFinite(p[0]) && Number.isFinite(p[1]));
      if (pts.length > 1) {
        svg.append(el("polyline", { points: pts.map((p) => `${sx(p[0]).toFixed(1)},${sy(p[1]).toFixed(1)}`).join(" "), class: `line ${cls}` }));
      }
      for (const p of pts.length <= 200 ? pts : [pts[pts.length - 1]]) {
        const c = el("circle", { cx: sx(p[0]).toFixed(1), cy: sy(p[1]).toFixed(1), r: 3, class: `dot ${cls}` });
        c.append(el("title", {}, `${s.name}: ${fmt(p[1])} at ${xLabel} ${fmt(p[0])}`));
        svg.append(c);
      }
      const li = document.createElement("li");
      const swatch = document.createElement("span");
      swatch.className = `swatch ${cls}`;
      li.append(swatch, document.createTextNode(`${s.name}${pts.length ? ` (last ${fmt(pts[pts.length - 1][1])})` : " (no points yet)"}`));
      legend.append(li);
    });
  }
  draw(series);
  figure.update = draw;
  return figure;
}

/** A bar chart of `values` labelled by `labels`; `highlight` marks one bar. */
export function barChart({ title, labels, values, highlight, valueLabel }) {
  const figure = document.createElement("figure");
  figure.className = "chart";
  const caption = document.createElement("figcaption");
  caption.textContent = title;
  const W = 560, H = 200, L = 48, R = 8, T = 10, B = 36;
  const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, role: "img", class: "chart-svg" });
  svg.setAttribute("aria-label", `${title}: ` + labels.map((l, i) => `${l} ${fmt(values[i])}`).join(", "));
  const lo = Math.min(0, ...values), hi = Math.max(0, ...values);
  const span = hi - lo || 1;
  const sy = (v) => H - B - ((v - lo) / span) * (H - T - B);
  const bw = (W - L - R) / Math.max(1, values.length);
  svg.append(el("line", { x1: L, x2: W - R, y1: sy(0), y2: sy(0), class: "axis" }));
  for (const t of ticks(lo, hi, 4)) {
    svg.append(el("text", { x: L - 6, y: sy(t) + 4, class: "tick", "text-anchor": "end" }, fmt(t)));
  }
  values.forEach((v, i) => {
    const y = Math.min(sy(v), sy(0)), h = Math.max(1, Math.abs(sy(v) - sy(0)));
    const r = el("rect", { x: L + i * bw + bw * 0.15, y, width: bw * 0.7, height: h, class: i === highlight ? "bar bar-hl" : "bar" });
    r.append(el("title", {}, `${labels[i]}: ${fmt(v)}${valueLabel ? " " + valueLabel : ""}`));
    svg.append(r);
    svg.append(el("text", { x: L + i * bw + bw / 2, y: H - B + 16, class: "tick", "text-anchor": "middle" }, String(labels[i])));
  });
  figure.append(caption, svg);
  return figure;
}
