// Invoking a function from the dashboard: method, path, query, headers and body; sync (status,
// headers, body, duration) or async (the call id, then its state polled until it is final,
// with its attempts).

import { qualified, request } from '../api.js';
import { field, h, replace } from '../dom.js';
import { callView, FINAL } from './calls.js';

const POLL_MS = 1000;

export function invokePanel(name, namespace) {
  const method = h('select', { id: 'invoke-method' }, ['POST', 'GET', 'PUT', 'PATCH', 'DELETE'].map((m) => h('option', { value: m }, m)));
  const path = h('input', { id: 'invoke-path', value: '/', spellcheck: false });
  const query = h('input', { id: 'invoke-query', placeholder: 'a=1&b=2', spellcheck: false });
  const headers = h('textarea', { id: 'invoke-headers', placeholder: 'Content-Type: text/plain', spellcheck: false });
  const body = h('textarea', { id: 'invoke-body', spellcheck: false });
  const mode = h('select', { id: 'invoke-mode' }, h('option', { value: 'sync' }, 'sync'), h('option', { value: 'async' }, 'async'));
  const result = h('div', { id: 'invoke-result', 'aria-live': 'polite' });
  const form = h('form', { 'aria-labelledby': 'invoke-title' },
    h('div', { class: 'row' }, field('Method', method), field('Mode', mode)),
    field('Path', path), field('Query', query),
    field('Headers', headers, 'One "Name: value" per line.'),
    field('Body', body),
    h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Invoke')));
  // Each invocation (and leaving the page) starts a new run: an older run's polling stops.
  let run = 0;
  let poll = null;
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    clearTimeout(poll);
    const mine = ++run;
    const prefix = mode.value === 'async' ? '/async-function/' : '/function/';
    const sub = path.value.startsWith('/') ? path.value : `/${path.value}`;
    const url = `${prefix}${qualified(name, namespace)}${sub === '/' ? '' : sub}${query.value ? `?${query.value.replace(/^\?/, '')}` : ''}`;
    const h2 = new Headers();
    for (const line of headers.value.split('\n')) {
      const at = line.indexOf(':');
      if (at > 0) h2.set(line.slice(0, at).trim(), line.slice(at + 1).trim());
    }
    const started = performance.now();
    try {
      const hasBody = !['GET', 'HEAD'].includes(method.value);
      const response = await request(method.value, url, { raw: true, headers: h2, body: hasBody ? body.value : undefined });
      const took = performance.now() - started;
      const text = await response.text();
      if (mode.value === 'sync' || response.status !== 202) {
        replace(result, h('h3', {}, `${response.status} ${response.statusText} in ${took.toFixed(0)} ms`),
          h('pre', { 'aria-label': 'Response headers' }, [...response.headers].map(([k, v]) => `${k}: ${v}`).join('\n')),
          h('pre', { 'aria-label': 'Response body' }, text));
        return;
      }
      const id = response.headers.get('x-call-id');
      const follow = async () => {
        try {
          const status = await request('GET', `/system/async-calls/${encodeURIComponent(id)}`);
          if (mine !== run) return;
          replace(result, h('h3', {}, `202 Accepted: call ${id}`), callView(status));
          if (!FINAL.includes(status.state)) poll = setTimeout(follow, POLL_MS);
        } catch (e) {
          replace(result, h('p', { class: 'bad' }, e.message));
        }
      };
      follow();
    } catch (e) {
      replace(result, h('p', { class: 'bad' }, e.message));
    }
  });
  const node = h('section', { 'aria-labelledby': 'invoke-title' }, h('h2', { id: 'invoke-title' }, 'Invoke'), form, result);
  // Leaving the page stops following an async call.
  return { node, stop: () => { run += 1; clearTimeout(poll); } };
}
