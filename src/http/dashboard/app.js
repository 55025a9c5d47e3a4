// task-mcp dashboard: a live board over the REST API and the SSE stream of `task-mcp serve`.
// Plain modern JavaScript, no framework and no build step. Everything shown to the user is written with
// textContent (never innerHTML), so task text can never become markup; the server's CSP forbids inline
// script as a second line of defence.

const STATUSES = [
  { id: 'not_started', label: 'Not started' },
  { id: 'in_progress', label: 'In progress' },
  { id: 'blocked', label: 'Blocked' },
  { id: 'completed', label: 'Completed' },
  { id: 'cancelled', label: 'Cancelled' },
];
const STATUS_LABEL = Object.fromEntries(STATUSES.map((s) => [s.id, s.label]));
const PRIORITY_LABEL = { urgent: 'Urgent', high: 'High', medium: 'Medium', low: 'Low' };
const COMPLEXITY_LABEL = { high: 'High', medium: 'Medium', low: 'Low' };
const EVENT_TYPES = [
  'task_created', 'task_assigned', 'task_updated', 'task_completed', 'task_commented', 'task_deleted',
];
const FILTER_KEYS = ['repository', 'assignee', 'priority', 'q'];
const TOKEN_KEY = 'task-mcp.token';
const PAGE_SIZE = 100;
const FIELD_LABEL = {
  title: 'title', description: 'description', status: 'status', priority: 'priority',
  complexity: 'complexity', assignee: 'assignee', repository: 'repository',
};

const $ = (id) => document.getElementById(id);

const state = {
  token: null,
  me: null,
  users: [],
  repositories: [],
  /** id → task (the wire JSON, normalised), only tasks that match the filters. */
  tasks: new Map(),
  /** id → version at deletion, so a late listing cannot bring a deleted task back. */
  gone: new Map(),
  /** status → { cursor, loading } of each column's listing. */
  columns: Object.fromEntries(STATUSES.map((s) => [s.id, { cursor: null, loading: false }])),
  filters: { repository: '', assignee: '', priority: '', q: '' },
  /** Bumped by every full load, so answers of an older load are dropped. */
  generation: 0,
  /** Tasks changed by events during the current load (a quiet reload must not drop them). */
  touchedByEvents: new Set(),
  loaded: false,
  lastSeq: 0,
  supportsFullDetail: true,
  dragId: null,
  detail: null,
};

// ---------------------------------------------------------------------------------------------
// Small helpers

/** Builds an element. `props` are attributes (or `class`, `text`, `dataset`, `on*` listeners). */
function h(tag, props = {}, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(props)) {
    if (value == null || value === false) continue;
    if (key === 'class') el.className = value;
    else if (key === 'text') el.textContent = value;
    else if (key === 'dataset') Object.assign(el.dataset, value);
    else if (key.startsWith('on') && typeof value === 'function') el.addEventListener(key.slice(2), value);
    else el.setAttribute(key, value === true ? '' : String(value));
  }
  for (const child of children.flat()) {
    if (child == null || child === false) continue;
    el.append(child instanceof Node ? child : String(child));
  }
  return el;
}

const rtf = new Intl.RelativeTimeFormat(undefined, { numeric: 'auto', style: 'short' });
const dtf = new Intl.DateTimeFormat(undefined, { dateStyle: 'medium', timeStyle: 'short' });

/** "5 min. ago", "yesterday", …: how long ago an RFC 3339 instant was. */
function ago(iso) {
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) return '';
  const s = Math.round((ms - Date.now()) / 1000);
  const abs = Math.abs(s);
  if (abs < 45) return 'just now';
  if (abs < 45 * 60) return rtf.format(Math.round(s / 60), 'minute');
  if (abs < 22 * 3600) return rtf.format(Math.round(s / 3600), 'hour');
  if (abs < 26 * 86400) return rtf.format(Math.round(s / 86400), 'day');
  if (abs < 320 * 86400) return rtf.format(Math.round(s / (30 * 86400)), 'month');
  return rtf.format(Math.round(s / (365 * 86400)), 'year');
}

function timeEl(iso, prefix = '') {
  const ms = Date.parse(iso);
  return h('time', {
    datetime: iso,
    title: Number.isNaN(ms) ? iso : dtf.format(ms),
    dataset: { rel: '1', prefix },
  }, prefix + ago(iso));
}

/** The name part of an email, for compact display. */
function shortName(label) {
  if (!label) return '';
  const at = label.indexOf('@');
  return at > 0 ? label.slice(0, at) : label;
}

function initials(label) {
  const name = shortName(label).replace(/[^\p{L}\p{N}._ -]/gu, '');
  const parts = name.split(/[._ -]+/).filter(Boolean);
  if (parts.length >= 2) return (parts[0][0] + parts[1][0]).toUpperCase();
  return (name.slice(0, 2) || '?').toUpperCase();
}

/** One of 8 colour slots, stable per person (a data attribute, so the CSP needs no inline style). */
function hueSlot(label) {
  let x = 0;
  for (const ch of String(label || '')) x = (x * 31 + ch.codePointAt(0)) >>> 0;
  return String(x % 8);
}

function avatar(label, extraClass = '') {
  return h('span', { class: `avatar ${extraClass}`.trim(), 'aria-hidden': 'true', dataset: { hue: hueSlot(label) } },
    initials(label));
}

/** Who acted: a person signs in with their email; an agent over stdio may carry a label of its own. */
function actorKind(label) {
  return /^[^\s@]+@[^\s@]+$/.test(label || '') ? 'person' : 'agent';
}

function sameEmail(a, b) {
  return !!a && !!b && a.toLowerCase() === b.toLowerCase();
}

const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

function listOf(data, key) {
  if (Array.isArray(data)) return data;
  if (data && Array.isArray(data[key])) return data[key];
  if (data && Array.isArray(data.items)) return data.items;
  return [];
}

/** A task as the board keeps it: full JSON, or a listing summary brought to the same field names. */
function normalize(t) {
  return {
    ...t,
    description: t.description ?? null,
    assignee_email: t.assignee_email ?? t.assignee ?? null,
    assignee_id: t.assignee_id ?? null,
    repository: t.repository ?? null,
    version: typeof t.version === 'number' ? t.version : null,
  };
}

/** True when `a` is a newer state of a task than `b` (or as new: the same state shown again). */
function notOlder(a, b) {
  if (!b) return true;
  if (a.version != null && b.version != null) return a.version >= b.version;
  return (a.updated_at || '') >= (b.updated_at || '');
}

function announce(text) {
  const el = $('announcer');
  el.textContent = '';
  // A fresh text node after a tick makes screen readers read repeated messages too.
  setTimeout(() => { el.textContent = text; }, 30);
}

function toast(message, { kind = 'info', timeout } = {}) {
  const el = h('div', { class: `toast toast-${kind}` },
    h('span', { class: 'toast-text' }, message),
    h('button', { type: 'button', class: 'btn btn-ghost btn-icon btn-tiny', 'aria-label': 'Dismiss',
      onclick: () => el.remove() }, '✕'));
  $('toasts').append(el);
  setTimeout(() => el.remove(), timeout ?? (kind === 'error' ? 9000 : 5000));
}

// ---------------------------------------------------------------------------------------------
// The REST API

class ApiError extends Error {
  constructor(status, body, fallback) {
    const err = body && body.error;
    super((err && err.message) || fallback || `The server answered ${status}.`);
    this.status = status;
    this.code = err && err.code;
    this.details = err && err.details;
  }
}

async function api(method, path, { body, headers = {} } = {}) {
  const init = {
    method,
    cache: 'no-store',
    headers: { Accept: 'application/json', Authorization: `Bearer ${state.token}`, ...headers },
  };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  let res;
  try {
    res = await fetch(path, init);
  } catch {
    throw new ApiError(0, null, 'The server cannot be reached. Check that task-mcp serve is running.');
  }
  const text = await res.text();
  let data = null;
  if (text) {
    try { data = JSON.parse(text); } catch { data = null; }
  }
  if (res.status === 401) {
    const error = new ApiError(401, data, 'The server refused the token.');
    signedOut(error.message);
    throw error;
  }
  if (!res.ok) throw new ApiError(res.status, data);
  return { data, res };
}

/** The `If-Match` value for a version (an entity tag is a quoted string). */
function ifMatch(version) {
  return version == null ? {} : { 'If-Match': `"${version}"` };
}

