// A function's history from Prometheus (GET /system/function-metrics): calls per second (sync
// answered, async accepted), 5xx per second, p50 / p99 latency and desired replicas over a
// chosen range. Without a Prometheus configured (501) it says so; the live figures of the
// functions page need none.

import { enc, get } from '../api.js';
import { h, replace, seconds } from '../dom.js';
import { lineChart } from '../chart.js';

const REFRESH_MS = 15000;
const RANGES = ['15m', '1h', '6h', '24h', '168h'];

const perSecond = (v) => `${v.toFixed(v < 10 ? 2 : 0)}/s`;

export function historyPanel(name, namespace) {
  const range = h('select', { id: 'history-range' }, RANGES.map((r) => h('option', { value: r, selected: r === '1h' }, r)));
  const out = h('div', { class: 'charts', id: 'history' });
  let stopped = false;
  async function refresh() {
    try {
      const m = await get(`/system/function-metrics?function=${enc(name)}&namespace=${enc(namespace)}&range=${enc(range.value)}`);
      if (stopped) return;
      replace(out,
        lineChart('Calls', [
          { label: 'sync', points: m.rate },
          { label: 'async', points: m.asyncRate, className: 'second' },
        ], m.start, m.end, perSecond),
        lineChart('Errors (5xx)', [{ label: '5xx', points: m.errorRate, className: 'bad' }], m.start, m.end, perSecond),
        lineChart('Latency', [
          { label: 'p50', points: m.p50 },
          { label: 'p99', points: m.p99, className: 'second' },
        ], m.start, m.end, seconds),
        lineChart('Replicas', [{ label: 'desired', points: m.replicas }], m.start, m.end, (v) => String(Math.round(v))));
    } catch (e) {
      if (stopped) return;
      const text = e.status === 501
        ? 'No Prometheus is configured on the gateway (faas_prometheus_host), so there is no history; the figures above are live.'
        : `History unavailable: ${e.message}`;
      replace(out, h('p', { class: 'hint' }, text));
    }
  }
  range.addEventListener('change', refresh);
  refresh();
  const timer = setInterval(refresh, REFRESH_MS);
  const node = h('section', { 'aria-labelledby': 'history-title' },
    h('h2', { id: 'history-title' }, 'History'),
    h('div', { class: 'row' }, h('label', { for: 'history-range' }, 'Range'), range),
    out);
  return { node, stop: () => { stopped = true; clearInterval(timer); } };
}
