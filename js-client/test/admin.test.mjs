// The Socket.IO Admin UI's protocol (npm @socket.io/admin-ui 0.5, dist/index.js) on
// the admin namespace, with the official socket.io-client: login refused, accepted and
// resumed with its session; every event with its exact shape; members of every
// protocol as sockets of `/`; `_disconnect` of a TCP JSON member; read-only; lockout.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import net from 'node:net';
import { createRequire } from 'node:module';
import { io } from 'socket.io-client';
import WebSocket from 'ws';
import { binary, Client, joined, left, named, startServer, until, within } from './helpers.mjs';

const bcrypt = createRequire(import.meta.url)('bcryptjs');
const HASH = bcrypt.hashSync('s3cret', 4);
const ISO = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

// An admin client recording every event, in order.
class Admin {
  constructor(url, auth, options = {}) {
    this.events = [];
    this.socket = io(`${url}/admin`, { auth, forceNew: true, reconnection: false, ...options });
    this.socket.onAny((event, ...args) => this.events.push({ event, args }));
    this.socket.on('connect', () => this.events.push({ event: 'connect', args: [] }));
    this.socket.on('connect_error', (e) => this.events.push({ event: 'connect_error', args: [e.message] }));
  }

  // Waits for the first event not yet taken that is `event` (and passes `matches`),
  // takes it and returns its arguments.
  async take(event, matches = () => true) {
    let found;
    await until(() => {
      const index = this.events.findIndex((e) => e.event === event && matches(...e.args));
      if (index < 0) return false;
      [found] = this.events.splice(index, 1);
      return true;
    }, `admin event ${event}`);
    return found.args;
  }

  close() { this.socket.close(); }
}

const auth = { username: 'op', password: 's3cret' };
let server;
before(async () => {
  server = await startServer(['--no-history', '--admin-user', 'op', '--admin-password-hash', HASH]);
});
after(async () => { await server?.stop(); });

test('a wrong login gets exactly "invalid credentials"; a right one a session that logs in again', async () => {
  for (const wrong of [{ username: 'op', password: 'nope' }, { username: 'root', password: 's3cret' }, {}, { sessionId: 'f00' }]) {
    const admin = new Admin(server.url, wrong);
    assert.deepEqual(await admin.take('connect_error'), ['invalid credentials']);
    admin.close();
  }
  const admin = new Admin(server.url, auth);
  await admin.take('connect');
  const [session] = await admin.take('session');
  assert.match(session, /^[0-9a-f]{32}$/);
  assert.deepEqual(await admin.take('config'), [{ supportedFeatures: ['DISCONNECT'] }]);
  assert.deepEqual(await admin.take('all_sockets'), [[]]);
  const [stats] = await admin.take('server_stats');
  assert.deepEqual(Object.keys(stats).sort(), ['aggregatedEvents', 'clientsCount', 'hostname', 'namespaces',
    'pid', 'pollingClientsCount', 'serverId', 'uptime']);
  assert.equal(stats.pid, server.child.pid);
  assert.equal(stats.serverId, stats.hostname);
  assert.equal(stats.clientsCount, 1); // the admin itself
  assert.deepEqual(stats.namespaces, [{ name: '/', socketsCount: 0 }, { name: '/admin', socketsCount: 1 }]);
  // Every 2 s.
  const [again] = await admin.take('server_stats');
  assert.ok(again.uptime > stats.uptime);
  admin.close();

  const resumed = new Admin(server.url, { sessionId: session });
  await resumed.take('connect');
  assert.deepEqual(await resumed.take('config'), [{ supportedFeatures: ['DISCONNECT'] }]);
  assert.ok(!resumed.events.some((e) => e.event === 'session'), 'no new session for a resumed one');
  resumed.close();
  assert.ok(!server.output().includes('s3cret'), 'the password is never logged');
});

