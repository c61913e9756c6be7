// A rolling restart as docs/deploy.md says to do it: three nodes on one Redis, each run
// with deploy/chatterbox.env, behind nginx running deploy/nginx/three-nodes.conf (its
// ports, the nodes' addresses and the certificate replaced). Two official Socket.IO
// clients, python-socketio (test/python/client.py, in the venv tests/run-all.sh makes,
// verifying the test's certificate), our page in Chromium and two TCP JSON clients,
// most from an address of their own, chat at a steady rate while each node in turn gets SIGTERM and is started again
// on its ports. Every client is on some node when that node stops, so each reconnects
// at least once (the Socket.IO clients and the page on their own, the TCP clients as
// their program does); every line a server accepted (acknowledged, echoed, or relayed
// to anyone) is in the history exactly once, no line is there twice, the page shows the
// history exactly, and the lobby holds the six members at the end, on every node.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, mkdtempSync, rmSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { io } from 'socket.io-client';
import { repoRoot, startServer, until } from './helpers.mjs';
import { certificate, cleanUp, deployFile, envFile, freePort, launchChromium, nginxFor, nginxPorts, startNginx,
  startRedis } from './deploy-helpers.mjs';

// How often each client says a line (the default rate limit is 10 a second).
const EVERY_MS = 200;
// How long a restarted node's clients may take to be back: a reconnect, and nginx
// giving the node up for `fail_timeout` (2 s).
const BACK_MS = 30_000;

// An official Socket.IO client that names itself on every connect and says a line
// every tick while connected; a line is accepted once the server acknowledges it.
class SocketIoChatter {
  constructor(url, name, from) {
    this.name = name;
    this.sent = 0;
    this.accepted = [];
    this.connects = 0;
    const agent = new https.Agent({ localAddress: from, rejectUnauthorized: false });
    this.socket = io(url, { agent, rejectUnauthorized: false, forceNew: true,
      reconnectionDelay: 100, reconnectionDelayMax: 500 });
    this.relayed = [];
    this.socket.on('update', (data) => {
      if (data && data.type === 'message') this.relayed.push(String(data.message));
    });
    this.socket.on('connect', () => {
      this.connects += 1;
      this.socket.emit('newUser', name);
    });
  }

  get ready() { return this.socket.connected; }

  say() {
    if (!this.socket.connected) return;
    this.sent += 1;
    const text = `${this.name} #${this.sent};`;
    this.socket.emit('message', { type: 'message', message: text }, (reply) => {
      if (reply && typeof reply.id === 'number') this.accepted.push(text);
    });
  }

  close() { this.socket.close(); }
}

const python = process.env.CHATTERBOX_PYTHON ?? path.join(repoRoot, 'target/pyenv/bin/python');

// python-socketio's Client (default transports; its own reconnection), driven over
// stdin and stdout; `certificate` is the CA it verifies the server with.
class PythonChatter {
  constructor(url, name, certificate) {
    Object.assign(this, { name, sent: [], relayed: [], connects: 0, ready: false });
    const env = { ...process.env, REQUESTS_CA_BUNDLE: certificate, WEBSOCKET_CLIENT_CA_BUNDLE: certificate,
      SSL_CERT_FILE: certificate };
    this.child = spawn(python, [path.join(repoRoot, 'js-client/test/python/client.py'), 'Client', 'default', url, name],
      { env, stdio: ['pipe', 'pipe', 'inherit'] });
    this.child.stdin.on('error', () => {});
    let pending = '';
    this.child.stdout.setEncoding('utf8');
    this.child.stdout.on('data', (chunk) => {
      pending += chunk;
      const lines = pending.split('\n');
      pending = lines.pop();
      for (const text of lines) {
        const [kind, data] = JSON.parse(text);
        if (kind === 'connected') {
          this.connects += 1;
          this.ready = true;
        } else if (kind === 'disconnected') this.ready = false;
        else if (kind === 'update' && data.type === 'message') this.relayed.push(String(data.message));
      }
    });
  }

  say() {
    if (!this.ready) return;
    const text = `${this.name} #${this.sent.length + 1};`;
    this.sent.push(text);
    this.child.stdin.write(`${JSON.stringify(['say', text])}\n`);
  }

  // It gets no acknowledgement: a line of its is accepted once relayed to another.
  get accepted() { return []; }

  close() { this.child.kill(); }
}

// A TCP JSON client that connects again when its connection ends (as a user would run
// the terminal client again), names itself, and says a line every tick while named; a
// line is accepted once it comes back (TCP JSON members get their own lines).
class TcpChatter {
  constructor(port, name, from) {
    Object.assign(this, { port, name, from, sent: [], received: '', joins: 0, ready: false, closed: false });
    this.connect();
  }

