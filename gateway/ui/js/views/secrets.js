// Secrets of a namespace: names only (values are never shown, and the API never returns
// them); create or update a value, delete.

import { enc, get, request } from '../api.js';
import { field, h, replace, say } from '../dom.js';

export async function render(main) {
  const namespaces = await get('/system/namespaces').catch(() => ['openfaas-fn']);
  const ns = h('select', {}, namespaces.map((n) => h('option', { value: n }, n)));
  const name = h('input', { name: 'name', spellcheck: false, autocomplete: 'off' });
  const value = h('input', { name: 'value', type: 'password', autocomplete: 'new-password' });
  const nameField = field('Name', name);
  const body = h('ul');
  const form = h('form', { 'aria-labelledby': 'new-secret' },
    field('Namespace', ns), nameField, field('Value', value, 'Never shown again.'),
    h('div', { class: 'row' },
      h('button', { type: 'submit' }, 'Create'),
      h('button', { type: 'button', class: 'secondary', onclick: () => save('PUT') }, 'Update')));
  async function list() {
    try {
      const secrets = await get(`/system/secrets?namespace=${enc(ns.value)}`);
      replace(body, secrets.length ? secrets.map((s) => h('li', { 'data-secret': s.name }, `${s.name} `,
        h('button', { type: 'button', class: 'secondary', 'aria-label': `Delete ${s.name}`, onclick: () => remove(s.name) }, 'Delete')))
        : h('li', {}, 'No secrets in this namespace.'));
    } catch (e) { say(e.message, true); }
  }
  async function save(method) {
    nameField.error.textContent = '';
    try {
      await request(method, '/system/secrets', { body: { name: name.value.trim(), namespace: ns.value, value: value.value } });
      say(`${method === 'POST' ? 'Created' : 'Updated'} ${name.value.trim()}.`);
      value.value = '';
      await list();
    } catch (e) {
      nameField.error.textContent = e.message;
      name.setAttribute('aria-invalid', 'true');
    }
  }
  async function remove(secret) {
    if (!window.confirm(`Delete the secret ${secret}?`)) return;
    try {
      await request('DELETE', '/system/secrets', { body: { name: secret, namespace: ns.value } });
      say(`Deleted ${secret}.`);
      await list();
    } catch (e) { say(e.message, true); }
  }
  form.addEventListener('submit', (event) => { event.preventDefault(); save('POST'); });
  ns.addEventListener('change', list);
  replace(main, h('h1', {}, 'Secrets'), h('h2', { id: 'new-secret' }, 'Create or update'), form,
    h('h2', {}, 'In this namespace'), body);
  await list();
  return null;
}
