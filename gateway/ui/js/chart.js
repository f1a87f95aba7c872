// Small line charts in SVG for a function's history (GET /system/function-metrics): one or
// two series over time, the latest value and the maximum as text beside it, so the chart
// says what it shows without colour alone. Built with createElementNS, never markup.

const NS = 'http://www.w3.org/2000/svg';
const W = 320;
const H = 80;

function svg(tag, attrs) {
  const el = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, String(v));
  return el;
}

/**
 * A chart of `series` ([{label, points: [[t, v], ...], className}]) from `start` to `end`
 * (Unix seconds); `format` turns a value into text.
 */
export function lineChart(title, series, start, end, format) {
  const max = Math.max(0, ...series.flatMap((s) => s.points.map((p) => p[1])));
  const top = max > 0 ? max * 1.1 : 1;
  const x = (t) => ((t - start) / Math.max(1, end - start)) * W;
  const y = (v) => H - (v / top) * (H - 4) - 2;
  const latest = series.map((s) => {
    const last = s.points[s.points.length - 1];
    return `${s.label} ${last ? format(last[1]) : '–'}`;
  }).join(', ');
  const summary = `${title}: now ${latest}; highest ${format(max)}`;
  const chart = svg('svg', { viewBox: `0 0 ${W} ${H}`, class: 'chart', role: 'img', 'aria-label': summary });
  chart.append(svg('line', { x1: 0, y1: H - 1, x2: W, y2: H - 1, class: 'axis' }));
  for (const s of series) {
    if (!s.points.length) continue;
    const d = s.points.map(([t, v], i) => `${i ? 'L' : 'M'}${x(t).toFixed(1)},${y(v).toFixed(1)}`).join(' ');
    chart.append(svg('path', { d, class: `line ${s.className || ''}` }));
    // The latest point, marked (a series of one point is only that).
    const [t, v] = s.points[s.points.length - 1];
    chart.append(svg('circle', { cx: x(t).toFixed(1), cy: y(v).toFixed(1), r: 2.5, class: `dot ${s.className || ''}` }));
  }
  const figure = document.createElement('figure');
  figure.className = 'chart-figure';
  const caption = document.createElement('figcaption');
  caption.textContent = summary;
  figure.append(chart, caption);
  return figure;
}