test('the UI is served at /admin/ with its fonts, ETags and compression', async () => {
  const page = await fetch(`${server.url}/admin/`, { headers: { 'accept-encoding': 'gzip' } });
  assert.equal(page.status, 200);
  assert.equal(page.headers.get('content-type'), 'text/html; charset=utf-8');
  assert.equal(page.headers.get('content-encoding'), 'gzip');
  const html = await page.text();
  assert.match(html, /<title>Socket.IO Admin UI<\/title>/);
  assert.ok(!html.includes('https://'), 'nothing from the internet');
  const etag = page.headers.get('etag');
  assert.equal((await fetch(`${server.url}/admin/`, { headers: { 'if-none-match': etag } })).status, 304);
  for (const [font, type] of [['fonts/roboto/files/roboto-latin-400-normal.woff2', 'font/woff2'],
    ['fonts/mdi/fonts/materialdesignicons-webfont.woff2', 'font/woff2'],
    ['fonts/mdi/css/materialdesignicons.min.css', 'text/css; charset=utf-8']]) {
    const response = await fetch(`${server.url}/admin/${font}`);
    assert.equal(response.status, 200, font);
    assert.equal(response.headers.get('content-type'), type);
  }
  assert.equal((await fetch(`${server.url}/admin`, { redirect: 'manual' })).headers.get('location'), '/admin/');
});

test('members of every protocol are sockets of /; _disconnect cuts a TCP JSON member off', async () => {
  const admin = new Admin(server.url, auth);
  await admin.take('all_sockets');

  const ann = await named(server.url, 'ann');
  const [annSocket, annTime] = await admin.take('socket_connected', (s) => s.id === ann.socket.id);
  assert.match(annTime, ISO);
  assert.deepEqual(Object.keys(annSocket).sort(), ['clientId', 'data', 'handshake', 'id', 'nsp', 'rooms', 'transport']);
  assert.equal(annSocket.nsp, '/');
  assert.deepEqual(annSocket.rooms, [ann.socket.id]);
  assert.deepEqual(Object.keys(annSocket.handshake).sort(), ['address', 'headers', 'issued', 'query', 'secure', 'time', 'url', 'xdomain']);
  assert.equal(annSocket.handshake.address, '127.0.0.1');
  assert.equal(typeof annSocket.handshake.issued, 'number');
  assert.equal(annSocket.handshake.query.EIO, '4');
  assert.ok(['polling', 'websocket'].includes(annSocket.transport));
  // Found on long-polling, its upgrade follows.
  if (annSocket.transport === 'polling') {
    const [upgrade] = await admin.take('socket_updated', (u) => u.id === ann.socket.id && u.transport);
    assert.deepEqual(upgrade, { id: ann.socket.id, nsp: '/', transport: 'websocket' });
  }
  const polling = new Client(server.url, { transports: ['polling'] });
  await polling.expect('connect');
  const [pollingSocket] = await admin.take('socket_connected', (s) => s.id === polling.socket.id);
  assert.equal(pollingSocket.transport, 'polling');
  assert.equal(pollingSocket.data.name, null);
  polling.close();
  await admin.take('socket_disconnected', (n, id) => id === pollingSocket.id);
  // Named before or after the comparison that found it: its name is there or follows.
  if (annSocket.data.name !== 'ann') {
    const [update] = await admin.take('socket_updated', (u) => u.id === ann.socket.id && u.data);
    assert.deepEqual(update, { id: ann.socket.id, nsp: '/', data: { name: 'ann', protocol: 'socketio' } });
  }

  const ws = new WebSocket(`ws://127.0.0.1:${server.ports.websocket}/`);
  await within(new Promise((resolve) => ws.once('open', resolve)), 'websocket open');
  const [wsSocket] = await admin.take('socket_connected', (s) => s.transport === 'ws');
  assert.match(wsSocket.id, /^websocket-\d+$/);
  assert.match(wsSocket.data.name, /^guest-\d+$/);
  assert.deepEqual(wsSocket.rooms, [wsSocket.id]);
  assert.equal(wsSocket.handshake.address, '127.0.0.1');

  const tcp = net.connect(server.ports.tcpJson, '127.0.0.1');
  let tcpOutput = '';
  tcp.setEncoding('utf8');
  tcp.on('data', (chunk) => { tcpOutput += chunk; });
  const tcpClosed = new Promise((resolve) => tcp.once('close', resolve));
  tcp.write(JSON.stringify({ type: 'CONNECT', content: 'tess' }));
  await until(() => tcpOutput.includes('tess connected!'), 'tess connected');
  const tessSocket = await (async () => {
    const [connected] = await admin.take('socket_connected', (s) => s.transport === 'tcp-json');
    if (connected.data.name === 'tess') return connected;
    await admin.take('socket_updated', (u) => u.id === connected.id && u.data?.name === 'tess');
    return connected;
  })();
  assert.match(tessSocket.id, /^tcp-json-\d+$/);
  assert.deepEqual(await ann.expect('update'), joined(wsSocket.data.name));
  assert.deepEqual(await ann.expect('update'), joined('tess'));

  ann.socket.emit('room', 'r1');
  const [nsp, room, id, time] = await admin.take('room_joined');
  assert.deepEqual([nsp, room, id], ['/', 'r1', ann.socket.id]);
  assert.match(time, ISO);

  admin.socket.emit('_disconnect', '/', false, tessSocket.id);
  await within(tcpClosed, 'the TCP JSON member cut off');
  assert.deepEqual(await ann.expect('update'), left('tess'));
  const [gone] = await admin.take('socket_disconnected', (n, i) => i === tessSocket.id);
  assert.equal(gone, '/');
  await until(() => /member thrown out by an operator member=\d+ socket=tcp-json-\d+ protocol="tcp-json" name="tess" user="op" from="127.0.0.1"/.test(server.output()), 'the throw-out logged');
  assert.deepEqual(await server.members(), ['ann', wsSocket.data.name]);

  ws.close();
  ann.close();
  admin.close();
  await server.empty();
});

