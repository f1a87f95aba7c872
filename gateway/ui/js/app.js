// The dashboard's entry: hash routes to views, the login form when the API answers 401 (or
// no credentials are kept yet), and the clean-up of a view's timers when another one opens.

import { authorization, logout } from './api.js';
import { say, takeFlash } from './dom.js';
import * as functions from './views/functions.js';
import * as detail from './views/function.js';
import * as deploy from './views/deploy.js';
import * as calls from './views/calls.js';
import * as deadLetters from './views/dead_letters.js';
import * as secrets from './views/secrets.js';
import * as loginView from './views/login.js';

const ROUTES = [
  [/^#?\/?$/, functions],
  [/^#\/function\/([^/]+)\/([^/]+)$/, detail],
  [/^#\/deploy$/, deploy],
  [/^#\/deploy\/([^/]+)\/([^/]+)$/, deploy],
  [/^#\/calls$/, calls],
  [/^#\/calls\/([^/]+)$/, calls],
  [/^#\/dead-letters$/, deadLetters],
  [/^#\/secrets$/, secrets],
];

let cleanup = null;

function stop() {
  if (typeof cleanup === 'function') cleanup();
  cleanup = null;
}

async function show() {
  stop();
  say(takeFlash() || '');
  const main = document.getElementById('view');
  document.getElementById('logout').hidden = !authorization();
  if (!authorization()) {
    cleanup = loginView.render(main, [], show);
    return;
  }
  const hash = location.hash || '#/';
  for (const a of document.querySelectorAll('nav a')) {
    const current = a.getAttribute('href') === hash
      || (a.getAttribute('href') !== '#/' && hash.startsWith(a.getAttribute('href')));
    if (current) a.setAttribute('aria-current', 'page'); else a.removeAttribute('aria-current');
  }
  for (const [pattern, view] of ROUTES) {
    const m = pattern.exec(hash);
    if (m) {
      const params = m.slice(1).map(decodeURIComponent);
      try {
        cleanup = await view.render(main, params);
      } catch (e) {
        say(e.message, true);
      }
      main.focus();
      return;
    }
  }
  say(`No page ${hash}`, true);
}

window.addEventListener('hashchange', show);
window.addEventListener('ferry:unauthorized', () => {
  logout();
  say('The gateway did not accept the credentials: log in again.', true);
  show();
});
document.addEventListener('DOMContentLoaded', () => {
  // The skip link moves the focus to the page; following its href would change the route.
  document.querySelector('.skip').addEventListener('click', (event) => {
    event.preventDefault();
    document.getElementById('view').focus();
  });
  document.getElementById('logout').addEventListener('click', () => {
    logout();
    show();
  });
  show();
});