/** The task a 409/412 answer carries as it is now (or null when the server did not send it). */
function conflictTask(error) {
  const d = error && error.details;
  if (!d || typeof d !== 'object') return null;
  const candidate = d.current || d.task || d.current_task || d;
  return candidate && candidate.id ? normalize(candidate) : null;
}

function isConflict(error) {
  return error instanceof ApiError && (error.status === 412 || error.status === 409);
}

// ---------------------------------------------------------------------------------------------
// Sign-in

/**
 * The token to sign in with: the stored one, or the one a `#token=` link carries. A link for someone
 * else than the one signed in here is not taken silently (a colleague's link would credit your edits
 * to them): the person is asked, and staying is the default.
 */
async function readToken() {
  const hash = new URLSearchParams(location.hash.slice(1));
  const fromUrl = hash.get('token') || hash.get('access_token');
  const stored = localStorage.getItem(TOKEN_KEY);
  if (!fromUrl) return stored;
  // The token must not stay in the address bar, the history or a bookmark.
  history.replaceState(history.state, '', location.pathname + location.search);
  const linkUser = tokenUser(fromUrl);
  const storedUser = stored ? tokenUser(stored) : null;
  if (stored && stored !== fromUrl && !(linkUser && linkUser === storedUser)) {
    const switchUser = await askToSwitch(storedUser || 'someone else', linkUser || 'an unknown user');
    if (!switchUser) return stored;
  }
  localStorage.setItem(TOKEN_KEY, fromUrl);
  return fromUrl;
}

/** Whom a JWT names (its `sub`), read without checking it (the server checks); null if unreadable. */
function tokenUser(token) {
  try {
    const part = token.split('.')[1] || '';
    const base64 = part.replace(/-/g, '+').replace(/_/g, '/').padEnd(Math.ceil(part.length / 4) * 4, '=');
    const claims = JSON.parse(new TextDecoder().decode(Uint8Array.from(atob(base64), (c) => c.charCodeAt(0))));
    return typeof claims.sub === 'string' && claims.sub ? claims.sub : null;
  } catch {
    return null;
  }
}

/** Asks whether to switch from `current` to `other`; resolves true only on "Switch". */
function askToSwitch(current, other) {
  const dialog = $('switch-user');
  $('s-current').textContent = current;
  $('s-current-again').textContent = current;
  $('s-link').textContent = other;
  $('s-link-again').textContent = other;
  dialog.returnValue = '';
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'switch'), { once: true });
    dialog.showModal();
  });
}

function showSignin(message) {
  disconnect();
  $('app').hidden = true;
  $('signin').hidden = false;
  const err = $('signin-error');
  err.hidden = !message;
  err.textContent = message || '';
  document.title = 'Sign in · task-mcp';
  $('signin-token').focus();
}

function signedOut(message) {
  localStorage.removeItem(TOKEN_KEY);
  state.token = null;
  for (const d of document.querySelectorAll('dialog[open]')) d.close();
  showSignin(message ? `${message} Paste a new token to sign in again.` : '');
}

$('signin-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const token = $('signin-token').value.trim().replace(/^Bearer\s+/i, '');
  if (!token) {
    showSignin('Paste the token first.');
    return;
  }
  state.token = token;
  localStorage.setItem(TOKEN_KEY, token);
  $('signin-token').value = '';
  await start();
});

$('signout').addEventListener('click', () => {
  signedOut('');
  announce('Signed out');
});

// ---------------------------------------------------------------------------------------------
// Filters, kept in the URL

function readFilters() {
  const params = new URLSearchParams(location.search);
  for (const key of FILTER_KEYS) state.filters[key] = params.get(key) || '';
  syncFilterControls();
}

/** The filter controls show the filters in force (after a reload, Back, or "Clear filters"). */
function syncFilterControls() {
  if (document.activeElement !== $('f-q')) $('f-q').value = state.filters.q;
  ensureOption($('f-repository'), state.filters.repository);
  ensureOption($('f-assignee'), state.filters.assignee);
  $('f-repository').value = state.filters.repository;
  $('f-assignee').value = state.filters.assignee;
  $('f-priority').value = state.filters.priority;
  $('f-clear').hidden = !FILTER_KEYS.some((k) => state.filters[k]);
}

function writeUrl({ push }) {
  const params = new URLSearchParams(location.search);
  for (const key of FILTER_KEYS) {
    if (state.filters[key]) params.set(key, state.filters[key]);
    else params.delete(key);
  }
  if (state.detail) params.set('task', state.detail.task?.key || state.detail.id);
  else params.delete('task');
  const query = params.toString();
  const url = location.pathname + (query ? `?${query}` : '');
  if (url === location.pathname + location.search) return;
  if (push) history.pushState(null, '', url);
  else history.replaceState(null, '', url);
}

function setFilters(changes, { push = true } = {}) {
  Object.assign(state.filters, changes);
  syncFilterControls();
  writeUrl({ push });
  loadBoard();
}

function ensureOption(select, value) {
  if (!value || [...select.options].some((o) => o.value === value)) return;
  select.append(h('option', { value }, value));
}

let searchTimer = 0;
$('f-q').addEventListener('input', () => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => setFilters({ q: $('f-q').value.trim() }, { push: false }), 250);
});
for (const key of ['repository', 'assignee', 'priority']) {
  $(`f-${key}`).addEventListener('change', (e) => setFilters({ [key]: e.target.value }));
}
$('filters').addEventListener('submit', (e) => {
  e.preventDefault();
  clearTimeout(searchTimer);
  setFilters({ q: $('f-q').value.trim() }, { push: false });
});
$('f-clear').addEventListener('click', () => {
  $('f-q').value = '';
  setFilters({ repository: '', assignee: '', priority: '', q: '' });
  $('f-q').focus();
});

window.addEventListener('popstate', () => {
  if (!state.token) return;
  readFilters();
  loadBoard();
  const id = new URLSearchParams(location.search).get('task');
  if (id && (!state.detail || (state.detail.id !== id && state.detail.task?.key !== id.toUpperCase()))) {
    openLinkedTask(id);
  }
  if (!id && state.detail) $('detail').close();
});

/** Whether a task belongs on the board under the current filters (for live events). */
function matchesFilters(t) {
  const f = state.filters;
  if (t.deleted_at) return false;
  if (f.repository && t.repository !== f.repository) return false;
  if (f.priority && t.priority !== f.priority) return false;
  if (f.assignee) {
    if (f.assignee === 'me') {
      if (!state.me) return false;
      if (t.assignee_id !== state.me.id && !sameEmail(t.assignee_email, state.me.email)) return false;
    } else if (UUID_RE.test(f.assignee)) {
      if (t.assignee_id !== f.assignee.toLowerCase()) return false;
    } else if (!sameEmail(t.assignee_email, f.assignee)) {
      return false;
    }
  }
  if (f.q) {
    const q = f.q.toLowerCase();
    if (!t.title.toLowerCase().includes(q) && !(t.description || '').toLowerCase().includes(q)) return false;
  }
  return true;
}

function filterParams() {
  const params = new URLSearchParams();
  for (const key of FILTER_KEYS) if (state.filters[key]) params.set(key, state.filters[key]);
  return params;
}

// ---------------------------------------------------------------------------------------------
// The board

function buildBoard() {
  const board = $('board');
  board.replaceChildren(...STATUSES.map((s) => h('section', {
    class: 'column', id: `col-${s.id}`, dataset: { status: s.id }, 'aria-labelledby': `col-h-${s.id}`,
  },
  h('h2', { class: 'column-head', id: `col-h-${s.id}` },
    h('span', { class: 'status-dot', dataset: { status: s.id }, 'aria-hidden': 'true' }),
    h('span', { class: 'column-title' }, s.label),
    h('span', { class: 'count', id: `count-${s.id}`, 'aria-label': '' }, '')),
  h('ol', { class: 'cards', id: `cards-${s.id}`, 'aria-labelledby': `col-h-${s.id}` }),
  h('p', { class: 'empty' }, 'No tasks'),
  h('button', { type: 'button', class: 'btn btn-ghost btn-small load-more', id: `more-${s.id}`, hidden: true,
    onclick: () => loadColumn(s.id, state.generation, { more: true }) }, 'Load more'))));
}

function cardFor(id) {
  return document.querySelector(`.card[data-id="${CSS.escape(id)}"]`);
}

