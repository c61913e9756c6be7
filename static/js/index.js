// chatterbox's lobby page. It speaks the original Socket.IO lobby protocol exactly as
// the original page does (prompt on every connect, `newUser`, `message`, console.log of
// every `update`) and also shows the chat: the earlier lines from the history API, the
// live chat, and who is here (the `members` event it subscribes to, which original
// pages never do). Every text a client sent is rendered with textContent, never as HTML.
'use strict';

/** Lines fetched from the history per page. */
const HISTORY_PAGE_LINES = 50;

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

// Puts a page of the history (older than `before`, or the latest) above what is shown,
// keeping the view where it was.
async function loadEarlier(before) {
  const query = before === null ? `limit=${HISTORY_PAGE_LINES}` : `limit=${HISTORY_PAGE_LINES}&before=${before}`;
  let page;
  try {
    const response = await fetch(`/api/history?${query}`);
    if (!response.ok) return; // no history on this server
    page = await response.json();
  } catch {
    return;
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
  if (olderThan !== null) loadEarlier(olderThan);
});

socket.on('connect', () => {
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
    append('message', String(data.name), String(data.message));
  } else {
    append('notice', null, String(data.message));
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

const send = () => {
  const message = input.value;
  input.value = '';
  if (!message) return;
  socket.emit('message', { type: 'message', message: message });
  append('mine', myName, message);
};

document.getElementById('composer').addEventListener('submit', (event) => {
  event.preventDefault();
  send();
  input.focus();
});

loadEarlier(null);
