// The admin UI on a cluster of two nodes on a Redis of the test's own. Its protocol: one
// node's admin sees both nodes' stats (serverId: the node id) and, from its login, both
// nodes' members, and disconnects a member of the other node, which that node carries
// out; the session given by one node is valid on the other. The real UI in headless
// Chromium: node a's UI lists a member of node b and disconnects it.
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { io } from 'socket.io-client';
import { joined, launchChromium, left, named, startServer, until, within } from './helpers.mjs';

const bcrypt = createRequire(import.meta.url)('bcryptjs');
const HASH = bcrypt.hashSync('s3cret', 4);
const cleanups = [];
after(async () => { for (const cleanup of cleanups.reverse()) await cleanup(); });

// A redis-server of this test's own, on a unix socket.
async function startRedis() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'chatterbox-redis-'));
  const socket = path.join(dir, 'redis.sock');
  const child = spawn('redis-server', ['--port', '0', '--unixsocket', socket, '--unixsocketperm', '700',
    '--save', '', '--dir', dir], { stdio: 'ignore' });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  cleanups.push(async () => { child.kill('SIGKILL'); await exited; rmSync(dir, { recursive: true, force: true }); });
  await until(() => new Promise((resolve) => {
    const probe = net.connect(socket);
    probe.once('connect', () => { probe.end(); resolve(true); });
    probe.once('error', () => resolve(false));
  }), 'redis-server answering');
  return `redis+unix://${socket}`;
}

// An admin client recording every event, in order.
function admin(url, auth) {
  const events = [];
  const socket = io(`${url}/admin`, { auth, forceNew: true, reconnection: false });
  socket.onAny((event, ...args) => events.push({ event, args }));
  socket.on('connect', () => events.push({ event: 'connect', args: [] }));
  socket.on('connect_error', (e) => events.push({ event: 'connect_error', args: [e.message] }));
  const take = async (event, matches = () => true) => {
    let found;
    await until(() => {
      const index = events.findIndex((e) => e.event === event && matches(...e.args));
      if (index < 0) return false;
      [found] = events.splice(index, 1);
      return true;
    }, `admin event ${event}`);
    return found.args;
  };
  return { socket, events, take };
}

/**
 * ann, a Socket.IO member of node `a`, and tess, a TCP JSON member of node `b`, whose
 * join ann hears; `tcpClosed` settles when tess's connection closes.
 */
async function annOnAAndTessOnB(a, b) {
  const ann = await named(a.url, 'ann');
  const tcp = net.connect(b.ports.tcpJson, '127.0.0.1');
  let tcpOutput = '';
  tcp.setEncoding('utf8');
  tcp.on('data', (chunk) => { tcpOutput += chunk; });
  const tcpClosed = new Promise((resolve) => tcp.once('close', resolve));
  tcp.write(JSON.stringify({ type: 'CONNECT', content: 'tess' }));
  await until(() => tcpOutput.includes('tess connected!'), 'tess connected on node b');
  assert.deepEqual(await ann.expect('update'), joined('tess'));
  return { ann, tcpClosed };
}

