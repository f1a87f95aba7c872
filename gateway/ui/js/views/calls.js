// Async calls: look one up by its id (X-Call-Id), see its state, attempts and callback, cancel
// it while it waits.

import { enc, get, request } from '../api.js';
import { field, h, kv, replace, say, seconds } from '../dom.js';

/** States after which a call changes no more. */
export const FINAL = ['succeeded', 'failed', 'timed_out', 'dead_lettered', 'callback_failed', 'expired', 'cancelled'];

/** A call's status: summary, attempts, callback. */
export function callView(s) {
  const attempts = (s.attemptHistory || []).map((a) => h('tr', {},
    h('td', { class: 'num' }, String(a.attempt)),
    h('td', {}, a.startedAt),
    h('td', { class: 'num' }, a.status === undefined || a.status === null ? '–' : String(a.status)),
    h('td', { class: 'num' }, seconds(a.durationSeconds)),
    h('td', {}, a.error || '')));
  return h('div', { class: 'call' },
    h('p', {}, 'State: ', h('span', { class: `state ${s.state}`, 'data-state': s.state }, s.state)),
    kv({
      function: s.function,
      queue: s.queue,
      attempts: `${s.attempts} of ${s.maxAttempts}`,
      'last status': s.lastStatus ?? '–',
      'last error': s.lastError || '–',
      submitted: s.submittedAt,
      finished: s.finishedAt || '–',
      'next attempt': s.nextAttemptAt || '–',
      callback: s.callback ? `${s.callback.state || ''} ${s.callback.url || ''}` : '–',
    }),
    attempts.length ? h('div', { class: 'table-wrap' }, h('table', {},
      h('caption', { class: 'hint' }, 'Attempts'),
      h('thead', {}, h('tr', {}, ['#', 'Started', 'Status', 'Took', 'Error'].map((t) => h('th', { scope: 'col' }, t)))),
      h('tbody', {}, attempts))) : null);
}

export async function render(main, [id]) {
  const input = h('input', { name: 'call', value: id || '', spellcheck: false, autocomplete: 'off' });
  const out = h('div', { 'aria-live': 'polite' });
  const form = h('form', { 'aria-labelledby': 'calls-title' },
    field('Call id', input, 'The X-Call-Id a submission was answered with.'),
    h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Look up')));
  let timer = null;
  async function show(callId) {
    clearTimeout(timer);
    try {
      const s = await get(`/system/async-calls/${enc(callId)}`);
      const cancel = FINAL.includes(s.state) || s.state === 'running' ? null
        : h('button', { type: 'button', class: 'danger', onclick: async () => {
          try {
            await request('DELETE', `/system/async-calls/${enc(callId)}`);
            say(`Cancelled ${callId}.`);
            show(callId);
          } catch (e) { say(e.message, true); }
        } }, 'Cancel');
      replace(out, callView(s), cancel);
      if (!FINAL.includes(s.state)) timer = setTimeout(() => show(callId), 1000);
    } catch (e) {
      replace(out, h('p', { class: 'bad' }, e.message));
    }
  }
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    if (input.value.trim()) location.hash = `#/calls/${enc(input.value.trim())}`;
  });
  replace(main, h('h1', { id: 'calls-title' }, 'Async calls'), form, out);
  if (id) await show(id);
  return () => clearTimeout(timer);
}