function renderCardContent(t) {
  const titleId = `card-t-${t.id}`;
  const metaId = `card-m-${t.id}`;
  return [
    h('button', { type: 'button', class: 'card-open', id: titleId, 'aria-describedby': metaId,
      'aria-keyshortcuts': 'M', dataset: { action: 'open' } }, t.title),
    h('div', { class: 'card-meta', id: metaId },
      t.key ? h('span', { class: 'task-key', title: `Task ${t.key}` }, t.key) : null,
      h('span', { class: 'prio', dataset: { priority: t.priority } },
        h('span', { class: 'prio-icon', 'aria-hidden': 'true' }),
        h('span', { class: 'sr-only' }, 'Priority '), PRIORITY_LABEL[t.priority] || t.priority),
      t.repository ? h('span', { class: 'repo', title: `Repository ${t.repository}` },
        h('span', { class: 'sr-only' }, 'Repository '), t.repository) : null,
      t.open_blockers > 0 ? h('span', { class: 'blocked-mark', title: 'Waits on open blockers' },
        `Waits on ${t.open_blockers}`) : null,
      claimNote(t),
      h('span', { class: 'card-foot' },
        t.assignee_email
          ? h('span', { class: 'assignee', title: `Assigned to ${t.assignee_email}` },
            avatar(t.assignee_email, 'avatar-small'),
            h('span', { class: 'sr-only' }, 'Assigned to '), shortName(t.assignee_email))
          : h('span', { class: 'assignee unassigned' }, 'Unassigned'),
        h('span', { class: 'sr-only' }, ', changed '),
        timeEl(t.updated_at))),
    h('button', { type: 'button', class: 'card-move btn-icon', 'aria-haspopup': 'menu',
      'aria-label': `Move “${t.title}” to another status`, title: 'Move to…', dataset: { action: 'move' } },
    h('span', { 'aria-hidden': 'true' }, '⋯')),
  ];
}

/** Who holds a task's claim and for how long still (a full task knows when its lease ends). */
function claimText(t) {
  const holder = (t.claim && t.claim.holder) || t.claimed_by;
  if (!holder) return null;
  const expires = t.claim && Date.parse(t.claim.expires_at);
  if (!expires) return `Claimed by ${holder}`;
  const minutes = Math.round((expires - Date.now()) / 60000);
  const left = minutes > 0 ? `${minutes} min left` : 'lease ran out';
  return `Claimed by ${holder}${t.claim.agent ? ` (${t.claim.agent})` : ''} · ${left}`;
}

function claimNote(t) {
  const text = claimText(t);
  return text ? h('span', { class: 'claim-mark', title: text }, text) : null;
}

/** The claim, the blockers and the subtasks of the open task, with what a person can do about them. */
async function renderWork(t) {
  let box = $('d-work');
  if (!box) {
    box = h('section', { id: 'd-work', class: 'detail-work', 'aria-label': 'Claim, blockers and subtasks' });
    $('d-meta').after(box);
  }
  const parts = [];
  const claim = claimText(t);
  if (claim) {
    const release = h('button', { type: 'button', class: 'btn btn-small' }, 'Release the claim');
    release.addEventListener('click', async () => {
      try {
        // A person ends someone else's (stale) claim by setting the task back: recorded in its history.
        await api('PUT', `/api/tasks/${t.id}/status`,
          { body: { status: 'not_started', comment: 'claim released from the dashboard' } });
        await refreshDetail();
      } catch (error) {
        toast(`Could not release the claim: ${error.message}`, { kind: 'warn' });
      }
    });
    parts.push(h('p', { class: 'claim-line' }, claim, ' ', release));
  }
  let links = { blocked_by: [], blocking: [], subtasks: [], parent: null };
  try {
    links = (await api('GET', `/api/tasks/${t.id}/links`)).data || links;
  } catch (error) {
    if (error.status !== 404) parts.push(h('p', { class: 'muted small' }, `Links unavailable: ${error.message}`));
  }
  const list = (title, items) => items.length
    ? h('div', {}, h('h3', { class: 'small' }, title),
      h('ul', { class: 'link-list' }, ...items.map((l) => h('li', {}, `${l.title} (${l.status})`))))
    : null;
  if (links.parent) parts.push(h('p', { class: 'small' }, `Step of: ${links.parent.title} (${links.parent.status})`));
  parts.push(list('Waits on', links.blocked_by || []), list('Blocks', links.blocking || []),
    list('Subtasks', links.subtasks || []));
  const input = h('input', { type: 'text', placeholder: 'Task id it waits on', 'aria-label': 'Task id it waits on' });
  const link = h('button', { type: 'button', class: 'btn btn-small' }, 'Add blocker');
  link.addEventListener('click', async () => {
    const other = input.value.trim();
    if (!other) return;
    try {
      await api('PATCH', `/api/tasks/${t.id}`, { body: { add_blocked_by: [other] } });
      await refreshDetail();
    } catch (error) {
      toast(`Could not link the tasks: ${error.message}`, { kind: 'warn' });
    }
  });
  parts.push(h('p', { class: 'link-add' }, input, ' ', link));
  box.replaceChildren(...parts.filter(Boolean));
}

/** Puts a task's card where it belongs (its status column, newest change first), creating or updating it. */
function placeCard(t, { flash = false } = {}) {
  let li = cardFor(t.id);
  const hadFocus = li && li.contains(document.activeElement)
    ? document.activeElement.dataset.action || 'open' : null;
  if (!li) {
    li = h('li', { class: 'card', draggable: 'true', dataset: { id: t.id } });
  }
  li.dataset.priority = t.priority;
  li.dataset.updated = t.updated_at;
  li.dataset.status = t.status;
  li.replaceChildren(...renderCardContent(t));
  const list = $(`cards-${t.status}`);
  if (list) {
    let before = null;
    for (const other of list.children) {
      if (other !== li && (other.dataset.updated || '') < t.updated_at) { before = other; break; }
    }
    if (li.parentElement !== list || li.nextElementSibling !== before) list.insertBefore(li, before);
  }
  if (hadFocus) li.querySelector(`[data-action="${hadFocus}"]`)?.focus();
  if (flash) {
    li.classList.remove('flash');
    void li.offsetWidth; // restart the animation
    li.classList.add('flash');
  }
  updateCounts();
}

function removeCard(id) {
  const li = cardFor(id);
  if (!li) return;
  const hadFocus = li.contains(document.activeElement);
  const next = li.nextElementSibling || li.previousElementSibling;
  li.remove();
  if (hadFocus) (next?.querySelector('.card-open') || $('board')).focus();
  updateCounts();
}

function updateCounts() {
  for (const s of STATUSES) {
    const list = $(`cards-${s.id}`);
    const count = $(`count-${s.id}`);
    if (!list || !count) continue;
    const more = state.columns[s.id].cursor ? '+' : '';
    count.textContent = `${list.children.length}${more}`;
    count.setAttribute('aria-label', `${list.children.length}${more ? ' or more' : ''} tasks`);
  }
}

/** Applies a task state that arrived (listing, event, own write). Returns what happened. */
function applyTask(raw, { flash = false, force = false } = {}) {
  const t = normalize(raw);
  const current = state.tasks.get(t.id);
  if (!force && current && !notOlder(t, current)) return 'stale';
  const goneAt = state.gone.get(t.id);
  if (!force && !t.deleted_at && goneAt != null && (t.version == null || t.version <= goneAt)) return 'stale';
  if (t.deleted_at) state.gone.set(t.id, t.version ?? Number.MAX_SAFE_INTEGER);
  if (!matchesFilters(t)) {
    if (current) {
      state.tasks.delete(t.id);
      removeCard(t.id);
      return 'removed';
    }
    return 'ignored';
  }
  state.tasks.set(t.id, t);
  placeCard(t, { flash });
  return current ? (current.status !== t.status ? 'moved' : 'updated') : 'added';
}

async function fetchTasks(params) {
  if (state.supportsFullDetail) params.set('detail', 'full');
  try {
    return (await api('GET', `/api/tasks?${params}`)).data;
  } catch (error) {
    // A server without `detail=full` answers 400 naming the field: list summaries instead.
    const field = error.details && error.details.field;
    if (state.supportsFullDetail && error.status === 400 && (field === 'detail' || /detail/.test(error.message))) {
      state.supportsFullDetail = false;
      params.delete('detail');
      return (await api('GET', `/api/tasks?${params}`)).data;
    }
    throw error;
  }
}

