// Test support: starts the chatterbox binary on port 0 and gives Socket.IO clients whose
// every receive is bounded by a timeout.
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import { fileURLToPath } from 'node:url';
import path from 'node:path';
import assert from 'node:assert/strict';
import { chromium } from 'playwright-core';
import { io } from 'socket.io-client';

export const WAIT_MS = 10_000;
export const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

// Runs `use(dir)` on a temp dir holding each of `reports` as `<name>.json`, as the
// benchmark scripts write their reports; the dir is removed after.
export function withReports(reports, use) {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'bench-reports-'));
  try {
    for (const [name, report] of Object.entries(reports)) {
      writeFileSync(path.join(dir, `${name}.json`), JSON.stringify(report));
    }
    return use(dir);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
export const binary = process.env.CHATTERBOX_BIN ?? path.join(repoRoot, 'target/debug/chatterbox');

// Rejects after `ms` with `what` unless `promise` settles first.
export function within(promise, what, ms = WAIT_MS) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what}`)), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// The servers' directories not removed yet: `stop` removes its server's, the rest go
// when the test file's process ends (a test that killed its server never calls `stop`).
const serverDirs = new Set();
process.on('exit', () => {
  for (const dir of serverDirs) rmSync(dir, { recursive: true, force: true });
});

// Starts the binary with `args` on 127.0.0.1, every listener on port 0 unless `args`
// sets its port, and waits for its "listening" lines. Its history is in a new directory of
// its own (removed when it stops) unless `args` says where. `env` is added to the
// environment (flags in `args` win over it, as on the command line).
export async function startServer(args = [], { env = {} } = {}) {
  const ports = ['--port', '--ws-port', '--tcp-json-port', '--tcp-text-port']
    .filter((flag) => !args.includes(flag)).flatMap((flag) => [flag, '0']);
  const dir = mkdtempSync(path.join(os.tmpdir(), 'chatterbox-'));
  serverDirs.add(dir);
  const db = args.includes('--db') || args.includes('--no-history') ? [] : ['--db', path.join(dir, 'chatterbox.db')];
  // Every test client comes from 127.0.0.1: the join budget per address is off unless
  // a test sets it.
  const joins = args.includes('--rate-joins-per-min') ? [] : ['--rate-joins-per-min', '0'];
  const child = spawn(binary, ['--host', '127.0.0.1', ...ports, ...db, ...joins, ...args], {
    cwd: repoRoot,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let output = '';
  const exited = new Promise((resolve) => child.on('exit', (code, signal) => resolve({ code, signal })));
  const addresses = await within(new Promise((resolve, reject) => {
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk) => {
      output += chunk;
      const wanted = ['http', 'websocket', 'tcp-json', 'tcp-text'];
      const found = Object.fromEntries([...output.matchAll(/listening ([a-z-]+)=([0-9.:]+)/g)].map((m) => [m[1], m[2]]));
      if (wanted.every((listener) => found[listener])) resolve(found);
    });
    child.on('error', reject);
    exited.then(({ code }) => reject(new Error(`server exited with ${code}:\n${output}`)));
  }), `server start (${binary})`);
  const port = (listener) => Number(addresses[listener].split(':').pop());
  const clients = [];
  return {
    clients,
    url: `http://${addresses.http}`,
    ports: {
      http: port('http'),
      websocket: addresses.websocket && port('websocket'),
      tcpJson: addresses['tcp-json'] && port('tcp-json'),
      tcpText: addresses['tcp-text'] && port('tcp-text'),
    },
    child,
    exited,
    dir,
    output: () => output,
    // The names of the lobby's members now (`/api/members`), in the order they came.
    async members() {
      const { members } = await (await fetch(`http://${addresses.http}/api/members`)).json();
      return members.map((member) => member.name);
    },
    // Waits until every connection of the lobby has left (`/healthz` `connections`):
    // a test that closed its clients then leaves the next one a lobby without them
    // (their leaves announced, their names free).
    async empty() {
      await until(async () => {
        const health = await (await fetch(`http://${addresses.http}/healthz`)).json();
        return health.connections === 0;
      }, 'every connection gone from the lobby');
    },
    async stop() {
      for (const client of clients) client.kill();
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGTERM');
      const exit = await within(exited, 'server exit');
      rmSync(dir, { recursive: true, force: true });
      serverDirs.delete(dir);
      return exit;
    },
  };
}

