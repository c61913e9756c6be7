// chatterbox's lobby page. It speaks the original Socket.IO lobby protocol exactly as
// the original page does (prompt on every connect, `newUser`, `message`, console.log of
// every `update`) and also shows the chat. Every text a client sent is rendered with
// textContent, never as HTML.
'use strict';

const log = document.getElementById('log');
const input = document.getElementById('test');
const state = document.getElementById('state');
let myName = '익명';

const socket = io();

function setState(kind, text) {
  state.dataset.state = kind;
  state.textContent = text;
}

// Appends one line; `who` is null for server notices and errors.
function append(kind, who, text) {
  const nearBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 48;
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
  log.append(item);
  if (nearBottom || kind === 'mine') log.scrollTop = log.scrollHeight;
}

socket.on('connect', () => {
  setState('connected', 'connected');
  let name = prompt('반갑습니다!', '');
  if (!name) name = '익명';
  myName = name.trim() || '익명';
  socket.emit('newUser', name);
});

socket.on('disconnect', () => setState('disconnected', 'disconnected — reconnecting…'));
socket.on('connect_error', () => setState('disconnected', 'cannot reach the server — retrying…'));

socket.on('update', (data) => {
  console.log(`${data.name} : ${data.message}`);
  if (data.type === 'message') {
    append('message', String(data.name), String(data.message));
  } else {
    append('notice', null, String(data.message));
  }
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
