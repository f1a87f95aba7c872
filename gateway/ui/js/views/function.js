// One function: what it runs with (env, labels, annotations, secret names, limits), scaling
// (to zero too), edit and delete, its history (history.js), invoking it (invoke.js), its
// recent async calls (recent_calls.js) and its logs, followed live.

import { enc, get, request } from '../api.js';
import { bytes, field, flash, h, kv, replace, say } from '../dom.js';
import { historyPanel } from './history.js';
import { invokePanel } from './invoke.js';
import { recentCallsPanel } from './recent_calls.js';

export async function render(main, [namespace, name]) {
  const f = await get(`/system/function/${enc(name)}?namespace=${enc(namespace)}`);
  const replicas = h('input', { type: 'number', min: 0, value: f.replicas || 0, inputmode: 'numeric' });
  const scale = h('form', { 'aria-label': 'Scale' },
    field('Replicas', replicas, 'Within com.openfaas.scale.min/max; 0 scales to zero.'),
    h('div', { class: 'row' },
      h('button', { type: 'submit' }, 'Scale'),
      h('button', { type: 'button', class: 'secondary', onclick: () => { replicas.value = 0; scale.requestSubmit(); } }, 'Scale to zero')));
  scale.addEventListener('submit', async (event) => {
    event.preventDefault();
    try {
      await request('POST', `/system/scale-function/${enc(name)}?namespace=${enc(namespace)}`,
        { body: { serviceName: name, namespace, replicas: Number(replicas.value) } });
      say(`Scaling ${name} to ${replicas.value}.`);
    } catch (e) { say(e.message, true); }
  });
  const remove = h('button', { type: 'button', class: 'danger' }, 'Delete');
  remove.addEventListener('click', async () => {
    if (!window.confirm(`Delete ${name} in ${namespace}?`)) return;
    try {
      await request('DELETE', '/system/functions', { body: { functionName: name, namespace } });
      flash(`Deleted ${name}.`);
      location.hash = '#/';
    } catch (e) { say(e.message, true); }
  });
  const logs = logsPanel(name, namespace);
  const history = historyPanel(name, namespace);
  const invoke = invokePanel(name, namespace);
  const recent = recentCallsPanel(name, namespace);
  const summary = h('div', { id: 'summary' }, summaryOf(f));
  const timer = setInterval(async () => {
    try {
      replace(summary, summaryOf(await get(`/system/function/${enc(name)}?namespace=${enc(namespace)}`)));
    } catch (_) { /* deleted meanwhile, or the gateway is away: keep the last */ }
  }, REFRESH_MS);
  replace(main,
    h('h1', {}, `${name} `, h('span', { class: 'hint' }, namespace)),
    h('p', { class: 'row' },
      h('a', { href: `#/deploy/${enc(namespace)}/${enc(name)}` }, 'Edit'), remove),
    h('div', { class: 'cards' },
      h('section', { class: 'card', 'aria-labelledby': 'sum' }, h('h2', { id: 'sum' }, 'Summary'), summary),
      h('section', { class: 'card', 'aria-labelledby': 'scale-title' }, h('h2', { id: 'scale-title' }, 'Scale'), scale),
      h('section', { class: 'card', 'aria-labelledby': 'env' }, h('h2', { id: 'env' }, 'Environment'), kv(f.envVars)),
      h('section', { class: 'card', 'aria-labelledby': 'labels' }, h('h2', { id: 'labels' }, 'Labels'), kv(f.labels)),
      h('section', { class: 'card', 'aria-labelledby': 'ann' }, h('h2', { id: 'ann' }, 'Annotations'), kv(f.annotations)),
      h('section', { class: 'card', 'aria-labelledby': 'sec' }, h('h2', { id: 'sec' }, 'Secrets and limits'), kv({
        secrets: (f.secrets || []).join(', ') || 'none',
        'memory limit': (f.limits && f.limits.memory) || '–',
        'cpu limit': (f.limits && f.limits.cpu) || '–',
        'memory request': (f.requests && f.requests.memory) || '–',
        'cpu request': (f.requests && f.requests.cpu) || '–',
      }))),
    history.node,
    invoke.node,
    recent.node,
    logs.node);
  return () => {
    clearInterval(timer);
    for (const panel of [logs, history, invoke, recent]) panel.stop();
  };
}

const REFRESH_MS = 2000;

function summaryOf(f) {
  return kv({
    image: f.image,
    replicas: `${f.availableReplicas || 0} ready / ${f.replicas || 0} desired`,
    'sync calls': Math.round(f.invocationCount || 0),
    memory: f.usage && f.usage.totalMemoryBytes
      ? `${bytes(f.usage.totalMemoryBytes)} (${f.availableReplicas || 0} replicas${
        f.usage.frozenMemoryBytes ? `, ${bytes(f.usage.frozenMemoryBytes)} held by a frozen replica` : ''})`
      : '–',
    created: f.createdAt || '–',
    fprocess: f.envProcess || '–',
    'read-only root': f.readOnlyRootFilesystem ? 'yes' : 'no',
  });
}

/** Logs of the function, the last 100 lines, or followed as they come. */
function logsPanel(name, namespace) {
  const out = h('pre', { 'aria-live': 'off', tabindex: 0, 'aria-label': 'Log lines' });
  const follow = h('input', { type: 'checkbox', id: 'follow' });
  let controller = null;
  async function load() {
    if (controller) controller.abort();
    controller = new AbortController();
    const query = `name=${enc(name)}&namespace=${enc(namespace)}&tail=100&follow=${follow.checked}`;
    out.textContent = '';
    try {
      const response = await request('GET', `/system/logs?${query}`, { raw: true, signal: controller.signal });
      if (!response.ok) { out.textContent = `logs: HTTP ${response.status}`; return; }
      const reader = response.body.getReader();
      const decoder = new TextDecoder();
      let rest = '';
      for (;;) {
        const { value, done } = await reader.read();
        if (done) break;
        rest += decoder.decode(value, { stream: true });
        const lines = rest.split('\n');
        rest = lines.pop();
        for (const line of lines.filter(Boolean)) {
          try {
            const m = JSON.parse(line);
            out.append(`${m.timestamp} ${m.instance || ''} ${m.text}\n`);
          } catch (_) { out.append(`${line}\n`); }
        }
        out.scrollTop = out.scrollHeight;
      }
    } catch (e) {
      if (e.name !== 'AbortError') out.append(`logs: ${e.message}\n`);
    }
  }
  follow.addEventListener('change', load);
  load();
  const node = h('section', { 'aria-labelledby': 'logs-title' },
    h('h2', { id: 'logs-title' }, 'Logs'),
    h('div', { class: 'row' }, follow, h('label', { for: 'follow' }, 'Follow'),
      h('button', { type: 'button', class: 'secondary', onclick: load }, 'Reload')),
    out);
  return { node, stop: () => controller && controller.abort() };
}