async function loadColumn(status, generation, { more = false, seen = null } = {}) {
  const column = state.columns[status];
  if (column.loading) return;
  const params = filterParams();
  params.set('status', status);
  params.set('limit', String(PAGE_SIZE));
  if (more && column.cursor) params.set('cursor', column.cursor);
  column.loading = true;
  const button = $(`more-${status}`);
  if (button) button.disabled = true;
  try {
    const page = await fetchTasks(params);
    if (generation !== state.generation) return;
    for (const t of listOf(page, 'tasks')) {
      if (seen) seen.add(t.id);
      applyTask(t);
    }
    column.cursor = page && page.next_cursor ? page.next_cursor : null;
  } finally {
    column.loading = false;
    if (generation === state.generation && button) {
      button.hidden = !column.cursor;
      button.disabled = false;
    }
    updateCounts();
  }
}

/**
 * Loads the whole board for the current filters: one listing per column, in parallel. `quiet` keeps the
 * cards on screen while it reloads (after a resync or a reconnect) and then drops those that vanished.
 */
async function loadBoard({ quiet = false } = {}) {
  const generation = ++state.generation;
  const board = $('board');
  state.touchedByEvents = new Set();
  if (!quiet) {
    state.tasks.clear();
    for (const s of STATUSES) {
      $(`cards-${s.id}`)?.replaceChildren();
      state.columns[s.id] = { cursor: null, loading: false };
    }
    board.setAttribute('aria-busy', 'true');
    board.classList.add('loading');
  } else {
    for (const s of STATUSES) state.columns[s.id] = { cursor: null, loading: false };
  }
  const seen = new Set();
  try {
    await Promise.all(STATUSES.map((s) => loadColumn(s.id, generation, { seen })));
    if (generation !== state.generation) return;
    if (quiet) {
      for (const id of [...state.tasks.keys()]) {
        if (!seen.has(id) && !state.touchedByEvents.has(id)) {
          state.tasks.delete(id);
          removeCard(id);
        }
      }
    }
    state.loaded = true;
  } catch (error) {
    if (generation === state.generation && error.status !== 401) {
      toast(`Could not load the tasks: ${error.message}`, { kind: 'error' });
    }
  } finally {
    if (generation === state.generation) {
      board.removeAttribute('aria-busy');
      board.classList.remove('loading');
      board.classList.toggle('filtered', FILTER_KEYS.some((k) => state.filters[k]));
      updateCounts();
    }
  }
}

// Card interactions: open, move menu, keyboard.
$('board').addEventListener('click', (e) => {
  const button = e.target.closest('[data-action]');
  const li = e.target.closest('.card');
  if (!button || !li) return;
  if (button.dataset.action === 'open') openDetail(li.dataset.id);
  if (button.dataset.action === 'move') openMoveMenu(li.dataset.id, button);
});

$('board').addEventListener('keydown', (e) => {
  const li = e.target.closest('.card');
  if (!li || e.ctrlKey || e.metaKey || e.altKey) return;
  if (e.key === 'm' || e.key === 'M') {
    e.preventDefault();
    openMoveMenu(li.dataset.id, li.querySelector('.card-move'));
  } else if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
    const sibling = e.key === 'ArrowDown' ? li.nextElementSibling : li.previousElementSibling;
    if (sibling) {
      e.preventDefault();
      sibling.querySelector('.card-open')?.focus();
    }
  }
});

// Drag and drop between columns.
$('board').addEventListener('dragstart', (e) => {
  const li = e.target.closest && e.target.closest('.card');
  if (!li) return;
  state.dragId = li.dataset.id;
  e.dataTransfer.effectAllowed = 'move';
  e.dataTransfer.setData('application/x-task-id', li.dataset.id);
  e.dataTransfer.setData('text/plain', state.tasks.get(li.dataset.id)?.title || li.dataset.id);
  // Mark after the browser took its drag image, so the image is not the faded card.
  requestAnimationFrame(() => li.classList.add('dragging'));
});

$('board').addEventListener('dragend', () => {
  document.querySelector('.card.dragging')?.classList.remove('dragging');
  for (const c of document.querySelectorAll('.column.drop-target')) c.classList.remove('drop-target');
  state.dragId = null;
});

$('board').addEventListener('dragover', (e) => {
  const column = e.target.closest && e.target.closest('.column');
  if (!column || !state.dragId) return;
  e.preventDefault();
  e.dataTransfer.dropEffect = 'move';
  for (const c of document.querySelectorAll('.column.drop-target')) {
    if (c !== column) c.classList.remove('drop-target');
  }
  const task = state.tasks.get(state.dragId);
  if (task && task.status !== column.dataset.status) column.classList.add('drop-target');
});

$('board').addEventListener('dragleave', (e) => {
  const column = e.target.closest && e.target.closest('.column');
  if (column && !column.contains(e.relatedTarget)) column.classList.remove('drop-target');
});

$('board').addEventListener('drop', (e) => {
  const column = e.target.closest && e.target.closest('.column');
  if (!column) return;
  e.preventDefault();
  column.classList.remove('drop-target');
  const id = e.dataTransfer.getData('application/x-task-id') || state.dragId;
  state.dragId = null;
  if (id) moveTask(id, column.dataset.status);
});

/** Changes a task's status: the card moves at once, and back if the server says no. */
async function moveTask(id, status) {
  const before = state.tasks.get(id);
  if (!before || before.status === status) return;
  const optimistic = { ...before, status, updated_at: new Date().toISOString().replace('Z', '000Z') };
  state.tasks.set(id, optimistic);
  placeCard(optimistic);
  try {
    const { data } = await api('PUT', `/api/tasks/${id}/status`, { body: { status }, headers: ifMatch(before.version) });
    if (data && data.id) applyTask(data);
    announce(`Moved “${before.title}” to ${STATUS_LABEL[status]}.`);
    afterOwnWrite(data);
  } catch (error) {
    if (state.tasks.get(id) === optimistic) {
      state.tasks.set(id, before);
      placeCard(before);
    }
    if (isConflict(error)) {
      const current = conflictTask(error) || (await refetchTask(id));
      if (current) applyTask(current, { flash: true, force: true });
      const who = current ? ` by ${current.updated_by}` : '';
      toast(`“${before.title}” was changed${who} in the meantime, so it was not moved. The board shows its current state.`,
        { kind: 'warn', timeout: 9000 });
    } else if (error.status !== 401) {
      toast(`Could not move “${before.title}”: ${error.message}`, { kind: 'error' });
    }
  }
}

async function refetchTask(id) {
  try {
    const { data } = await api('GET', `/api/tasks/${id}`);
    return data && data.id ? normalize(data) : null;
  } catch {
    return null;
  }
}

// The "Move to…" menu of a card.
let menuAnchor = null;
function openMoveMenu(id, anchor) {
  const task = state.tasks.get(id);
  const menu = $('move-menu');
  if (!task || !anchor) return;
  menuAnchor = anchor;
  menu.replaceChildren(
    h('div', { class: 'menu-label', 'aria-hidden': 'true' }, 'Move to'),
    ...STATUSES.map((s) => h('button', {
      type: 'button', role: 'menuitemradio', class: 'menu-item',
      'aria-checked': String(s.id === task.status), dataset: { status: s.id },
      onclick: () => {
        menu.hidePopover();
        moveTask(id, s.id);
      },
    }, h('span', { class: 'status-dot', dataset: { status: s.id }, 'aria-hidden': 'true' }), s.label,
    s.id === task.status ? h('span', { class: 'check', 'aria-hidden': 'true' }, '✓') : null)),
  );
  menu.showPopover();
  const r = anchor.getBoundingClientRect();
  const width = menu.offsetWidth;
  const height = menu.offsetHeight;
  const left = Math.max(8, Math.min(r.right - width, window.innerWidth - width - 8));
  const top = r.bottom + 4 + height > window.innerHeight ? Math.max(8, r.top - height - 4) : r.bottom + 4;
  // CSSOM writes are not inline style attributes: the CSP allows them.
  menu.style.left = `${left}px`;
  menu.style.top = `${top}px`;
  (menu.querySelector('[aria-checked="false"]') || menu.querySelector('.menu-item'))?.focus();
}

$('move-menu').addEventListener('keydown', (e) => {
  const items = [...$('move-menu').querySelectorAll('.menu-item')];
  const i = items.indexOf(document.activeElement);
  let next = null;
  if (e.key === 'ArrowDown') next = items[(i + 1) % items.length];
  else if (e.key === 'ArrowUp') next = items[(i - 1 + items.length) % items.length];
  else if (e.key === 'Home') next = items[0];
  else if (e.key === 'End') next = items[items.length - 1];
  else if (e.key === 'Tab') $('move-menu').hidePopover();
  if (next) {
    e.preventDefault();
    next.focus();
  }
});

