// chatterbox's lobby page. It speaks the original Socket.IO lobby protocol exactly as
// the original page does (prompt on every connect, `newUser`, `message`, console.log of
// every `update`) and also shows the chat: the earlier lines from the history API, the
// live chat, and who is here (the `members` event it subscribes to, which original
// pages never do). Every text a client sent is rendered with textContent, never as HTML.
//
// It shows every stored line exactly once, in order, across reconnects and server
// restarts: a stored line has one id (the `id` of its `update`, its `/api/history` id,
// and for its own lines the id the server acknowledges a `message` with). On every
// connect it reads what came after the last line it has shown (the first time: the
// latest page), holding the live lines that arrive meanwhile, then shows those it has
// not shown yet. Lines without an id (a server without history) are shown as they come.
'use strict';

/** Lines fetched from the history per page. */
const HISTORY_PAGE_LINES = 50;
/** Lines fetched per request when catching up after a reconnect. */
const CATCH_UP_PAGE_LINES = 100;
/** How often, and how long apart, a failed catch-up is tried again while connected. */
const CATCH_UP_TRIES = 10;
const CATCH_UP_RETRY_MS = 1000;

const scroller = document.getElementById('scroll');
const log = document.getElementById('log');
const earlier = document.getElementById('earlier');
const older = document.getElementById('older');
const input = document.getElementById('test');
const state = document.getElementById('state');
const memberCount = document.getElementById('member-count');
const memberList = document.getElementById('member-list');
let myName = '익명';
let olderThan = null;
// Whether the server keeps a history: unknown until the first page has been read.
let history = 'unknown';
// The id of the last stored line shown (0: none yet); null while history is not 'on'.
let lastShown = null;
// Catch-ups under way, and the live lines held until they are done, in order.
let catchingUp = 0;
let catchUps = Promise.resolve();
let held = [];

const socket = io();

function setState(kind, text) {
  state.dataset.state = kind;
  state.textContent = text;
}

// One line of the chat; `who` is null for server notices and errors.
function lineItem(kind, who, text) {
  const item = document.createElement('li');
  item.className = kind;
  if (who !== null) {
    const name = document.createElement('span');
    name.className = 'name';
    name.textContent = who;
    item.append(name, ' : ');
  }
  const body = document.createElement('span');
  body.className = 'text';
  body.textContent = text;
  item.append(body);
  return item;
}

function append(kind, who, text) {
  const nearBottom = scroller.scrollHeight - scroller.scrollTop - scroller.clientHeight < 48;
  log.append(lineItem(kind, who, text));
  if (nearBottom || kind === 'mine') scroller.scrollTop = scroller.scrollHeight;
}

// A page of the history: the parsed body; null when the server keeps no history.
// Throws when the server cannot be asked now.
async function historyPage(query) {
  const response = await fetch(`/api/history?${query}`);
  if (response.status === 404) return null;
  if (!response.ok) throw new Error(`history: HTTP ${response.status}`);
  return response.json();
}

// Puts a page of the history (older than `before`, or the latest) above what is shown,
// keeping the view where it was. The latest page also tells where the live chat starts.
async function loadEarlier(before) {
  const query = before === null ? `limit=${HISTORY_PAGE_LINES}` : `limit=${HISTORY_PAGE_LINES}&before=${before}`;
  const page = await historyPage(query);
  if (page === null) {
    history = 'off';
    return;
  }
  if (before === null) {
    history = 'on';
    const last = page.lines.at(-1);
    lastShown = Math.max(lastShown ?? 0, last ? Number(last.id) : 0);
  }
  const fromBottom = scroller.scrollHeight - scroller.scrollTop;
  earlier.prepend(...page.lines.map((line) => {
    const item = lineItem('earlier', String(line.name), String(line.text));
    item.title = new Date(line.time).toLocaleString();
    return item;
  }));
  scroller.scrollTop = before === null ? scroller.scrollHeight : scroller.scrollHeight - fromBottom;
  olderThan = page.older;
  older.hidden = olderThan === null;
}

older.addEventListener('click', () => {
  if (olderThan !== null) loadEarlier(olderThan).catch(() => {});
});

