// The gateway's public API from the browser: the credentials of this tab (kept in
// sessionStorage, sent as the Authorization header), JSON bodies, and errors carrying the
// gateway's {"message"} so views can show them.

const KEY = 'ferry.authorization';

/** The Authorization header value in use, or null. */
export function authorization() {
  return sessionStorage.getItem(KEY);
}

/** Basic credentials (the gateway's user and password) or an API token. */
export function login({ user, password, token }) {
  const value = token
    ? `Bearer ${token.trim()}`
    : `Basic ${base64(`${user}:${password}`)}`;
  sessionStorage.setItem(KEY, value);
}

export function logout() {
  sessionStorage.removeItem(KEY);
}

function base64(text) {
  let binary = '';
  for (const byte of new TextEncoder().encode(text)) binary += String.fromCharCode(byte);
  return btoa(binary);
}

/** An answer that was not 2xx: the status and the gateway's message. */
export class ApiError extends Error {
  constructor(status, message) {
    super(message || `HTTP ${status}`);
    this.status = status;
  }
}

async function messageOf(response) {
  const text = await response.text();
  try {
    const parsed = JSON.parse(text);
    if (parsed && typeof parsed.message === 'string') return parsed.message;
  } catch (_) { /* not JSON */ }
  return text.trim() || `${response.status} ${response.statusText}`;
}

/**
 * Sends a request; with `raw` the Response itself (any status), otherwise the parsed JSON
 * (or text) of a 2xx answer, and an ApiError for anything else. A 401 also tells the app
 * (event `ferry:unauthorized`), which asks for credentials again.
 */
export async function request(method, path, { body, headers, raw, signal } = {}) {
  const h = new Headers(headers || {});
  // Tells the gateway to answer 401 without a challenge: with one, the browser would open its
  // own login prompt over the page.
  h.set('X-Requested-With', 'ferry-dashboard');
  const auth = authorization();
  if (auth && !h.has('Authorization')) h.set('Authorization', auth);
  let payload = body;
  if (body !== undefined && body !== null && typeof body === 'object' && !(body instanceof Blob)) {
    payload = JSON.stringify(body);
    h.set('Content-Type', 'application/json');
  }
  const response = await fetch(path, { method, headers: h, body: payload, signal });
  if (response.status === 401 && path.startsWith('/system/')) {
    window.dispatchEvent(new CustomEvent('ferry:unauthorized'));
  }
  if (raw) return response;
  if (!response.ok) throw new ApiError(response.status, await messageOf(response));
  if (response.status === 204) return null;
  const type = response.headers.get('content-type') || '';
  return type.includes('json') ? response.json() : response.text();
}

export const get = (path, options) => request('GET', path, options);

/** `name.namespace`, the address of a function in the gateway's routes. */
export function qualified(name, namespace) {
  return namespace ? `${name}.${namespace}` : name;
}

export const enc = encodeURIComponent;
