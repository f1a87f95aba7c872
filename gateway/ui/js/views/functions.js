// The functions of a namespace, refreshed every few seconds without reloading: image,
// replicas ready / desired, calls (sync answered and async accepted), rate, 5xx share and
// p50 / p99 latency (from the gateway's own /metrics), memory per replica (the provider's
// usage report).

import { enc, get, qualified } from '../api.js';
import { bytes, h, replace, say, seconds } from '../dom.js';
import { byFunction, figures, parse } from '../metrics.js';

const REFRESH_MS = 3000;

export async function render(main) {
  const namespaces = await get('/system/namespaces').catch(() => ['openfaas-fn']);
  const chosen = sessionStorage.getItem('ferry.namespace') || namespaces[0] || 'openfaas-fn';
  const select = h('select', { id: 'namespace' },
    namespaces.map((ns) => h('option', { value: ns, selected: ns === chosen }, ns)));
  const body = h('tbody');
  const table = h('table', { 'aria-describedby': 'functions-title' },
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, 'Name'),
      h('th', { scope: 'col', class: 'wide' }, 'Image'),
      h('th', { scope: 'col', class: 'num' }, 'Replicas'),
      h('th', { scope: 'col', class: 'num', title: 'Sync calls answered and async calls accepted by this gateway since it started' }, 'Calls'),
      h('th', { scope: 'col', class: 'num wide' }, 'Rate'),
      h('th', { scope: 'col', class: 'num' }, 'Errors'),
      h('th', { scope: 'col', class: 'num wide' }, 'p50'),
      h('th', { scope: 'col', class: 'num' }, 'p99'),
      h('th', { scope: 'col', class: 'num wide' }, 'Memory / replica'))),
    body);
  replace(main,
    h('h1', { id: 'functions-title' }, 'Functions'),
    h('div', { class: 'row' },
      h('div', { class: 'field' }, h('label', { for: 'namespace' }, 'Namespace'), select),
      h('a', { href: '#/deploy' }, 'Deploy a function')),
    h('div', { class: 'table-wrap' }, table));

  let previous = null;
  let previousAt = 0;
  let stopped = false;
  async function refresh() {
    const ns = select.value;
    try {
      const [list, text] = await Promise.all([
        get(`/system/functions?namespace=${enc(ns)}`),
        get('/metrics').catch(() => ''),
      ]);
      const now = byFunction(parse(text));
      const at = performance.now();
      const stats = figures(now, previous, (at - previousAt) / 1000);
      previous = now;
      previousAt = at;
      if (!stopped) rows(body, list, stats);
    } catch (e) {
      say(e.message, true);
    }
  }
  select.addEventListener('change', () => {
    sessionStorage.setItem('ferry.namespace', select.value);
    previous = null;
    refresh();
  });
  await refresh();
  const timer = setInterval(refresh, REFRESH_MS);
  return () => { stopped = true; clearInterval(timer); };
}

function rows(body, list, stats) {
  if (!list.length) {
    replace(body, h('tr', {}, h('td', { colspan: 9 }, 'No functions in this namespace yet.')));
    return;
  }
  list.sort((a, b) => a.name.localeCompare(b.name));
  replace(body, list.map((f) => {
    const s = stats.get(qualified(f.name, f.namespace)) || {};
    const frozen = f.usage && f.usage.frozenMemoryBytes;
    const memory = frozen && !f.replicas ? `${bytes(frozen)} frozen`
      : f.usage && f.usage.totalMemoryBytes && f.availableReplicas
        ? bytes(f.usage.totalMemoryBytes / f.availableReplicas) : '–';
    const ready = (f.availableReplicas || 0) === (f.replicas || 0) ? 'ok' : '';
    return h('tr', { 'data-function': f.name },
      h('td', {}, h('a', { href: `#/function/${enc(f.namespace)}/${enc(f.name)}` }, f.name)),
      h('td', { class: 'wide' }, f.image),
      h('td', { class: `num ${ready}` }, `${f.availableReplicas || 0} / ${f.replicas || 0}`),
      h('td', { class: 'num', 'data-calls': '' }, String(Math.round((f.invocationCount || 0) + (s.accepted || 0)))),
      h('td', { class: 'num wide' }, s.rate === null || s.rate === undefined ? '–' : `${s.rate.toFixed(1)}/s`),
      h('td', { class: 'num' }, s.errorShare === null || s.errorShare === undefined
        ? '–' : `${(s.errorShare * 100).toFixed(1)} %`),
      h('td', { class: 'num wide' }, seconds(s.p50)),
      h('td', { class: 'num' }, seconds(s.p99)),
      h('td', { class: 'num wide' }, memory));
  }));
}