  connect() {
    if (this.closed) return;
    const socket = net.connect({ host: '127.0.0.1', port: this.port, localAddress: this.from });
    this.socket = socket;
    let here = '';
    socket.setEncoding('utf8');
    socket.on('connect', () => socket.write(JSON.stringify({ type: 'CONNECT', content: this.name })));
    socket.on('data', (chunk) => {
      here += chunk;
      this.received += chunk;
      if (!this.ready && (here.includes(`${this.name} connected!`) || here.includes('is taken: you are'))) {
        this.ready = true;
        this.joins += 1;
      }
    });
    socket.on('error', () => {});
    socket.on('close', () => {
      this.ready = false;
      if (!this.closed) setTimeout(() => this.connect(), 100);
    });
  }

  say() {
    if (!this.ready) return;
    const text = `${this.name} #${this.sent.length + 1};`;
    this.sent.push(text);
    this.socket.write(JSON.stringify({ type: 'CHAT', content: text }));
  }

  get accepted() { return this.sent.filter((text) => this.received.includes(` : ${text}`)); }

  close() {
    this.closed = true;
    this.socket.destroy();
  }
}

// Every line of the history, oldest first, read from `base` page by page.
async function wholeHistory(base) {
  const lines = [];
  for (let after = 0; after !== null;) {
    const page = await (await fetch(`${base}/api/history?after=${after}&limit=1000`)).json();
    lines.push(...page.lines);
    after = page.newer;
  }
  return lines;
}

