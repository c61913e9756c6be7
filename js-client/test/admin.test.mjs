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
import { binary, Client, joined, left, line, named, startServer, until, within } from './helpers.mjs';

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
  assert.deepEqual(await admin.take('config'), [{ supportedFeatures: ['DISCONNECT', 'AGGREGATED_EVENTS', 'ALL_EVENTS'] }]);
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
  assert.deepEqual(await resumed.take('config'), [{ supportedFeatures: ['DISCONNECT', 'AGGREGATED_EVENTS', 'ALL_EVENTS'] }]);
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
  await until(() => /member thrown out by an operator member=\d+ socket=tcp-json-\d+ protocol="tcp-json" name="tess" user="op" from="127\.0\.0\.1"\n/.test(server.output()), 'the throw-out logged');
  assert.deepEqual(await server.members(), ['ann', wsSocket.data.name]);

  ws.close();
  ann.close();
  admin.close();
  await server.empty();
});

// Sums every server_stats' aggregatedEvents by type (subType aside).
function totals(events) {
  const sums = {};
  for (const { args: [stats] } of events.filter((e) => e.event === 'server_stats')) {
    for (const { type, count } of stats.aggregatedEvents) sums[type] = (sums[type] ?? 0) + count;
  }
  return sums;
}

test('aggregatedEvents count a line in and its update out exactly, in packets and bytes; production sends no member events', async () => {
  const admin = new Admin(server.url, auth);
  await admin.take('all_sockets');
  const ann = await named(server.url, 'ann');
  const bob = await named(server.url, 'bob');
  assert.deepEqual(await ann.expect('update'), joined('bob'));
  // A window with no traffic in it, after the joins: from its end on, everything is
  // counted once.
  admin.events = admin.events.filter((e) => e.event !== 'server_stats');
  await admin.take('server_stats', (s) => !s.aggregatedEvents.some((e) => /^(packets|bytes)/.test(e.type)));
  admin.events = admin.events.filter((e) => e.event !== 'server_stats');

  ann.socket.emit('message', { type: 'message', message: 'hi' });
  assert.deepEqual(await bob.expect('update'), line('ann', 'hi'));
  // The next server_stats counts whatever of it the ones before did not.
  const before = admin.events.filter((e) => e.event === 'server_stats').length;
  await until(() => admin.events.filter((e) => e.event === 'server_stats').length > before, 'the next server_stats');
  const packetIn = '2["message",{"type":"message","message":"hi"}]';
  const packetOut = '2["update",{"type":"message","name":"ann","message":"hi"}]';
  assert.deepEqual(totals(admin.events), {
    packetsIn: 1, bytesIn: Buffer.byteLength(packetIn), packetsOut: 1, bytesOut: Buffer.byteLength(packetOut),
  });
  const [stats] = admin.events.findLast((e) => e.event === 'server_stats').args;
  for (const event of stats.aggregatedEvents) {
    assert.deepEqual(Object.keys(event).sort(), ['count', 'timestamp', 'type']);
    assert.equal(event.timestamp % 1000, 0);
  }
  assert.ok(!admin.events.some((e) => /^event_/.test(e.event)), 'no event_received/event_sent in production mode');
  ann.close();
  bob.close();
  admin.close();
  await server.empty();
});