$('move-menu').addEventListener('toggle', (e) => {
  if (e.newState === 'closed' && menuAnchor) {
    const anchor = menuAnchor;
    menuAnchor = null;
    // The card may have been re-rendered meanwhile: focus its current move button.
    const li = anchor.closest('.card');
    const target = anchor.isConnected ? anchor : (li && cardFor(li.dataset.id)?.querySelector('.card-move'));
    if (target && !document.querySelector('dialog[open]')) target.focus({ preventScroll: true });
  }
});

// ---------------------------------------------------------------------------------------------
// Live updates over SSE

let source = null;
let reconnectTimer = 0;
let reconnectDelay = 1000;
/** Set while the first load waits for the stream to open (so no change falls between the two). */
let openWaiter = null;

function setConn(stateName, text) {
  const conn = $('conn');
  conn.dataset.state = stateName;
  $('conn-text').textContent = text;
  conn.title = {
    live: 'Live: changes appear as they happen',
    connecting: 'Connecting to the live feed…',
    reconnecting: 'The live feed dropped: reconnecting. Changes made meanwhile will be caught up.',
    offline: 'Offline: changes will appear when the connection is back',
  }[stateName] || '';
}

/** Bumped by every connect and disconnect, so a connect still fetching its ticket can tell it is stale. */
let connectGeneration = 0;

async function connect() {
  disconnect();
  const generation = connectGeneration;
  setConn('connecting', 'Connecting…');
  // The stream's URL carries a ticket that opens the stream alone and expires within a minute, not
  // the sign-in token: URLs end up in proxies' access logs.
  let ticket;
  try {
    ({ data: { ticket } } = await api('POST', '/api/tasks/stream/ticket'));
  } catch (error) {
    if (generation !== connectGeneration) return;
    // A refused token signed out already; anything else is retried like a dropped stream.
    if (error.status !== 401) scheduleReconnect();
    return;
  }
  if (generation !== connectGeneration) return;
  const params = new URLSearchParams({ access_token: ticket });
  // A new EventSource sends no Last-Event-ID header: say where to resume in the query instead.
  if (state.lastSeq > 0) params.set('last_event_id', String(state.lastSeq));
  const url = `/api/tasks/stream?${params}`;
  const es = new EventSource(url);
  source = es;
  es.onopen = () => {
    if (source !== es) return;
    reconnectDelay = 1000;
    setConn('live', 'Live');
    if (openWaiter) {
      // The first load starts now: it sees everything committed before the stream opened.
      openWaiter();
      openWaiter = null;
    } else if (state.lastSeq === 0 && state.loaded) {
      // A reconnect with no event seen yet has nothing to resume from: catch up by reloading.
      loadBoard({ quiet: true });
      refreshDetail();
    }
  };
  es.onerror = () => {
    if (source !== es) return;
    if (es.readyState === EventSource.CLOSED) {
      // The browser gave up (an HTTP error rather than a dropped connection, such as a ticket that
      // expired before the browser's own reconnect): retry ourselves, with a new ticket.
      scheduleReconnect();
    } else {
      // The browser reconnects by itself and resumes with Last-Event-ID.
      setConn(navigator.onLine ? 'reconnecting' : 'offline', navigator.onLine ? 'Reconnecting…' : 'Offline');
    }
  };
  for (const type of EVENT_TYPES) es.addEventListener(type, onTaskEvent);
  es.addEventListener('resync', (e) => {
    // The events we missed are no longer kept: reload everything, then follow on from here.
    let seq = Number(e.lastEventId);
    try { seq = Number(JSON.parse(e.data).seq ?? seq); } catch { /* keep the id */ }
    state.lastSeq = Number.isFinite(seq) ? seq : 0;
    loadBoard({ quiet: true });
    refreshDetail();
  });
}

function disconnect() {
  connectGeneration += 1;
  clearTimeout(reconnectTimer);
  if (source) {
    source.close();
    source = null;
  }
}

function scheduleReconnect() {
  disconnect();
  setConn(navigator.onLine ? 'reconnecting' : 'offline', navigator.onLine ? 'Reconnecting…' : 'Offline');
  clearTimeout(reconnectTimer);
  reconnectTimer = setTimeout(async () => {
    // A refused token is the one failure that retrying will not fix: ask for a new one.
    try {
      await api('GET', '/api/me');
    } catch (error) {
      if (error.status === 401) return;
      reconnectDelay = Math.min(reconnectDelay * 2, 30000);
      scheduleReconnect();
      return;
    }
    connect();
  }, reconnectDelay);
}

window.addEventListener('online', () => {
  if (!state.token) return;
  if (source && source.readyState === EventSource.OPEN) {
    setConn('live', 'Live'); // the stream survived the blip
  } else {
    reconnectDelay = 1000;
    scheduleReconnect();
  }
});
window.addEventListener('offline', () => {
  if (state.token) setConn('offline', 'Offline');
});

function onTaskEvent(e) {
  let event;
  try {
    event = JSON.parse(e.data);
  } catch {
    return;
  }
  const seq = Number(event.seq ?? e.lastEventId);
  if (Number.isFinite(seq) && seq > 0) {
    if (seq <= state.lastSeq) return; // already seen (a replay after resume)
    state.lastSeq = seq;
  }
  const type = event.type || e.type;
  const task = event.task && event.task.id ? event.task : null;
  state.touchedByEvents.add(event.task_id || (task && task.id));
  if (task) {
    if (type === 'task_deleted') task.deleted_at = task.deleted_at || event.timestamp || new Date().toISOString();
    const before = state.tasks.get(task.id);
    const result = applyTask(task, { flash: true });
    noteNames(task);
    if (result !== 'stale' && result !== 'ignored') announceEvent(type, normalize(task), before, event.actor);
  } else if (type === 'task_deleted' && event.task_id) {
    state.gone.set(event.task_id, Number.MAX_SAFE_INTEGER);
    state.tasks.delete(event.task_id);
    removeCard(event.task_id);
  }
  if (state.detail && state.detail.id === (event.task_id || (task && task.id))) onDetailEvent(type, task);
}

function announceEvent(type, t, before, actor) {
  const by = actor ? ` by ${shortName(actor)}` : '';
  if (type === 'task_deleted') announce(`“${t.title}” was deleted${by}.`);
  else if (!before) announce(`“${t.title}” appeared in ${STATUS_LABEL[t.status]}${by}.`);
  else if (before.status !== t.status) announce(`“${t.title}” moved to ${STATUS_LABEL[t.status]}${by}.`);
}

/** New repositories and people seen in events join the filter and form choices. */
function noteNames(t) {
  const task = normalize(t);
  if (task.repository && !state.repositories.includes(task.repository)) {
    state.repositories.push(task.repository);
    state.repositories.sort((a, b) => a.localeCompare(b));
    renderChoices();
  }
  if (task.assignee_email && !state.users.some((u) => sameEmail(u.email, task.assignee_email))) {
    state.users.push({ id: task.assignee_id, email: task.assignee_email });
    renderChoices();
  }
}

// Relative times stay true while the page is open.
setInterval(() => {
  for (const el of document.querySelectorAll('time[data-rel]')) {
    el.textContent = (el.dataset.prefix || '') + ago(el.getAttribute('datetime'));
  }
}, 30000);

// ---------------------------------------------------------------------------------------------
// Users and repositories (filter choices and form suggestions)

async function loadChoices() {
  const [users, repos] = await Promise.allSettled([api('GET', '/api/users'), api('GET', '/api/repositories')]);
  if (users.status === 'fulfilled') {
    state.users = listOf(users.value.data, 'users').filter((u) => u && u.email);
  }
  if (repos.status === 'fulfilled') {
    state.repositories = listOf(repos.value.data, 'repositories').map((r) => (typeof r === 'string' ? r : r.name))
      .filter(Boolean);
  }
  state.users.sort((a, b) => a.email.localeCompare(b.email));
  state.repositories.sort((a, b) => a.localeCompare(b));
  renderChoices();
}