test('a rolling restart of three nodes behind nginx: everyone reconnects, no line lost or doubled', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'chatterbox-rolling-'));
  chmodSync(dir, 0o755);
  const cleanup = [];
  try {
    certificate(dir);
    const redis = await startRedis(dir);
    cleanup.push(() => redis.stop());
    const env = envFile(deployFile('chatterbox.env'));
    const nodePorts = [];
    for (let i = 0; i < 3; i += 1) {
      nodePorts.push({ http: await freePort(), ws: await freePort(), tcpJson: await freePort(), tcpText: await freePort() });
    }
    const argsOf = (p) => ['--port', String(p.http), '--ws-port', String(p.ws), '--tcp-json-port', String(p.tcpJson),
      '--tcp-text-port', String(p.tcpText), '--redis-url', redis.url, '--cluster', `rolling-${process.pid}`];
    const nodes = [];
    for (const p of nodePorts) nodes.push(await startServer(argsOf(p), { env }));
    cleanup.push(() => Promise.all(nodes.map((node) => node.stop())));

    const ports = await nginxPorts();
    const upstreams = nodePorts.flatMap((p, i) => [
      [`10.0.0.1${i + 1}:8000 `, `127.0.0.1:${p.http} `],
      [`10.0.0.1${i + 1}:18001 `, `127.0.0.1:${p.ws} `],
      [`10.0.0.1${i + 1}:15000 `, `127.0.0.1:${p.tcpJson} `],
      [`10.0.0.1${i + 1}:13000 `, `127.0.0.1:${p.tcpText} `],
    ]);
    const nginx = await startNginx(dir, nginxFor('nginx/three-nodes.conf', ports, dir, upstreams), Object.values(ports));
    cleanup.push(() => nginx.stop());
    const url = `https://127.0.0.1:${ports.https}`;

    const sios = [new SocketIoChatter(url, 'sio1', '127.0.0.2'), new SocketIoChatter(url, 'sio2', '127.0.0.3')];
    const tcps = [new TcpChatter(ports.tcpJson, 'tcp1', '127.0.0.4'), new TcpChatter(ports.tcpJson, 'tcp2', '127.0.0.5')];
    const py = new PythonChatter(url, 'py', path.join(dir, 'fullchain.pem'));
    const chatters = [...sios, ...tcps, py];
    cleanup.push(() => chatters.forEach((chatter) => chatter.close()));
    const browser = await launchChromium();
    cleanup.push(() => browser.close());
    const context = await browser.newContext({ ignoreHTTPSErrors: true });
    const page = await context.newPage();
    let pageConnects = 0;
    page.on('dialog', (dialog) => {
      pageConnects += 1;
      dialog.accept('alice');
    });
    await page.goto(`${url}/`);
    const pageState = () => page.locator('#state').getAttribute('data-state');

    // The steady chat: every client a line a tick; the page types one every other tick.
    let typing = false;
    let ticks = 0;
    const timer = setInterval(() => {
      ticks += 1;
      for (const chatter of chatters) chatter.say();
      if (ticks % 2 === 0 && !typing) {
        typing = true;
        page.fill('#test', `alice #${ticks};`).then(() => page.press('#test', 'Enter'))
          .catch(() => {}).finally(() => { typing = false; });
      }
    }, EVERY_MS);
    cleanup.push(() => clearInterval(timer));

    const expectedNames = ['alice', 'py', 'sio1', 'sio2', 'tcp1', 'tcp2'];
    // The names present, as `node` counts the whole cluster, without `-2`-style suffixes.
    const present = async (node) => {
      const { members } = await (await fetch(`${node.url}/api/members`)).json();
      return members.map((member) => member.name.replace(/-\d+$/, '')).sort();
    };
    const everyoneBack = async () => chatters.every((chatter) => chatter.ready)
      && (await pageState()) === 'connected'
      && JSON.stringify(await present(nodes[0])) === JSON.stringify(expectedNames);
    // Chatting goes on: every client has had `more` lines accepted (python-socketio's:
    // relayed to the first official client) since `counts`.
    const acceptedCounts = () => [...sios, ...tcps].map((chatter) => chatter.accepted.length)
      .concat(sios[0].relayed.filter((text) => text.startsWith('py #')).length);
    const chattingOn = async (more) => {
      const from = acceptedCounts();
      await until(() => acceptedCounts().every((count, i) => count >= from[i] + more), `${more} more lines from everyone`, BACK_MS);
    };

    await until(everyoneBack, 'everyone in the lobby', BACK_MS);
    await chattingOn(3);
    for (let i = 0; i < nodes.length; i += 1) {
      const exit = await nodes[i].stop();
      assert.deepEqual(exit, { code: 0, signal: null }, `node ${i} exits 0 on SIGTERM`);
      nodes[i] = await startServer(argsOf(nodePorts[i]), { env });
      await until(async () => (await (await fetch(`${nodes[i].url}/healthz`)).json()).redis === 'ok', `node ${i} back`);
      await until(everyoneBack, `everyone back after node ${i}'s restart`, BACK_MS);
      await chattingOn(3);
    }
    clearInterval(timer);
    await until(() => !typing, 'the page done typing');

    // Every line accepted or relayed is in the history exactly once; no line is there
    // twice.
    const relayed = [...sios.flatMap((sio) => sio.relayed), ...py.relayed,
      ...tcps.flatMap((tcp) => [...tcp.received.matchAll(/ : (\S+ #\d+;)/g)].map((m) => m[1]))];
    const acceptedLines = [...chatters.flatMap((chatter) => chatter.accepted), ...relayed];
    let history;
    await until(async () => {
      history = await wholeHistory(nodes[0].url);
      const texts = new Set(history.map((l) => l.text));
      return acceptedLines.every((text) => texts.has(text));
    }, 'every accepted line in the history');
    const texts = history.map((l) => l.text);
    assert.deepEqual(texts.filter((text, i) => texts.indexOf(text) !== i), [], 'no line twice');
    for (const who of ['alice', 'py']) {
      assert.ok(texts.some((text) => text.startsWith(`${who} #`)), `${who}'s lines are in the history`);
    }
    // Every node gives the same history.
    for (const node of nodes.slice(1)) assert.deepEqual(await wholeHistory(node.url), history);

    // The page shows the history, every line once, in its order: the lines said before
    // it first connected among its earlier lines, the rest in its log.
    const expectedPage = history.map((l) => `${l.name} : ${l.text}`);
    const pageItems = () => page.locator('#earlier li, #log li').allInnerTexts();
    const pageLines = async () => (await pageItems()).filter((l) => / : \S+ #\d+;$/.test(l));
    await until(async () => (await pageLines()).length >= expectedPage.length, 'every line on the page')
      .catch(async (e) => {
        const shown = await pageLines();
        const missing = expectedPage.filter((l) => !shown.includes(l));
        const all = await pageItems();
        throw new Error(`${e.message}: ${shown.length} of ${expectedPage.length} shown; missing ${JSON.stringify(missing)}; not lines: ${JSON.stringify(all.filter((l) => !/ : \S+ #\d+;$/.test(l)))}`);
      });
    assert.deepEqual(await pageLines(), expectedPage);

    // Everyone reconnected at least once, and the lobby holds the five of them on
    // every node.
    assert.ok(sios.every((sio) => sio.connects >= 2), `socket.io connects: ${sios.map((s) => s.connects)}`);
    assert.ok(tcps.every((tcp) => tcp.joins >= 2), `tcp joins: ${tcps.map((t) => t.joins)}`);
    assert.ok(pageConnects >= 2, `page connects: ${pageConnects}`);
    assert.ok(py.connects >= 2, `python-socketio connects: ${py.connects}`);
    for (const node of nodes) {
      assert.equal((await (await fetch(`${node.url}/healthz`)).json()).members, expectedNames.length);
      assert.deepEqual(await present(node), expectedNames);
    }
  } finally {
    await cleanUp([...cleanup.reverse(), () => rmSync(dir, { recursive: true, force: true })]);
  }
});