// A Socket.IO client that queues every event it receives, in order. The `id` of a
// chat line's `update` (its history id, when the server keeps one) is taken out of the
// payload, so that tests compare what PROTOCOLS.md says; it must be a number, and
// `lineIds` has them all, in order.
export class Client {
  constructor(url, options = {}, ioFn = io) {
    this.events = [];
    this.waiters = [];
    this.lineIds = [];
    this.socket = ioFn(url, { reconnection: false, forceNew: true, ...options });
    for (const event of ['connect', 'disconnect', 'connect_error', 'update', 'error']) {
      this.socket.on(event, (data) => this.push(event, data));
    }
  }

  push(event, data) {
    if (event === 'update' && data && data.type === 'message' && 'id' in data) {
      const { id, ...update } = data;
      assert.equal(typeof id, 'number', `a line id, got ${JSON.stringify(id)}`);
      this.lineIds.push(id);
      data = update;
    }
    const waiter = this.waiters.shift();
    if (waiter) waiter({ event, data });
    else this.events.push({ event, data });
  }

  next(what = 'an event') {
    if (this.events.length > 0) return Promise.resolve(this.events.shift());
    let waiter;
    const got = new Promise((resolve) => { waiter = resolve; this.waiters.push(waiter); });
    // A wait that timed out takes no later event.
    return within(got, what).catch((error) => {
      this.waiters = this.waiters.filter((other) => other !== waiter);
      throw error;
    });
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

// Resolves once `condition()` is true; polls, for state that changes on its own (a
// page, a child's output). The polling stops when the wait times out: a poll left
// running would keep the test file's process alive after its tests have ended.
export async function until(condition, what, ms = WAIT_MS) {
  let waiting = true;
  try {
    await within((async () => {
      while (waiting && !(await condition())) await new Promise((resolve) => setTimeout(resolve, 25));
    })(), what, ms);
  } finally {
    waiting = false;
  }
}

// Runs an original terminal client (tests/fixtures/…), unchanged, with its fixed ports
// mapped to `server`'s; `type` answers its prompt or types a line, `expectLines`
// checks everything it printed so far, line by line.
export function terminalClient(file, server) {
  const portMap = { 5000: server.ports.tcpJson, 3000: server.ports.tcpText };
  const child = spawn(process.execPath, ['--require', path.join(repoRoot, 'js-client/test/port-map.cjs'),
    path.join(repoRoot, 'tests/fixtures', file)], {
    cwd: repoRoot,
    env: { ...process.env, CHATTERBOX_PORT_MAP: JSON.stringify(portMap) },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  server.clients.push(child);
  let output = '';
  child.stdout.setEncoding('utf8');
  child.stdout.on('data', (chunk) => { output += chunk; });
  // Complete lines only: a prompt waits for its answer on the same line.
  const lines = () => output.split('\n').slice(0, -1);
  return {
    child,
    output: () => output,
    type(line) { child.stdin.write(`${line}\n`); },
    // Types `answer` once `prompt` is on the screen, as a person would.
    async answer(prompt, answer) {
      await until(() => output.endsWith(prompt), `${file}: prompt ${JSON.stringify(prompt)}`);
      this.type(answer);
    },
    async expectLines(expected) {
      await until(() => lines().length >= expected.length, `${file}: ${JSON.stringify(expected)}`)
        .catch((e) => { throw new Error(`${e.message}; printed ${JSON.stringify(output)}`); });
      assert.deepStrictEqual(lines(), expected);
    },
    close() { child.kill(); },
  };
}

// Headless Chromium (Debian's, never a downloaded one), with the flags this machine's
// closed network needs.
export function launchChromium() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}
