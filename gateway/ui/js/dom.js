// A small DOM builder: views build nodes with h() and never parse HTML, so names, env values
// and function output are always text, never markup.

/** h('a', {href: '#/'}, 'text', child, [children]) */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === undefined || value === null || value === false) continue;
    if (key.startsWith('on') && typeof value === 'function') {
      el.addEventListener(key.slice(2), value);
    } else if (key === 'class') {
      el.className = value;
    } else if (value === true) {
      el.setAttribute(key, '');
    } else {
      el.setAttribute(key, String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === undefined || child === null || child === false) continue;
    if (Array.isArray(child)) append(el, child);
    else el.append(child instanceof Node ? child : String(child));
  }
}

/** Replaces the children of `el`. */
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
}

let ids = 0;
/** A labelled form field: label, control, hint and an error slot (aria-describedby). */
export function field(label, control, hint) {
  const id = control.id || `f${++ids}`;
  control.id = id;
  const error = h('div', { class: 'field-error', id: `${id}-error`, role: 'alert' });
  const hintEl = hint ? h('div', { class: 'hint', id: `${id}-hint` }, hint) : null;
  control.setAttribute('aria-describedby', [hintEl && hintEl.id, error.id].filter(Boolean).join(' '));
  const wrap = h('div', { class: 'field' }, h('label', { for: id }, label), control, hintEl, error);
  wrap.error = error;
  wrap.control = control;
  return wrap;
}

/** A definition list of an object's keys and values ("none" when empty). */
export function kv(object) {
  const entries = Object.entries(object || {});
  if (!entries.length) return h('p', { class: 'hint' }, 'none');
  return h('dl', { class: 'kv' }, entries.map(([k, v]) => [h('dt', {}, k), h('dd', {}, String(v))]));
}

let pending = null;

/** A message for the next page (said after it opens, as opening one clears the line). */
export function flash(message) {
  pending = message;
}

/** The flashed message, once. */
export function takeFlash() {
  const message = pending;
  pending = null;
  return message;
}

/** The status line under the header: a message, or an error. */
export function say(message, isError = false) {
  const el = document.getElementById('status');
  el.textContent = message || '';
  el.classList.toggle('error', Boolean(isError));
}

export function bytes(n) {
  if (!n) return '–';
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) { n /= 1024; i += 1; }
  return `${n.toFixed(i ? 1 : 0)} ${units[i]}`;
}

export function seconds(s) {
  if (s === null || s === undefined || Number.isNaN(s)) return '–';
  return s < 1 ? `${(s * 1000).toFixed(s < 0.01 ? 1 : 0)} ms` : `${s.toFixed(2)} s`;
}
