// Test support: starts the chatterbox binary on port 0 and gives Socket.IO clients whose
// every receive is bounded by a timeout.
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import assert from 'node:assert/strict';
import { io } from 'socket.io-client';

export const WAIT_MS = 10_000;
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const binary = process.env.CHATTERBOX_BIN ?? path.join(repoRoot, 'target/debug/chatterbox');

// Rejects after `ms` with `what` unless `promise` settles first.
export function within(promise, what, ms = WAIT_MS) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Starts the binary with `args` on 127.0.0.1, port 0, and waits for its "listening" line.
export async function startServer(args = []) {
  const child = spawn(binary, ['--host', '127.0.0.1', '--port', '0', ...args], {
    cwd: repoRoot,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const address = await within(new Promise((resolve, reject) => {
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => {
      output += chunk;
      const match = output.match(/listening http=(\S+)/);
      if (match) resolve(match[1]);
    });
    child.on('error', reject);
    exited.then(({ code }) => reject(new Error(`server exited with ${code}:\n${output}`)));
  }), `server start (${binary})`);
  return {
    url: `http://${address}`,
    child,
    exited,
    output: () => output,
    async stop() {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      return within(exited, 'server exit');
    },
  };
}

// A Socket.IO client that queues every event it receives, in order.
export class Client {
  constructor(url, options = {}, ioFn = io) {
    this.events = [];
    this.waiters = [];
    this.socket = ioFn(url, { reconnection: false, forceNew: true, ...options });
    for (const event of ['connect', 'disconnect', 'connect_error', 'update', 'error']) {
      this.socket.on(event, (data) => this.push(event, data));
    }
  }

  push(event, data) {
    const waiter = this.waiters.shift();
    if (waiter) waiter({ event, data });
    else this.events.push({ event, data });
  }

  next(what = 'an event') {
    if (this.events.length > 0) return Promise.resolve(this.events.shift());
    return within(new Promise((resolve) => this.waiters.push(resolve)), what);
  }

  async expect(event, data) {
    const got = await this.next(`${event} ${JSON.stringify(data)}`);
    if (got.event !== event) {
      throw new Error(`expected ${event} ${JSON.stringify(data)}, got ${got.event} ${JSON.stringify(got.data)}`);
    }
    return got.data;
  }

  close() {
    this.socket.close();
  }
}

// The `update` payloads of PROTOCOLS.md section 1.
export const joined = (name) => ({ type: 'connect', name: 'SERVER', message: `${name}님이 접속하였습니다.` });
export const left = (name) => ({ type: 'disconnect', name: 'SERVER', message: `${name}님이 나가셨습니다.` });
export const line = (name, message) => ({ type: 'message', name, message });

// Connects, names itself and consumes its own join.
export async function named(url, name, options = {}, ioFn = io) {
  const client = new Client(url, options, ioFn);
  await client.expect('connect');
  client.socket.emit('newUser', name);
  assert.deepStrictEqual(await client.expect('update'), joined(name));
  return client;
}