test('development mode: event_received and event_sent for every protocol, as the Node instrument() sends them', async () => {
  const dev = await startServer(['--no-history', '--admin-no-auth', '--admin-mode', 'development']);
  try {
    const admin = new Admin(dev.url, {});
    assert.deepEqual(await admin.take('config'), [{ supportedFeatures: ['DISCONNECT', 'AGGREGATED_EVENTS', 'ALL_EVENTS'] }]);
    await admin.take('all_sockets');
    const ann = await named(dev.url, 'ann');
    const [nsp, annId, newUser, time] = await admin.take('event_received', (n, id, args) => args[0] === 'newUser');
    assert.deepEqual([nsp, annId, newUser], ['/', ann.socket.id, ['newUser', 'ann']]);
    assert.match(time, ISO);
    const [sentNsp, , annJoin, sentTime] = await admin.take('event_sent', (n, id) => id === ann.socket.id);
    assert.deepEqual([sentNsp, annJoin], ['/', ['update', joined('ann')]]);
    assert.match(sentTime, ISO);

    const ws = new WebSocket(`ws://127.0.0.1:${dev.ports.websocket}/`);
    await within(new Promise((resolve) => ws.once('open', resolve)), 'websocket open');
    const [wsSocket] = await admin.take('socket_connected', (s) => s.transport === 'ws');
    const guest = wsSocket.data.name;
    const tcp = net.connect(dev.ports.tcpJson, '127.0.0.1');
    tcp.on('data', () => {});
    tcp.write(JSON.stringify({ type: 'CONNECT', content: 'tess' }));
    assert.deepEqual(await ann.expect('update'), joined(guest));
    assert.deepEqual(await ann.expect('update'), joined('tess'));
    const [tessSocket] = await admin.take('socket_connected', (s) => s.transport === 'tcp-json');

    // Each line: received from its sender; sent to every member but a Socket.IO sender.
    // The admin gets a line's events in order, before the next line's.
    const said = (text) => (args) => JSON.stringify(args).includes(text);
    const sent = async (text, count) => {
      const found = [];
      for (let i = 0; i < count; i++) {
        const [, id, args] = await admin.take('event_sent', (n, i, a) => said(text)(a));
        found.push([id, args]);
      }
      return found.sort(([a], [b]) => a.localeCompare(b));
    };
    ann.socket.emit('message', { type: 'message', message: 'hi' });
    assert.deepEqual((await admin.take('event_received', (n, id, args) => said('hi')(args))).slice(1, 3),
      [ann.socket.id, ['message', { type: 'message', message: 'hi' }]]);
    assert.deepEqual(await sent('hi', 2), [
      [tessSocket.id, ['message', 'ann : hi']],
      [wsSocket.id, ['message', { type: 'message', name: 'ann', msg: 'hi' }]],
    ]);

    ws.send(JSON.stringify({ name: guest, msg: 'yo' }));
    assert.deepEqual((await admin.take('event_received', (n, id, args) => said('yo')(args))).slice(1, 3),
      [wsSocket.id, ['message', { name: guest, msg: 'yo' }]]);
    assert.ok(!admin.events.some((e) => e.event === 'event_sent' && said('hi')(e.args[2])), 'ann is not sent her own line');
    assert.deepEqual(await sent('yo', 3), [
      [ann.socket.id, ['update', line(guest, 'yo')]],
      [tessSocket.id, ['message', `${guest} : yo`]],
      [wsSocket.id, ['message', { type: 'message', name: guest, msg: 'yo' }]],
    ].sort(([a], [b]) => a.localeCompare(b)));

    tcp.write(JSON.stringify({ type: 'CHAT', content: 'tess : hey' }));
    assert.deepEqual((await admin.take('event_received', (n, id, args) => said('hey')(args))).slice(1, 3),
      [tessSocket.id, ['message', { type: 'CHAT', content: 'tess : hey' }]]);
    assert.deepEqual(await sent('hey', 3), [
      [ann.socket.id, ['update', line('tess', 'hey')]],
      [tessSocket.id, ['message', 'tess : hey']],
      [wsSocket.id, ['message', { type: 'message', name: 'tess', msg: 'hey' }]],
    ].sort(([a], [b]) => a.localeCompare(b)));
    assert.deepEqual(await ann.expect('update'), line(guest, 'yo'));
    assert.deepEqual(await ann.expect('update'), line('tess', 'hey'));

    const text = net.connect(dev.ports.tcpText, '127.0.0.1');
    text.on('data', () => {});
    const [textSocket] = await admin.take('socket_connected', (s) => s.transport === 'tcp-text');
    const texter = textSocket.data.name;
    assert.deepEqual(await ann.expect('update'), joined(texter));
    text.write('howdy\n');
    assert.deepEqual((await admin.take('event_received', (n, id, args) => said('howdy')(args))).slice(1, 3),
      [textSocket.id, ['message', 'howdy\n']]);
    assert.deepEqual(await sent('howdy', 3), [
      [ann.socket.id, ['update', line(texter, 'howdy')]],
      [tessSocket.id, ['message', `${texter} : howdy`]],
      [wsSocket.id, ['message', { type: 'message', name: texter, msg: 'howdy' }]],
    ].sort(([a], [b]) => a.localeCompare(b)));
    assert.deepEqual(await ann.expect('update'), line(texter, 'howdy'));
    // Nothing more for it: its sender does not get its own chunk back.
    ann.socket.emit('message', { type: 'message', message: 'bye' });
    await admin.take('event_received', (n, id, args) => said('bye')(args));
    assert.ok(!admin.events.some((e) => e.event === 'event_sent' && said('howdy')(e.args[2])), 'no echo to the TCP text sender');
    text.destroy();
    tcp.destroy();
    ws.close();
    ann.close();
    admin.close();
  } finally {
    await dev.stop();
  }
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
    assert.deepEqual(await admin.take('config'), [{ supportedFeatures: ['AGGREGATED_EVENTS', 'ALL_EVENTS'] }]);
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