function renderChoices() {
  const repoSelect = $('f-repository');
  const assigneeSelect = $('f-assignee');
  repoSelect.replaceChildren(h('option', { value: '', dataset: { short: 'All', long: 'Repository' } }, 'All'),
    ...state.repositories.map((name) => h('option', { value: name }, name)));
  const others = state.users.filter((u) => !(state.me && sameEmail(u.email, state.me.email)));
  assigneeSelect.replaceChildren(h('option', { value: '', dataset: { short: 'Anyone', long: 'Assignee' } }, 'Anyone'),
    h('option', { value: 'me' }, state.me ? `Me (${shortName(state.me.email)})` : 'Me'),
    ...others.map((u) => h('option', { value: u.email }, u.email)));
  ensureOption(repoSelect, state.filters.repository);
  ensureOption(assigneeSelect, state.filters.assignee);
  repoSelect.value = state.filters.repository;
  assigneeSelect.value = state.filters.assignee;
  labelDefaults();
  $('users-list').replaceChildren(h('option', { value: 'me' }),
    ...state.users.map((u) => h('option', { value: u.email })));
  $('repos-list').replaceChildren(...state.repositories.map((name) => h('option', { value: name })));
}

// On a phone the filter labels are hidden: the "any" choices then say what they filter.
const narrow = window.matchMedia('(max-width: 720px)');
function labelDefaults() {
  for (const option of document.querySelectorAll('#filters option[data-short]')) {
    option.textContent = narrow.matches ? option.dataset.long : option.dataset.short;
  }
  // The "/" shortcut means nothing without a keyboard.
  $('f-q').placeholder = narrow.matches ? 'Search tasks…' : 'Search tasks…  ( / )';
}
narrow.addEventListener('change', labelDefaults);
labelDefaults();

// ---------------------------------------------------------------------------------------------
// Task detail

const detailFields = ['title', 'description', 'priority', 'complexity', 'assignee', 'repository'];

function fieldsOf(t) {
  return {
    title: t.title || '',
    description: t.description || '',
    priority: t.priority,
    complexity: t.complexity || 'medium',
    assignee: t.assignee_email || '',
    repository: t.repository || '',
  };
}

function formValues() {
  return {
    title: $('d-title').value.trim(),
    description: $('d-description').value.replace(/\s+$/, ''),
    priority: $('d-priority').value,
    complexity: $('d-complexity').value,
    assignee: $('d-assignee').value.trim(),
    repository: $('d-repository').value.trim(),
  };
}

function fillForm(values) {
  $('d-title').value = values.title;
  $('d-description').value = values.description;
  $('d-priority').value = values.priority;
  $('d-complexity').value = values.complexity;
  $('d-assignee').value = values.assignee;
  $('d-repository').value = values.repository;
  autosize($('d-title'));
  updateDirty();
}

/** The fields the form changes relative to the task it was opened on. */
function changedFields() {
  const d = state.detail;
  if (!d || !d.task) return {};
  const base = fieldsOf(d.task);
  const now = formValues();
  const changed = {};
  for (const f of detailFields) {
    const same = f === 'assignee' ? sameEmail(now[f], base[f]) || now[f] === base[f] : now[f] === base[f];
    if (!same) changed[f] = now[f];
  }
  return changed;
}

function updateDirty() {
  const dirty = Object.keys(changedFields()).length > 0;
  $('d-save').disabled = !dirty;
  $('d-revert').disabled = !dirty;
  return dirty;
}

function autosize(el) {
  if (CSS.supports('field-sizing', 'content')) return;
  el.style.height = 'auto';
  el.style.height = `${el.scrollHeight}px`;
}

async function openDetail(id, { fromHistory = false } = {}) {
  const dialog = $('detail');
  state.detail = { id, task: state.tasks.get(id) || null, comments: [], history: [], inflight: null, theirs: null };
  if (!fromHistory) writeUrl({ push: true });
  $('d-conflict').hidden = true;
  $('d-changed').hidden = true;
  $('d-error').hidden = true;
  $('d-comment-error').hidden = true;
  $('d-comments').replaceChildren();
  $('d-history').replaceChildren();
  $('d-comments-count').textContent = '';
  if (state.detail.task) renderDetailTask(state.detail.task);
  if (!dialog.open) dialog.showModal();
  dialog.querySelector('[data-close]').focus();
  await refreshDetail();
}

function renderDetailTask(t) {
  $('d-heading').textContent = t.title;
  $('d-status').value = t.status;
  $('d-status').dataset.status = t.status;
  fillForm(fieldsOf(t));
  const meta = $('d-meta');
  meta.replaceChildren(
    t.key ? h('span', { class: 'task-key' }, `${t.key} · `) : null,
    h('span', {}, `Created by ${t.created_by} `), timeEl(t.created_at),
    t.updated_at !== t.created_at ? h('span', {}, ` · updated by ${t.updated_by} `) : null,
    t.updated_at !== t.created_at ? timeEl(t.updated_at) : null,
  );
  renderWork(t);
}

/** Re-reads the open task, its comments and its history. */
async function refreshDetail() {
  const d = state.detail;
  if (!d) return;
  const id = d.id;
  try {
    const [task, comments, history] = await Promise.all([
      api('GET', `/api/tasks/${id}`),
      api('GET', `/api/tasks/${id}/comments`),
      api('GET', `/api/tasks/${id}/history`),
    ]);
    if (state.detail !== d) return;
    const fresh = normalize(task.data);
    const etag = task.res.headers.get('ETag');
    if (fresh.version == null && etag) fresh.version = Number(etag.replace(/\D/g, '')) || null;
    d.comments = listOf(comments.data, 'comments');
    d.history = listOf(history.data, 'history');
    renderComments();
    renderHistory();
    adoptTheirs(fresh);
  } catch (error) {
    if (state.detail !== d || error.status === 401) return;
    if (error.status === 404) {
      toast('That task does not exist any more.', { kind: 'warn' });
      $('detail').close();
      return;
    }
    showDetailError(`Could not load the task: ${error.message}`);
  }
}

/** Shows a newer state of the open task, unless the user is editing: then it waits behind a notice. */
function adoptTheirs(fresh) {
  const d = state.detail;
  if (!d) return;
  if (d.task && !notOlder(fresh, d.task)) return;
  const sameVersion = d.task && fresh.version != null && fresh.version === d.task.version;
  if (d.task && updateDirty()) {
    // Never overwrite what the user is typing: hold the new state behind a notice.
    if (!sameVersion) {
      d.theirs = fresh;
      $('d-changed').hidden = false;
    }
    return;
  }
  d.task = fresh;
  d.theirs = null;
  $('d-changed').hidden = true;
  renderDetailTask(fresh);
}

function onDetailEvent(type, task) {
  const d = state.detail;
  const run = async () => {
    if (d.inflight) await d.inflight.catch(() => {});
    if (state.detail !== d) return;
    if (type === 'task_deleted') {
      toast(`“${d.task ? d.task.title : 'This task'}” was deleted.`, { kind: 'warn' });
      $('detail').close();
      return;
    }
    if (task) adoptTheirs(normalize(task));
    // Comments and history are not in the event: read them again.
    const [comments, history] = await Promise.all([
      api('GET', `/api/tasks/${d.id}/comments`), api('GET', `/api/tasks/${d.id}/history`),
    ]);
    if (state.detail !== d) return;
    d.comments = listOf(comments.data, 'comments');
    d.history = listOf(history.data, 'history');
    renderComments({ flashNew: true });
    renderHistory();
  };
  run().catch(() => {});
}

function showDetailError(message) {
  const el = $('d-error');
  el.textContent = message;
  el.hidden = !message;
}

function renderComments({ flashNew = false } = {}) {
  const d = state.detail;
  const list = $('d-comments');
  const known = new Set([...list.children].map((li) => li.dataset.id));
  list.replaceChildren(...d.comments.map((c) => h('li', {
    class: `comment${flashNew && !known.has(c.id) ? ' flash' : ''}`, dataset: { id: c.id },
  },
  avatar(c.author),
  h('div', { class: 'comment-body' },
    h('div', { class: 'comment-head' },
      h('span', { class: 'who' }, c.author), actorBadge(c.author), timeEl(c.created_at)),
    h('p', { class: 'comment-text' }, c.comment)))));
  $('d-comments-count').textContent = d.comments.length ? String(d.comments.length) : '';
}

function actorBadge(label) {
  return actorKind(label) === 'agent' ? h('span', { class: 'badge badge-agent', title: 'An agent' }, 'agent') : null;
}

function describeValue(field, value) {
  if (value == null || value === '') return 'none';
  if (field === 'status') return STATUS_LABEL[value] || value;
  if (field === 'priority') return PRIORITY_LABEL[value] || value;
  if (field === 'complexity') return COMPLEXITY_LABEL[value] || value;
  return value;
}

