// Support for the deployment tests: the files of deploy/ with their ports and paths
// replaced, nginx and redis-server started by the test, clients from chosen loopback
// addresses.
import assert from 'node:assert/strict';
import { execFileSync, spawn } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import path from 'node:path';
import { repoRoot, until, within } from './helpers.mjs';

export const deployFile = (file) => path.join(repoRoot, 'deploy', file);

// The variables an env file sets (`KEY=VALUE` lines; comments and blank lines skipped).
export function envFile(file) {
  const settings = {};
  for (const entry of readFileSync(file, 'utf8').split('\n')) {
    const match = /^([A-Z_]+)=(.*)$/.exec(entry);
    if (match) settings[match[1]] = match[2];
  }
  return settings;
}

// `text` with each [from, to] replaced; every `from` must be in it.
export function substitute(text, replacements) {
  for (const [from, to] of replacements) {
    assert.ok(text.includes(from), `${JSON.stringify(from)} in the configuration`);
    text = text.replaceAll(from, to);
  }
  return text;
}

export async function freePort() {
  const server = net.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

// Resolves once a TCP connection to 127.0.0.1:`port` is accepted.
export async function listening(port) {
  await until(() => new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port });
    socket.on('connect', () => { socket.destroy(); resolve(true); });
    socket.on('error', () => resolve(false));
  }), `a listener on ${port}`);
}

// nginx with `conf`, in the foreground, its pid file and error log in `dir`.
export async function startNginx(dir, conf, ports) {
  const file = path.join(dir, 'nginx.conf');
  writeFileSync(file, conf);
  const child = spawn('nginx', ['-c', file, '-e', path.join(dir, 'error.log'),
    '-g', `daemon off; pid ${path.join(dir, 'nginx.pid')};`], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => { output += chunk; });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  const started = Promise.all(ports.map(listening));
  await within(Promise.race([started, exited.then((code) => {
    throw new Error(`nginx exited with ${code}: ${output}`);
  })]), 'nginx start');
  return {
    async stop() {
      child.kill('SIGTERM');
      await within(exited, 'nginx exit').catch((error) => {
        child.kill('SIGKILL');
        throw error;
      });
    },
  };
}

// One HTTPS request from the local address `from`: { status, headers, body }.
export function request(port, path, { from = '127.0.0.1', headers = {} } = {}) {
  return within(new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path, localAddress: from, headers,
      rejectUnauthorized: false, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk) => { body += chunk; });
      res.on('end', () => resolve({ status: res.statusCode, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  }), `GET ${path}`);
}

// A raw TCP client from the local address `from`, keeping everything it received.
export async function tcpFrom(from, port) {
  const socket = net.connect({ host: '127.0.0.1', port, localAddress: from });
  await within(new Promise((resolve, reject) => {
    socket.on('connect', resolve);
    socket.on('error', reject);
  }), `tcp to ${port}`);
  const client = { socket, received: '', closed: false };
  socket.setEncoding('utf8');
  socket.on('data', (chunk) => { client.received += chunk; });
  socket.on('close', () => { client.closed = true; });
  socket.on('error', () => {});
  client.until = (text) => until(() => client.received.includes(text),
    `${JSON.stringify(text)} on tcp (got ${JSON.stringify(client.received)})`);
  return client;
}

// A self-signed certificate for 127.0.0.1 and localhost: `fullchain.pem` and
// `privkey.pem` in `dir`, the names the configurations use.
export function certificate(dir) {
  execFileSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1',
    '-nodes', '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-keyout', path.join(dir, 'privkey.pem'), '-out', path.join(dir, 'fullchain.pem')], { stdio: 'ignore' });
}

// The replacements that make an nginx configuration of deploy/ listen on `ports`
// (127.0.0.1) and keep its certificate and logs in `dir`; its IPv6 listeners go.
export function nginxFor(file, ports, dir, upstreams) {
  const text = substitute(readFileSync(deployFile(file), 'utf8'), [
    ['listen 443 ssl http2;', `listen 127.0.0.1:${ports.https} ssl http2;`],
    ['listen 80;', `listen 127.0.0.1:${ports.http};`],
    ['listen 8001 ssl;', `listen 127.0.0.1:${ports.wss} ssl;`],
    ['listen 5000;', `listen 127.0.0.1:${ports.tcpJson};`],
    ['listen 3000;', `listen 127.0.0.1:${ports.tcpText};`],
    ...upstreams,
    ['/etc/ssl/chatterbox/', `${dir}/`],
    ['/var/log/nginx/', `${dir}/`],
  ]);
  return text.replace(/^\s*listen \[::\]:.*$/gm, '');
}

// The public ports of an nginx of deploy/, each a free one.
export async function nginxPorts() {
  return { https: await freePort(), http: await freePort(), wss: await freePort(),
    tcpJson: await freePort(), tcpText: await freePort() };
}

// Headless Chromium, as the browser tests launch it.
export { launchChromium } from './helpers.mjs';

// A redis-server of the test's own on a unix socket in `dir` (no file written), ready.
export async function startRedis(dir) {
  const socket = path.join(dir, 'redis.sock');
  const child = spawn('redis-server', ['--port', '0', '--unixsocket', socket, '--unixsocketperm', '700',
    '--save', '', '--appendonly', 'no', '--dir', dir], { stdio: 'ignore' });
  const exited = new Promise((resolve) => child.on('exit', resolve));
  child.on('error', () => {});
  const pong = () => new Promise((resolve) => {
    const connection = net.connect(socket);
    connection.on('error', () => resolve(false));
    connection.on('connect', () => connection.write('PING\r\n'));
    connection.on('data', (data) => { connection.destroy(); resolve(String(data) === '+PONG\r\n'); });
  });
  await until(pong, 'redis-server answers');
  return {
    url: `redis+unix://${socket}`,
    async stop() {
      child.kill('SIGKILL');
      await within(exited, 'redis-server exit');
    },
  };
}

// Runs every step of a test's cleanup, in order, even when one fails (no process is
// left behind); then throws the first failure.
export async function cleanUp(steps) {
  let first;
  for (const step of steps) {
    try {
      await step();
    } catch (error) {
      first ??= error;
    }
  }
  if (first) throw first;
}