test('read-only: no features offered and _disconnect refused; origins obeyed; the UI is 404 and the namespace absent when off', async () => {
  const readonly = await startServer(['--no-history', '--admin-no-auth', '--admin-readonly',
    '--allowed-origins', 'http://ops.example']);
  try {
    const foreign = new Admin(readonly.url, {}, { extraHeaders: { origin: 'http://elsewhere.example' } });
    await foreign.take('connect_error');
    assert.ok(!foreign.events.some((e) => e.event === 'connect'));
    foreign.close();
    await until(() => /origin not allowed/.test(readonly.output()), 'the foreign origin logged');
    const admin = new Admin(readonly.url, {}, { extraHeaders: { origin: 'http://ops.example' } });
    assert.deepEqual(await admin.take('config'), [{ supportedFeatures: [] }]);
    const tcp = net.connect(readonly.ports.tcpText, '127.0.0.1');
    const [member] = await admin.take('socket_connected', (s) => s.transport === 'tcp-text');
    admin.socket.emit('_disconnect', '/', false, member.id);
    await until(() => readonly.output().includes('admin disconnect refused: read-only'), 'the refusal logged');
    const [stats] = await admin.take('server_stats', (s) => s.namespaces[0].socketsCount === 1);
    assert.equal(stats.clientsCount, 2);
    tcp.destroy();
    admin.close();
  } finally {
    await readonly.stop();
  }
  const off = await startServer(['--no-history']);
  try {
    assert.equal((await fetch(`${off.url}/admin/`)).status, 404);
    const admin = new Admin(off.url, auth);
    assert.deepEqual(await admin.take('connect_error'), ['Invalid namespace']);
    admin.close();
  } finally {
    await off.stop();
  }
});

test('more than ten failed logins a minute lock the address out; a hash that is not bcrypt stops the start', async () => {
  // Whatever the log level: the passwords never appear in the log.
  process.env.RUST_LOG = 'trace';
  const locked = await startServer(['--no-history', '--admin-user', 'op', '--admin-password-hash', HASH])
    .finally(() => { delete process.env.RUST_LOG; });
  try {
    for (let i = 0; i < 11; i++) {
      const admin = new Admin(locked.url, { username: 'op', password: `guess${i}` });
      assert.deepEqual(await admin.take('connect_error'), ['invalid credentials']);
      admin.close();
    }
    const admin = new Admin(locked.url, auth);
    assert.deepEqual(await admin.take('connect_error'), ['too many failed logins: try again later']);
    admin.close();
    await until(() => /TRACE.*admin login refused: too many failed logins/s.test(locked.output()),
      'trace lines and the last refusal logged');
    assert.ok(!/guess|s3cret/.test(locked.output()), 'no password in the log');
  } finally {
    await locked.stop();
  }
  const child = spawn(binary, ['--port', '0', '--admin-user', 'op', '--admin-password-hash', 's3cret'], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (chunk) => { stderr += chunk; });
  const code = await within(new Promise((resolve) => child.on('exit', resolve)), 'exit');
  assert.equal(code, 1);
  assert.match(stderr, /chatterbox: --admin-password-hash is not a bcrypt hash/);
});
