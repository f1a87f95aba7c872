// Deploying a function, or editing one (#/deploy/<namespace>/<name>): image, env, labels,
// annotations, secrets, limits and requests, scale min/max. The API's validation message is
// shown next to the field it names.

import { enc, get, request } from '../api.js';
import { field, flash, h, replace } from '../dom.js';

const MIN = 'com.openfaas.scale.min';
const MAX = 'com.openfaas.scale.max';

function lines(object) {
  return Object.entries(object || {}).map(([k, v]) => `${k}=${v}`).join('\n');
}

function pairs(text) {
  const out = {};
  for (const line of text.split('\n')) {
    const at = line.indexOf('=');
    if (line.trim() && at > 0) out[line.slice(0, at).trim()] = line.slice(at + 1).trim();
  }
  return out;
}

export async function render(main, [namespace, name]) {
  const editing = Boolean(name);
  const f = editing ? await get(`/system/function/${enc(name)}?namespace=${enc(namespace)}`) : {};
  const labels = { ...(f.labels || {}) };
  const min = labels[MIN] || '';
  const max = labels[MAX] || '';
  delete labels[MIN]; delete labels[MAX]; delete labels.faas_function;
  const input = (attrs) => h('input', { spellcheck: false, autocomplete: 'off', ...attrs });
  const fld = (key, label, control, hint) => {
    control.id = `deploy-${key}`;
    return field(label, control, hint);
  };
  const fields = {
    service: fld('service', 'Name', input({ value: f.name || '', required: true, readonly: editing })),
    namespace: fld('namespace', 'Namespace', input({ value: f.namespace || 'openfaas-fn', readonly: editing })),
    image: fld('image', 'Image', input({ value: f.image || '', required: true }), 'An image on the Docker engine (nothing is pulled).'),
    envVars: fld('envVars', 'Environment', h('textarea', {}, lines(f.envVars)), 'KEY=value, one per line.'),
    labels: fld('labels', 'Labels', h('textarea', {}, lines(labels)), 'key=value, one per line.'),
    annotations: fld('annotations', 'Annotations', h('textarea', {}, lines(f.annotations)), 'key=value, one per line.'),
    secrets: fld('secrets', 'Secrets', input({ value: (f.secrets || []).join(', ') }), 'Names, comma-separated.'),
    limitsMemory: fld('limitsMemory', 'Memory limit', input({ value: (f.limits && f.limits.memory) || '', placeholder: '128Mi' })),
    limitsCpu: fld('limitsCpu', 'CPU limit', input({ value: (f.limits && f.limits.cpu) || '', placeholder: '500m' })),
    requestsMemory: fld('requestsMemory', 'Memory request', input({ value: (f.requests && f.requests.memory) || '' })),
    requestsCpu: fld('requestsCpu', 'CPU request', input({ value: (f.requests && f.requests.cpu) || '' })),
    scaleMin: fld('scaleMin', 'Scale min', input({ value: min, inputmode: 'numeric' }), MIN),
    scaleMax: fld('scaleMax', 'Scale max', input({ value: max, inputmode: 'numeric' }), MAX),
  };
  const v = (k) => fields[k].control.value.trim();
  const form = h('form', { 'aria-labelledby': 'deploy-title', novalidate: true },
    Object.values(fields),
    h('div', { class: 'row' }, h('button', { type: 'submit' }, editing ? 'Update' : 'Deploy')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    for (const fl of Object.values(fields)) { fl.error.textContent = ''; fl.control.removeAttribute('aria-invalid'); }
    const deployment = {
      service: v('service'),
      namespace: v('namespace'),
      image: v('image'),
      envVars: pairs(fields.envVars.control.value),
      labels: pairs(fields.labels.control.value),
      annotations: pairs(fields.annotations.control.value),
      secrets: v('secrets').split(',').map((s) => s.trim()).filter(Boolean),
    };
    if (v('scaleMin')) deployment.labels[MIN] = v('scaleMin');
    if (v('scaleMax')) deployment.labels[MAX] = v('scaleMax');
    const resources = (memory, cpu) => (memory || cpu ? { memory: memory || undefined, cpu: cpu || undefined } : undefined);
    deployment.limits = resources(v('limitsMemory'), v('limitsCpu'));
    deployment.requests = resources(v('requestsMemory'), v('requestsCpu'));
    try {
      await request(editing ? 'PUT' : 'POST', '/system/functions', { body: deployment });
      flash(`${editing ? 'Updated' : 'Deployed'} ${deployment.service}.`);
      location.hash = `#/function/${enc(deployment.namespace)}/${enc(deployment.service)}`;
    } catch (e) {
      const target = fieldFor(e.message, fields);
      target.error.textContent = e.message;
      target.control.setAttribute('aria-invalid', 'true');
      target.control.focus();
    }
  });
  replace(main, h('h1', { id: 'deploy-title' }, editing ? `Edit ${name}` : 'Deploy a function'), form);
  return null;
}

/** The field an API message is about: the first whose subject it mentions. */
export function fieldFor(message, fields) {
  const m = message.toLowerCase();
  const topics = [
    ['secret', 'secrets'], ['image', 'image'], ['namespace', 'namespace'],
    ['scale.min', 'scaleMin'], ['scale.max', 'scaleMax'], ['annotation', 'annotations'],
    ['label', 'labels'], ['env', 'envVars'], ['memory', 'limitsMemory'], ['cpu', 'limitsCpu'],
    ['limit', 'limitsMemory'], ['request', 'requestsMemory'], ['name', 'service'], ['service', 'service'],
  ];
  for (const [word, key] of topics) if (m.includes(word)) return fields[key];
  return fields.service;
}
