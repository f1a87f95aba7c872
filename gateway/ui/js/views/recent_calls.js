// A function's recent async calls (GET /system/async-calls?function=), newest first, with
// their state, attempts and last status; refreshed while the page is open, filtered by state.

import { enc, get } from '../api.js';
import { h, replace } from '../dom.js';

const REFRESH_MS = 3000;
const STATES = ['', 'queued', 'running', 'succeeded', 'failed', 'dead_lettered', 'timed_out',
  'callback_failed', 'expired', 'cancelled'];

export function recentCallsPanel(name, namespace) {
  const state = h('select', { id: 'recent-state' },
    STATES.map((s) => h('option', { value: s }, s || 'any state')));
  const body = h('tbody');
  const table = h('table', { id: 'recent-calls', 'aria-labelledby': 'recent-title' },
    h('thead', {}, h('tr', {},
      h('th', { scope: 'col' }, 'Call'),
      h('th', { scope: 'col' }, 'State'),
      h('th', { scope: 'col', class: 'wide' }, 'Submitted'),
      h('th', { scope: 'col', class: 'num' }, 'Attempts'),
      h('th', { scope: 'col', class: 'num' }, 'Last status'))),
    body);
  let stopped = false;
  async function refresh() {
    const filter = state.value ? `&state=${enc(state.value)}` : '';
    try {
      const calls = await get(`/system/async-calls?function=${enc(name)}&namespace=${enc(namespace)}&limit=20${filter}`);
      if (stopped) return;
      if (!calls.length) {
        replace(body, h('tr', {}, h('td', { colspan: 5 }, 'No recent async calls.')));
        return;
      }
      replace(body, calls.map((c) => h('tr', { 'data-call': c.callId },
        h('td', {}, h('a', { href: `#/calls/${enc(c.callId)}` }, c.callId)),
        h('td', {}, h('span', { class: `state ${c.state}`, 'data-state': c.state }, c.state)),
        h('td', { class: 'wide' }, c.submittedAt),
        h('td', { class: 'num' }, `${c.attempts} / ${c.maxAttempts}`),
        h('td', { class: 'num' }, c.lastStatus ?? '–'))));
    } catch (e) {
      if (!stopped) replace(body, h('tr', {}, h('td', { colspan: 5, class: 'bad' }, e.message)));
    }
  }
  state.addEventListener('change', refresh);
  refresh();
  const timer = setInterval(refresh, REFRESH_MS);
  const node = h('section', { 'aria-labelledby': 'recent-title' },
    h('h2', { id: 'recent-title' }, 'Recent async calls'),
    h('div', { class: 'row' }, h('label', { for: 'recent-state' }, 'State'), state),
    h('div', { class: 'table-wrap' }, table));
  return { node, stop: () => { stopped = true; clearInterval(timer); } };
}
