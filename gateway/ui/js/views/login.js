// Logging in: the gateway's basic-auth user and password (`make credentials` prints them) or
// an API token. They are checked against GET /system/info before they are kept.

import { ApiError, get, login, logout } from '../api.js';
import { field, h, replace, say } from '../dom.js';

export function render(main, _params, done) {
  const user = h('input', { id: 'login-user', name: 'user', autocomplete: 'username', value: 'admin' });
  const password = h('input', { id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password' });
  const token = h('input', { id: 'login-token', name: 'token', type: 'password', autocomplete: 'off' });
  const form = h('form', { 'aria-labelledby': 'login-title' },
    field('User', user),
    field('Password', password, 'make credentials prints the user and password.'),
    field('or an API token', token, 'A token replaces user and password.'),
    h('div', { class: 'row' }, h('button', { type: 'submit' }, 'Log in')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    login({ user: user.value, password: password.value, token: token.value });
    try {
      await get('/system/info');
      say('');
      done();
    } catch (e) {
      logout();
      say(e instanceof ApiError && e.status === 401
        ? 'Wrong user, password or token.' : e.message, true);
    }
  });
  replace(main, h('h1', { id: 'login-title' }, 'Log in to the gateway'), form);
  user.focus();
  return null;
}