// Shows a chat line or notice: `kind` 'message', 'mine' or 'notice'; `id` a stored
// line's id, if it has one. A stored line already shown is not shown again.
function show({ kind, name, text, id }) {
  if (typeof id === 'number' && lastShown !== null) {
    if (id <= lastShown) return;
    lastShown = id;
  }
  append(kind, kind === 'notice' ? null : name, text);
}

// A live line: shown now, or held while a catch-up is under way.
function receive(item) {
  if (catchingUp > 0) held.push(item);
  else show(item);
}

// Shows the stored lines after `after`, page by page, up to the latest.
async function loadAfter(after) {
  for (let from = after; from !== null;) {
    const page = await historyPage(`after=${from}&limit=${CATCH_UP_PAGE_LINES}`);
    if (page === null) return;
    for (const line of page.lines) {
      show({ kind: 'message', name: String(line.name), text: String(line.text), id: Number(line.id) });
    }
    from = page.newer;
  }
}

// Reads what this page has not seen (the first time: the latest page), trying again
// while connected if the server cannot be asked.
async function catchUp() {
  for (let tries = 1; ; tries += 1) {
    try {
      if (history === 'unknown') await loadEarlier(null);
      else if (history === 'on') await loadAfter(lastShown);
      return;
    } catch {
      if (!socket.connected) return; // the next connect catches up
      if (tries === CATCH_UP_TRIES) {
        append('error', null, 'the lines said while this page was away could not be fetched');
        return;
      }
      await new Promise((resolve) => setTimeout(resolve, CATCH_UP_RETRY_MS));
    }
  }
}

function startCatchUp() {
  catchingUp += 1;
  catchUps = catchUps.then(catchUp).finally(() => {
    catchingUp -= 1;
    if (catchingUp > 0) return;
    const waiting = held;
    held = [];
    for (const item of waiting) show(item);
  });
}

socket.on('connect', () => {
  // Before anything else: the updates of this connection are held from the first.
  startCatchUp();
  setState('connected', 'connected');
  let name = prompt('반갑습니다!', '');
  if (!name) name = '익명';
  myName = name.trim() || '익명';
  socket.emit('newUser', name);
  socket.emit('members');
});

socket.on('disconnect', () => {
  setState('disconnected', 'disconnected — reconnecting…');
  memberCount.textContent = '–';
  memberList.replaceChildren();
});
socket.on('connect_error', () => setState('disconnected', 'cannot reach the server — retrying…'));

socket.on('update', (data) => {
  console.log(`${data.name} : ${data.message}`);
  if (data.type === 'message') {
    const id = typeof data.id === 'number' ? data.id : undefined;
    receive({ kind: 'message', name: String(data.name), text: String(data.message), id });
  } else {
    receive({ kind: 'notice', text: String(data.message) });
  }
});

socket.on('members', (data) => {
  memberCount.textContent = String(data.count);
  memberList.replaceChildren(...data.members.map((member) => {
    const item = document.createElement('li');
    const name = document.createElement('span');
    name.className = 'member-name';
    name.textContent = String(member.name);
    const protocol = document.createElement('span');
    protocol.className = 'protocol';
    protocol.textContent = String(member.protocol);
    item.title = `since ${new Date(member.since).toLocaleTimeString()}`;
    item.append(name, ' ', protocol);
    return item;
  }));
});

socket.on('error', (data) => {
  append('error', null, data && data.message ? String(data.message) : 'error');
});

// Sends a line and shows it once the server has taken it, where it is in the chat
// (the acknowledgement carries its id). While disconnected, nothing is sent (a
// buffered line would reach the server before this page's name) and the text stays.
const send = () => {
  const message = input.value;
  if (!message) return;
  if (!socket.connected) {
    append('error', null, 'not connected: the line was not sent');
    return;
  }
  input.value = '';
  const name = myName;
  socket.emit('message', { type: 'message', message: message }, (reply) => {
    const id = reply && typeof reply.id === 'number' ? reply.id : undefined;
    receive({ kind: 'mine', name, text: message, id });
  });
};

document.getElementById('composer').addEventListener('submit', (event) => {
  event.preventDefault();
  send();
  input.focus();
});

