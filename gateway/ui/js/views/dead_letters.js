// Queues and dead letters: each queue's depth (stored, waiting, held by workers, retries
// scheduled, workers waiting), and the calls that ran out of attempts (or could not run),
// oldest first, per function or all, with their reason; redrive one (or all of a function's)
// with one click, or delete.

import { enc, get, request } from '../api.js';
import { field, h, replace, say } from '../dom.js';

export async function render(main) {
  const fn = h('input', { name: 'function', placeholder: 'name or name.namespace', spellcheck: false });
  const body = h('tbody');
  const form = h('form', { 'aria-labelledby': 'dl-title' },
    field('Function', fn, 'Empty: every function you may read.'),
    h('div', { class: 'row' },
      h('button', { type: 'submit' }, 'List'),
      h('button', { type: 'button', class: 'secondary', onclick: () => redriveAll() }, 'Redrive all of this function')));
  const queues = h('tbody');
  async function depths() {
    const n = (v) => (v === null || v === undefined ? '–' : String(v));
    try {
      const list = await get('/system/queues');
      replace(queues, list.length ? list.map((q) => h('tr', { 'data-queue': q.queue },
        h('td', {}, q.queue), h('td', { class: 'num' }, n(q.stored)), h('td', { class: 'num' }, n(q.pending)),
        h('td', { class: 'num' }, n(q.inFlight)), h('td', { class: 'num wide' }, n(q.scheduledRetries)),
        h('td', { class: 'num wide' }, n(q.waitingWorkers))))
        : h('tr', {}, h('td', { colspan: 6 }, 'No queue holds calls.')));
    } catch (e) { say(e.message, true); }
  }
  async function list() {
    depths();
    try {
      const query = fn.value.trim() ? `?function=${enc(fn.value.trim())}&limit=100` : '?limit=100';
      const page = await get(`/system/dead-letters${query}`);
      if (!page.items.length) {
        replace(body, h('tr', {}, h('td', { colspan: 7 }, 'No dead letters.')));
        return;
      }
      replace(body, page.items.map((d) => h('tr', { 'data-call': d.callId },
        h('td', {}, h('a', { href: `#/calls/${enc(d.callId)}` }, d.callId)),
        h('td', {}, d.function),
        h('td', { class: 'wide' }, d.queue),
        h('td', {}, d.reason),
        h('td', { class: 'num' }, `${d.attempts}${d.lastStatus ? ` (${d.lastStatus})` : ''}`),
        h('td', { class: 'wide' }, d.deadLetteredAt),
        h('td', {},
          h('button', { type: 'button', onclick: () => act('POST', `/system/dead-letters/${enc(d.callId)}/redrive`, `Redriven ${d.callId}.`) }, 'Redrive'),
          ' ',
          h('button', { type: 'button', class: 'secondary', onclick: () => act('DELETE', `/system/dead-letters/${enc(d.callId)}`, `Deleted ${d.callId}.`) }, 'Delete')))));
    } catch (e) { say(e.message, true); }
  }
  async function act(method, path, done) {
    try {
      await request(method, path);
      say(done);
      await list();
    } catch (e) { say(e.message, true); }
  }
  async function redriveAll() {
    if (!fn.value.trim()) { say('Name the function whose dead letters to redrive.', true); return; }
    try {
      const r = await request('POST', `/system/dead-letters/redrive?function=${enc(fn.value.trim())}`);
      say(`Redriven ${r.redriven} calls.`);
      await list();
    } catch (e) { say(e.message, true); }
  }
  form.addEventListener('submit', (event) => { event.preventDefault(); list(); });
  replace(main, h('h1', {}, 'Queues and dead letters'),
    h('h2', { id: 'queues-title' }, 'Queues'),
    h('div', { class: 'table-wrap' }, h('table', { 'aria-labelledby': 'queues-title' },
      h('thead', {}, h('tr', {}, ['Queue', 'Stored', 'Waiting', 'Running', 'Retries later', 'Workers waiting']
        .map((t, i) => h('th', { scope: 'col', class: `${i ? 'num' : ''} ${i > 3 ? 'wide' : ''}` }, t)))),
      queues)),
    h('h2', { id: 'dl-title' }, 'Dead letters'), form,
    h('div', { class: 'table-wrap' }, h('table', {},
      h('thead', {}, h('tr', {}, ['Call', 'Function', 'Queue', 'Reason', 'Attempts', 'When', ''].map((t, i) => h('th', { scope: 'col', class: i === 2 || i === 5 ? 'wide' : null }, t)))),
      body)));
  await list();
  return null;
}