test('one node\'s admin lists and disconnects a member of the other node; sessions hold on both', async () => {
  const redis = await startRedis();
  const cluster = ['--redis-url', redis, '--cluster', `admin-test-${process.pid}`,
    '--admin-user', 'op', '--admin-password-hash', HASH];
  const a = await startServer([...cluster, '--node-id', 'node-a']);
  cleanups.push(() => a.stop());
  const b = await startServer([...cluster, '--node-id', 'node-b']);
  cleanups.push(() => b.stop());

  const { ann, tcpClosed } = await annOnAAndTessOnB(a, b);

  const onA = admin(a.url, { username: 'op', password: 's3cret' });
  const [session] = await onA.take('session');
  // Both nodes' stats, each with its node id.
  const [statsB] = await onA.take('server_stats', (stats) => stats.serverId === 'node-b');
  assert.equal(statsB.pid, b.child.pid);
  assert.deepEqual(statsB.namespaces[0], { name: '/', socketsCount: 1 });
  const [statsA] = await onA.take('server_stats', (stats) => stats.serverId === 'node-a');
  assert.equal(statsA.pid, a.child.pid);
  // Node b's member, listed by node a at the login: node b was asked for its report.
  const [all] = await onA.take('all_sockets');
  assert.deepEqual(all.map((s) => [s.data.protocol, s.data.name]).sort(), [['socketio', 'ann'], ['tcp-json', 'tess']]);
  assert.ok(!/not every node answered/.test(a.output()), 'node b answered the login');
  const tess = all.find((s) => s.transport === 'tcp-json');
  assert.match(tess.id, /^tcp-json-\d+$/);
  assert.equal(tess.handshake.address, '127.0.0.1');

  // The session node a gave logs in on node b.
  const onB = admin(b.url, { sessionId: session });
  await onB.take('connect');
  assert.ok(!onB.events.some((e) => e.event === 'session'));
  onB.socket.close();

  onA.socket.emit('_disconnect', '/', false, tess.id);
  await within(tcpClosed, 'tess cut off by node b');
  assert.deepEqual(await ann.expect('update'), left('tess'));
  const [nsp] = await onA.take('socket_disconnected', (n, id) => id === tess.id);
  assert.equal(nsp, '/');
  await until(() => /node asked to throw a member out socket=tcp-json-\d+ node=node-b user="op"/.test(a.output()), 'the order logged on node a');
  await until(() => /member thrown out by an operator member=\d+ socket=tcp-json-\d+ protocol="tcp-json" name="tess" user="op" from="127\.0\.0\.1" node="node-a"/.test(b.output()), 'the throw-out logged on node b');
  ann.close();
  onA.socket.close();
});

test('node a\'s admin UI, in Chromium, lists a member of node b and disconnects it', async () => {
  const redis = await startRedis();
  const cluster = ['--redis-url', redis, '--cluster', `admin-ui-test-${process.pid}`,
    '--admin-user', 'op', '--admin-password-hash', HASH];
  const a = await startServer([...cluster, '--node-id', 'node-a']);
  cleanups.push(() => a.stop());
  const b = await startServer([...cluster, '--node-id', 'node-b']);
  cleanups.push(() => b.stop());
  const browser = await launchChromium();
  cleanups.push(() => browser.close());

  const { ann, tcpClosed } = await annOnAAndTessOnB(a, b);

  const page = await (await browser.newContext({ viewport: { width: 1280, height: 800 } })).newPage();
  await page.goto(`${a.url}/admin/`);
  await page.getByLabel('Server URL').fill(a.url);
  await page.getByLabel('Username').fill('op');
  await page.getByLabel('Password').fill('s3cret');
  await page.getByRole('button', { name: 'Connect' }).click();
  await page.getByText('connected', { exact: true }).first().waitFor({ timeout: 10_000 });
  // Both servers on the dashboard, healthy.
  const rowsOf = async (card) => (await page.locator('.v-card', { hasText: card }).locator('tr').allInnerTexts())
    .map((row) => row.replace(/\s+/g, ' ').trim());
  await until(async () => (await rowsOf('Servers')).includes('HEALTHY 2 100.0 %'), 'two healthy servers');

  // The sockets: ann on node a, tess on node b.
  await page.getByRole('navigation').getByRole('link', { name: 'Sockets' }).click();
  const rows = page.locator('tbody tr');
  const table = async () => (await rows.allInnerTexts()).map((row) => row.split(/\s+/).filter(Boolean));
  await until(async () => (await table()).length === 2, 'two sockets listed');
  const listed = await table();
  assert.deepEqual(listed.map(([id, address]) => [id.replace(/^tcp-json-\d+$/, 'tcp-json-N'), address]).sort(), [
    [ann.socket.id, '127.0.0.1'],
    ['tcp-json-N', '127.0.0.1'],
  ].sort());
  assert.equal(listed.find(([id]) => id.startsWith('tcp-json-'))[2], 'tcp-json');

  // Disconnected from node a's UI, by node b: cut off, announced as left on node a.
  await rows.filter({ hasText: 'tcp-json-' }).getByRole('button').click();
  await within(tcpClosed, 'tess cut off by node b');
  assert.deepEqual(await ann.expect('update'), left('tess'));
  await page.getByText('disconnected', { exact: true }).first().waitFor({ timeout: 10_000 });
  await page.getByRole('navigation').getByRole('link', { name: 'Sockets' }).click();
  await until(async () => (await table()).length === 1, 'one socket left');
  assert.equal((await table())[0][0], ann.socket.id);
  assert.deepEqual(await a.members(), ['ann']);
  ann.close();
});