function historyLine(entry) {
  const field = entry.field_changed;
  if (field === 'created' || field === 'task') return [h('span', {}, 'created the task')];
  if (field === 'deleted' || field === 'deleted_at') return [h('span', {}, 'deleted the task')];
  if (field === 'comment') {
    const text = entry.new_value || '';
    const short = text.length > 140 ? `${text.slice(0, 140).trimEnd()}…` : text;
    return [h('span', {}, 'commented: '), h('q', { class: 'quoted' }, short)];
  }
  const name = FIELD_LABEL[field] || field.replace(/_/g, ' ');
  if (field === 'description') {
    if (!entry.old_value) return [h('span', {}, 'added a description')];
    if (!entry.new_value) return [h('span', {}, 'removed the description')];
    return [h('span', {}, 'edited the description')];
  }
  if (entry.old_value == null || entry.old_value === '') {
    return [h('span', {}, `set ${name} to `), h('strong', {}, describeValue(field, entry.new_value))];
  }
  if (entry.new_value == null || entry.new_value === '') {
    return [h('span', {}, `cleared ${name} (was `), h('strong', {}, describeValue(field, entry.old_value)),
      h('span', {}, ')')];
  }
  return [h('span', {}, `changed ${name} from `), h('strong', {}, describeValue(field, entry.old_value)),
    h('span', {}, ' to '), h('strong', {}, describeValue(field, entry.new_value))];
}

function renderHistory() {
  const d = state.detail;
  const rows = [...d.history].sort((a, b) => (b.changed_at || '').localeCompare(a.changed_at || ''));
  // One entry per change: rows written by one person at one instant belong together.
  const groups = [];
  for (const row of rows) {
    const last = groups[groups.length - 1];
    if (last && last.by === row.changed_by && last.at === row.changed_at) last.rows.push(row);
    else groups.push({ by: row.changed_by, at: row.changed_at, rows: [row] });
  }
  const items = groups.map((g) => h('li', { class: 'history-item' },
    avatar(g.by, 'avatar-small'),
    h('div', { class: 'history-body' },
      h('div', { class: 'history-head' }, h('span', { class: 'who' }, g.by), actorBadge(g.by), timeEl(g.at)),
      h('ul', { class: 'history-changes' }, ...g.rows.map((r) => h('li', {}, ...historyLine(r)))),
      ...g.rows.filter((r) => r.comment).slice(0, 1).map((r) => h('p', { class: 'history-comment' }, r.comment)))));
  const t = d.task;
  if (t && !d.history.some((r) => r.field_changed === 'created' || r.field_changed === 'task')) {
    items.push(h('li', { class: 'history-item' }, avatar(t.created_by, 'avatar-small'),
      h('div', { class: 'history-body' },
        h('div', { class: 'history-head' }, h('span', { class: 'who' }, t.created_by), actorBadge(t.created_by),
          timeEl(t.created_at)),
        h('ul', { class: 'history-changes' }, h('li', {}, 'created the task')))));
  }
  $('d-history').replaceChildren(...items);
}

/** Runs a write on the open task; SSE echoes of it wait until it is done (so they are not "someone else"). */
async function detailWrite(fn) {
  const d = state.detail;
  const p = fn(d);
  d.inflight = p;
  try {
    return await p;
  } finally {
    if (d.inflight === p) d.inflight = null;
  }
}

/** After our own write: the board and the open detail take the answer. */
function afterOwnWrite(task) {
  if (!task || !task.id) return;
  const d = state.detail;
  if (d && d.id === task.id && d.task) {
    const fresh = normalize(task);
    if (notOlder(fresh, d.task)) {
      // Keep unsaved edits of other fields: rebase them on our own new version.
      const edits = changedFields();
      d.task = fresh;
      renderDetailTask(fresh);
      if (Object.keys(edits).length) fillForm({ ...fieldsOf(fresh), ...edits });
    }
  }
}

$('d-form').addEventListener('input', (e) => {
  if (e.target.id === 'd-title') autosize(e.target);
  updateDirty();
});
$('d-form').addEventListener('change', () => updateDirty());
$('d-title').addEventListener('keydown', (e) => {
  if (e.key === 'Enter') {
    e.preventDefault();
    if (!$('d-save').disabled) $('d-form').requestSubmit();
  }
});

$('d-revert').addEventListener('click', () => {
  const d = state.detail;
  if (!d || !d.task) return;
  fillForm(fieldsOf(d.theirs || d.task));
  if (d.theirs) adoptTheirs(d.theirs);
  $('d-conflict').hidden = true;
});

$('d-changed-load').addEventListener('click', () => {
  const d = state.detail;
  if (!d || !d.theirs) return;
  const edits = changedFields();
  d.task = d.theirs;
  d.theirs = null;
  renderDetailTask(d.task);
  $('d-changed').hidden = true;
  if (Object.keys(edits).length) showConflict(d.task, edits, { saved: false });
});

$('d-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const d = state.detail;
  if (!d || !d.task) return;
  const changes = changedFields();
  if (!Object.keys(changes).length) return;
  if ('title' in changes && !changes.title) {
    showDetailError('A task needs a title.');
    $('d-title').focus();
    return;
  }
  const body = {};
  for (const [field, value] of Object.entries(changes)) {
    const name = field === 'assignee' ? 'assignee_id' : field;
    body[name] = ['description', 'assignee', 'repository'].includes(field) && value === '' ? null : value;
  }
  showDetailError('');
  $('d-save').disabled = true;
  try {
    await detailWrite(async () => {
      const { data } = await api('PATCH', `/api/tasks/${d.id}`, { body, headers: ifMatch(d.task.version) });
      if (state.detail !== d) return;
      const fresh = normalize(data);
      d.task = fresh;
      d.theirs = null;
      $('d-changed').hidden = true;
      $('d-conflict').hidden = true;
      renderDetailTask(fresh);
      applyTask(fresh, { flash: true });
      announce('Saved.');
      toast('Saved.');
    });
  } catch (error) {
    if (state.detail !== d) return;
    if (isConflict(error)) {
      const current = conflictTask(error) || (await refetchTask(d.id));
      if (current) {
        d.task = current;
        d.theirs = null;
        $('d-changed').hidden = true;
        renderDetailTask(current);
        applyTask(current, { flash: true, force: true });
        showConflict(current, changes, { saved: false });
      }
    } else if (error.status !== 401) {
      showDetailError(`Not saved: ${error.message}`);
    }
    updateDirty();
  }
});

let pendingEdits = null;
/** Says that someone else changed the task first, shows their version, and offers our edits back. */
function showConflict(current, edits, _opts) {
  pendingEdits = edits;
  const fields = Object.keys(edits).map((f) => FIELD_LABEL[f] || f).join(', ');
  $('d-conflict-text').textContent = `${current.updated_by} changed this task while you were editing it `
    + `(now version ${current.version ?? '?'}). Your edits (${fields}) were not saved; `
    + 'the form shows the task as it is now.';
  $('d-conflict').hidden = false;
  $('d-conflict-reapply').focus();
}

$('d-conflict-reapply').addEventListener('click', () => {
  const d = state.detail;
  if (!d || !d.task || !pendingEdits) return;
  fillForm({ ...fieldsOf(d.task), ...pendingEdits });
  pendingEdits = null;
  $('d-conflict').hidden = true;
  $('d-title').focus();
});
$('d-conflict-dismiss').addEventListener('click', () => {
  pendingEdits = null;
  $('d-conflict').hidden = true;
  $('d-title').focus();
});

// Status in the detail applies at once.
$('d-status').addEventListener('change', async () => {
  const d = state.detail;
  if (!d || !d.task) return;
  const status = $('d-status').value;
  $('d-status').dataset.status = status;
  try {
    await detailWrite(async () => {
      const { data } = await api('PUT', `/api/tasks/${d.id}/status`, { body: { status }, headers: ifMatch(d.task.version) });
      applyTask(data, { flash: true });
      afterOwnWrite(data);
      announce(`Status: ${STATUS_LABEL[status]}.`);
    });
  } catch (error) {
    if (state.detail !== d) return;
    if (isConflict(error)) {
      const current = conflictTask(error) || (await refetchTask(d.id));
      if (current) {
        const edits = changedFields();
        d.task = current;
        renderDetailTask(current);
        if (Object.keys(edits).length) fillForm({ ...fieldsOf(current), ...edits });
        applyTask(current, { flash: true, force: true });
        showDetailError(`${current.updated_by} changed this task first: it is now ${STATUS_LABEL[current.status]}. `
          + 'Choose the status again if you still want to change it.');
      }
    } else if (error.status !== 401) {
      $('d-status').value = d.task.status;
      $('d-status').dataset.status = d.task.status;
      showDetailError(`Status not changed: ${error.message}`);
    }
  }
});

