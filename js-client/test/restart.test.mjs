// A restart (SIGTERM, then the server started again on the same port and history):
// every client comes back on its own and chats again. Third-party clients among them:
// python-socketio's Client, AsyncClient and SimpleClient over each transport
// (test/python/client.py, in the venv tests/run-all.sh makes), and the official
// socket.io-client 2.x, 3.x and 4.x. The server ends their sessions without the
// Engine.IO close packet, which would tell them it was on purpose (they would not
// reconnect): to them a restart is a lost transport.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { io as ioV4 } from 'socket.io-client';
import ioV2 from 'socket.io-client-v2';
import ioV3 from 'socket.io-client-v3';
import { repoRoot, startServer, named, line, until, within, WAIT_MS } from './helpers.mjs';

const python = process.env.CHATTERBOX_PYTHON ?? path.join(repoRoot, 'target/pyenv/bin/python');

// A client that queues what it reports: ["connected"], ["disconnected"], ["update", data].
class Reported {
  constructor(name) {
    this.name = name;
    this.reports = [];
  }

  push(...report) {
    this.reports.push(report);
  }

  count(kind) {
    return this.reports.filter(([got]) => got === kind).length;
  }

  // Waits until it has received `expected` (an update payload).
  async received(expected) {
    const has = () => this.reports.some(([kind, data]) => kind === 'update'
      && data.type === expected.type && data.name === expected.name && data.message === expected.message);
    await until(has, `${this.name}: ${JSON.stringify(expected)}`);
  }
}

// python-socketio, driven over stdin and stdout.
function pythonClient(kind, transport, url) {
  const client = new Reported(`py-${kind}-${transport}`);
  const child = spawn(python, [path.join(repoRoot, 'js-client/test/python/client.py'), kind, transport, url, client.name],
    { stdio: ['pipe', 'pipe', 'inherit'] });
  let pending = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk) => {
    pending += chunk;
    const lines = pending.split('\n');
    pending = lines.pop();
    for (const text of lines) client.push(...JSON.parse(text));
  });
  client.say = (text) => child.stdin.write(`${JSON.stringify(['say', text])}\n`);
  client.close = () => child.kill();
  return client;
}

// An official client (`ioFn`: 2.x, 3.x or 4.x) that reconnects soon and names itself
// on every connection.
function officialClient(version, ioFn, url) {
  const client = new Reported(`js-${version}`);
  const socket = ioFn(url, { forceNew: true, reconnectionDelay: 200, reconnectionDelayMax: 500 });
  socket.on('connect', () => {
    client.push('connected');
    socket.emit('newUser', client.name);
  });
  socket.on('disconnect', () => client.push('disconnected'));
  socket.on('update', (data) => client.push('update', data));
  client.say = (text) => socket.emit('message', { type: 'message', message: text });
  client.close = () => socket.close();
  return client;
}

test('after a restart, python-socketio and socket.io-client 2.x to 4.x reconnect and chat again', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'chatterbox-restart-'));
  const args = ['--db', path.join(dir, 'chatterbox.db')];
  let server = await startServer(args);
  const clients = [];
  try {
    for (const kind of ['Client', 'AsyncClient', 'SimpleClient']) {
      for (const transport of ['websocket', 'polling', 'default']) clients.push(pythonClient(kind, transport, server.url));
    }
    clients.push(officialClient('v2', ioV2, server.url), officialClient('v3', ioV3, server.url),
      officialClient('v4', ioV4, server.url));
    const names = clients.map((client) => client.name).sort();
    // Waits until the lobby of `at` holds every client; says who is missing if not.
    const everyoneIn = async (at, what) => {
      let members = [];
      const all = async () => {
        members = await at.members();
        return JSON.stringify([...members].sort()) === JSON.stringify(names);
      };
      await until(all, what, 3 * WAIT_MS).catch((e) => {
        const missing = clients.filter((client) => !members.includes(client.name));
        throw new Error(`${e.message}: ${missing.map((c) => `${c.name} ${JSON.stringify(c.reports)}`).join('; ')}`);
      });
    };
    await everyoneIn(server, 'every client in the lobby');

    server.child.kill('SIGTERM');
    assert.equal((await within(server.exited, 'exit')).code, 0, server.output());
    server = await startServer([...args, '--port', String(server.ports.http)]);
    await everyoneIn(server, 'every client back in the lobby');
    for (const client of clients) {
      assert.ok(client.count('disconnected') >= 1, `${client.name}: ${JSON.stringify(client.reports)}`);
      assert.ok(client.count('connected') >= 2, `${client.name}: ${JSON.stringify(client.reports)}`);
    }

    // They chat again: each one's line reaches the watcher, the watcher's every one.
    const watcher = await named(server.url, 'watcher');
    for (const client of clients) client.say(`${client.name} is back`);
    const heard = [];
    while (heard.length < clients.length) {
      const { event, data } = await watcher.next('the lines of every client');
      assert.equal(event, 'update');
      if (data.type === 'message') heard.push(data);
    }
    assert.deepStrictEqual(
      heard.map((data) => data.name).sort(),
      names,
    );
    for (const data of heard) assert.deepStrictEqual(data, line(data.name, `${data.name} is back`));
    watcher.socket.emit('message', { type: 'message', message: 'welcome back' });
    await Promise.all(clients.map((client) => client.received(line('watcher', 'welcome back'))));
    watcher.close();
  } finally {
    for (const client of clients) client.close();
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