$('d-comment-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const d = state.detail;
  const text = $('d-comment').value.trim();
  const err = $('d-comment-error');
  if (!d || !text) return;
  const button = e.target.querySelector('button[type="submit"]');
  button.disabled = true;
  err.hidden = true;
  try {
    await detailWrite(async () => {
      const { data } = await api('POST', `/api/tasks/${d.id}/comments`, { body: { comment: text } });
      $('d-comment').value = '';
      const comment = data && (data.comment && data.comment.id ? data.comment : data);
      if (comment && comment.id && !d.comments.some((c) => c.id === comment.id)) {
        d.comments.push(comment);
        renderComments({ flashNew: true });
      }
      if (data && data.task && data.task.id) {
        applyTask(data.task);
        afterOwnWrite(data.task);
      }
    });
  } catch (error) {
    if (error.status !== 401) {
      err.textContent = `Not sent: ${error.message}`;
      err.hidden = false;
    }
  } finally {
    button.disabled = false;
  }
});
$('d-comment').addEventListener('keydown', (e) => {
  if (e.key === 'Enter' && (e.ctrlKey || e.metaKey)) {
    e.preventDefault();
    $('d-comment-form').requestSubmit();
  }
});

$('detail').addEventListener('close', () => {
  const id = state.detail && state.detail.id;
  state.detail = null;
  pendingEdits = null;
  writeUrl({ push: true });
  if (id) cardFor(id)?.querySelector('.card-open')?.focus({ preventScroll: false });
});

/** Closes the detail, unless the user has unsaved edits and wants to keep them. */
function closeDetail() {
  if (updateDirty() && !window.confirm('Discard your unsaved changes to this task?')) return;
  $('detail').close();
}

// A click on the backdrop (outside the sheet) closes it, as Escape does.
$('detail').addEventListener('click', (e) => {
  if (e.target === $('detail')) closeDetail();
});
$('create').addEventListener('click', (e) => {
  if (e.target === $('create')) $('create').close();
});
for (const button of $('detail').querySelectorAll('[data-close]')) button.addEventListener('click', closeDetail);
for (const button of $('create').querySelectorAll('[data-close]')) {
  button.addEventListener('click', () => $('create').close());
}

// Unsaved edits are not dropped silently by Escape either.
$('detail').addEventListener('cancel', (e) => {
  if (updateDirty() && !window.confirm('Discard your unsaved changes to this task?')) e.preventDefault();
});

$('d-delete').addEventListener('click', async () => {
  const d = state.detail;
  if (!d || !d.task) return;
  if (!window.confirm(`Delete “${d.task.title}”? It disappears from every board.`)) return;
  try {
    await detailWrite(() => api('DELETE', `/api/tasks/${d.id}`, { headers: ifMatch(d.task.version) }));
    state.gone.set(d.id, Number.MAX_SAFE_INTEGER);
    state.tasks.delete(d.id);
    removeCard(d.id);
    toast(`Deleted “${d.task.title}”.`);
    $('d-form').reset();
    $('detail').close();
  } catch (error) {
    if (state.detail !== d || error.status === 401) return;
    if (isConflict(error)) {
      const current = conflictTask(error) || (await refetchTask(d.id));
      if (current) {
        d.task = current;
        renderDetailTask(current);
        applyTask(current, { flash: true, force: true });
      }
      showDetailError('Someone else changed this task first; it was not deleted. Look at it again before deleting.');
    } else {
      showDetailError(`Not deleted: ${error.message}`);
    }
  }
});

// ---------------------------------------------------------------------------------------------
// New task

let idempotencyKey = null;

function openCreate() {
  const form = $('c-form');
  form.reset();
  $('c-error').hidden = true;
  const status = $('c-status');
  status.replaceChildren(...STATUSES.map((s) => h('option', { value: s.id }, s.label)));
  if (state.filters.repository) $('c-repository').value = state.filters.repository;
  if (state.filters.priority) $('c-priority').value = state.filters.priority;
  if (state.filters.assignee) $('c-assignee').value = state.filters.assignee;
  idempotencyKey = crypto.randomUUID();
  $('create').showModal();
  $('c-title').focus();
}

$('new-task').addEventListener('click', openCreate);

$('c-form').addEventListener('submit', async (e) => {
  e.preventDefault();
  const err = $('c-error');
  const title = $('c-title').value.trim();
  if (!title) {
    err.textContent = 'A task needs a title.';
    err.hidden = false;
    $('c-title').focus();
    return;
  }
  const body = {
    title,
    status: $('c-status').value,
    priority: $('c-priority').value,
    complexity: $('c-complexity').value,
  };
  const description = $('c-description').value.trim();
  const assignee = $('c-assignee').value.trim();
  const repository = $('c-repository').value.trim();
  if (description) body.description = description;
  if (assignee) body.assignee_id = assignee;
  if (repository) body.repository = repository;
  const submit = e.target.querySelector('button[type="submit"]');
  submit.disabled = true;
  err.hidden = true;
  try {
    const { data } = await api('POST', '/api/tasks', { body, headers: { 'Idempotency-Key': idempotencyKey } });
    $('create').close();
    const result = applyTask(data, { flash: true });
    noteNames(data);
    if (result === 'ignored') toast(`Created “${title}”. The current filters hide it.`);
    else {
      toast(`Created “${title}”.`);
      cardFor(data.id)?.scrollIntoView({ block: 'nearest', inline: 'nearest' });
    }
  } catch (error) {
    if (error.status !== 401) {
      err.textContent = error.message;
      err.hidden = false;
    }
  } finally {
    submit.disabled = false;
  }
});

// ---------------------------------------------------------------------------------------------
// Keyboard shortcuts: "/" searches, "n" creates.

document.addEventListener('keydown', (e) => {
  if (!state.token || e.ctrlKey || e.metaKey || e.altKey) return;
  if (document.querySelector('dialog[open]')) return;
  const typing = e.target.closest && e.target.closest('input, textarea, select, [contenteditable]');
  if (typing) return;
  if (e.key === '/') {
    e.preventDefault();
    $('f-q').focus();
    $('f-q').select();
  } else if (e.key === 'n' || e.key === 'N') {
    e.preventDefault();
    openCreate();
  }
});

// ---------------------------------------------------------------------------------------------
// Start

async function start() {
  let me;
  try {
    me = (await api('GET', '/api/me')).data;
  } catch (error) {
    if (error.status === 401) return; // signedOut() already shows the sign-in page
    $('signin').hidden = true;
    $('app').hidden = false;
    setConn('offline', 'Offline');
    toast(`${error.message} Retrying…`, { kind: 'error', timeout: 4000 });
    setTimeout(start, 3000);
    return;
  }
  state.me = me && me.user ? me.user : me;
  $('signin').hidden = true;
  $('app').hidden = false;
  document.title = 'Tasks · task-mcp';
  $('me').textContent = state.me ? state.me.email : '';
  $('me').title = state.me ? `Signed in as ${state.me.email}` : '';
  readFilters();
  buildBoard();
  state.loaded = false;
  state.lastSeq = 0;
  // Open the stream first and list once it is open, so no change falls between the two. A stream
  // slow to open does not hold the board back: after 1.5 s it lists anyway, and lists again on open.
  const opened = new Promise((resolve) => {
    openWaiter = resolve;
    setTimeout(() => {
      if (openWaiter === resolve) {
        openWaiter = null;
        resolve();
      }
    }, 1500);
  });
  connect();
  loadChoices().catch(() => {});
  await opened;
  await loadBoard();
  const id = new URLSearchParams(location.search).get('task');
  if (id) openLinkedTask(id);
}

/** Opens the task a link names (`?task=` a UUID or a key such as WEB-42): a key is looked up first, so
 * the open task is always known by its id. */
async function openLinkedTask(ref) {
  const uuid = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
  if (uuid.test(ref)) return openDetail(ref.toLowerCase(), { fromHistory: true });
  try {
    const found = await api('GET', `/api/tasks/${encodeURIComponent(ref)}`);
    if (found.data?.id) openDetail(found.data.id, { fromHistory: true });
  } catch {
    // An unknown key opens nothing: the board is shown as it is.
  }
}

$('d-status').replaceChildren(...STATUSES.map((s) => h('option', { value: s.id }, s.label)));

readToken().then((token) => {
  state.token = token;
  if (token) start();
  else showSignin('');
});
