// Deployed as deploy/ and docs/deploy.md say: chatterbox with deploy/chatterbox.env
// behind Debian's nginx running deploy/nginx/one-node.conf (TLS with a certificate made
// here, the stream module for the WebSocket and TCP chats), and the systemd unit as
// systemd-analyze sees it. The committed files are used, with only their ports, paths
// and the certificate replaced (each replacement must find its text).
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import WebSocket from 'ws';
import { binary, Client, joined, line, startServer, until, within } from './helpers.mjs';
import { certificate, cleanUp, deployFile, envFile, launchChromium, nginxFor, nginxPorts, request, startNginx,
  substitute, tcpFrom } from './deploy-helpers.mjs';

let dir;
let server;
let nginx;
let ports;
let browser;
const PER_ADDRESS = 8;

before(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'chatterbox-deploy-'));
  // nginx's workers (www-data) read nothing here but its temp files' parent.
  chmodSync(dir, 0o755);
  certificate(dir);
  // chatterbox with the env file; only its ports (any free one) and history (a temp
  // dir) come from the command line, and the per-address limit, small enough to fill.
  server = await startServer(['--max-connections-per-ip', String(PER_ADDRESS)],
    { env: envFile(deployFile('chatterbox.env')) });
  ports = await nginxPorts();
  const conf = nginxFor('nginx/one-node.conf', ports, dir, [
    ['127.0.0.1:8000;', `127.0.0.1:${server.ports.http};`],
    ['127.0.0.1:18001;', `127.0.0.1:${server.ports.websocket};`],
    ['127.0.0.1:15000;', `127.0.0.1:${server.ports.tcpJson};`],
    ['127.0.0.1:13000;', `127.0.0.1:${server.ports.tcpText};`],
  ]);
  nginx = await startNginx(dir, conf, Object.values(ports));
  browser = await launchChromium();
});

after(() => cleanUp([
  () => browser?.close(),
  () => nginx?.stop(),
  () => server?.stop(),
  () => dir && rmSync(dir, { recursive: true, force: true }),
]));

test('through nginx with TLS: socket.io-client, our page, wss:// and TCP JSON chat in one lobby', async () => {
  const url = `https://127.0.0.1:${ports.https}`;
  // The official client, default transports: long-polling, then the upgrade, over TLS;
  // from 127.0.0.2.
  const agent = new https.Agent({ localAddress: '127.0.0.2', rejectUnauthorized: false });
  const sio = new Client(url, { agent, rejectUnauthorized: false });
  const transports = [];
  const upgraded = new Promise((resolve) => {
    sio.socket.io.on('open', () => {
      const engine = sio.socket.io.engine;
      transports.push(engine.transport.name);
      engine.on('upgrade', (transport) => {
        transports.push(transport.name);
        resolve();
      });
    });
  });
  await sio.expect('connect');
  sio.socket.emit('newUser', 'sio');
  assert.deepEqual(await sio.expect('update'), joined('sio'));
  await within(upgraded, 'upgrade to websocket');
  assert.deepEqual(transports, ['polling', 'websocket']);

  // TCP JSON through nginx's stream proxy, from 127.0.0.4.
  const kim = await tcpFrom('127.0.0.4', ports.tcpJson);
  kim.socket.write(JSON.stringify({ type: 'CONNECT', content: 'kim' }));
  await kim.until('kim connected!');
  assert.deepEqual(await sio.expect('update'), joined('kim'));

  // The plain WebSocket chat over wss://, from 127.0.0.3.
  const frames = [];
  const ws = new WebSocket(`wss://127.0.0.1:${ports.wss}/`, { rejectUnauthorized: false, localAddress: '127.0.0.3' });
  ws.on('message', (data) => frames.push(JSON.parse(String(data))));
  await within(new Promise((resolve, reject) => { ws.on('open', resolve); ws.on('error', reject); }), 'wss open');
  const [, guest] = await (async () => {
    await until(() => /guest-\d+ connected!$/.test(kim.received), 'the WebSocket client\'s join on tcp');
    return /(guest-\d+) connected!$/.exec(kim.received);
  })();
  assert.deepEqual(await sio.expect('update'), joined(guest));

  // Our page in Chromium over https://.
  const context = await browser.newContext({ ignoreHTTPSErrors: true });
  const page = await context.newPage();
  page.on('dialog', (dialog) => dialog.accept('alice'));
  await page.goto(`${url}/`);
  const lines = () => page.locator('#log li').allInnerTexts();
  await until(async () => (await lines()).length >= 1, 'alice\'s join on the page');
  assert.deepEqual(await lines(), ['alice님이 접속하였습니다.']);
  assert.deepEqual(await sio.expect('update'), joined('alice'));

  await page.fill('#test', 'hello over https');
  await page.press('#test', 'Enter');
  assert.deepEqual(await sio.expect('update'), line('alice', 'hello over https'));
  sio.socket.emit('message', { type: 'message', message: 'hi from socket.io' });
  // Sio gets no copy of its own line: the next one waits until the others have it.
  await kim.until('sio : hi from socket.io');
  ws.send(JSON.stringify({ name: guest, msg: 'hi from wss' }));
  assert.deepEqual(await sio.expect('update'), line(guest, 'hi from wss'));
  kim.socket.write(JSON.stringify({ type: 'CHAT', content: 'kim : hi from tcp' }));
  assert.deepEqual(await sio.expect('update'), line('kim', 'hi from tcp'));

  const expectedPage = ['alice님이 접속하였습니다.', 'alice : hello over https', 'sio : hi from socket.io',
    `${guest} : hi from wss`, 'kim : hi from tcp'];
  await until(async () => (await lines()).length >= expectedPage.length, 'every line on the page');
  assert.deepEqual(await lines(), expectedPage);
  const expectedTcp = ['kim connected!', `${guest} connected!`, 'alice connected!', 'alice : hello over https',
    'sio : hi from socket.io', `${guest} : hi from wss`, 'kim : hi from tcp'].join('');
  await kim.until('kim : hi from tcp');
  assert.equal(kim.received, expectedTcp);
  const message = (name, msg) => ({ type: 'message', name, msg });
  const expectedFrames = [
    { type: 'notification', msg: '새로운 유저 접속 [현재 : 3명]' },
    { type: 'notification', msg: '새로운 유저 접속 [현재 : 4명]' },
    message('alice', 'hello over https'), message('sio', 'hi from socket.io'),
    message(guest, 'hi from wss'), message('kim', 'hi from tcp'),
  ];
  await until(() => frames.length >= expectedFrames.length, 'every frame on wss');
  assert.deepEqual(frames, expectedFrames);

  // The API through nginx sees the lobby.
  const members = JSON.parse((await request(ports.https, '/api/members')).body);
  assert.deepEqual(members.members.map((m) => m.name).sort(), ['alice', guest, 'kim', 'sio'].sort());
  // Plain HTTP is sent to https.
  const redirect = await new Promise((resolve, reject) => {
    net.connect({ host: '127.0.0.1', port: ports.http }, function () {
      this.end('GET /api/members HTTP/1.1\r\nHost: chat.example\r\nConnection: close\r\n\r\n');
      let head = '';
      this.setEncoding('utf8');
      this.on('data', (chunk) => { head += chunk; });
      this.on('end', () => resolve(head));
    }).on('error', reject);
  });
  assert.match(redirect, /^HTTP\/1\.1 301 /);
  assert.match(redirect, /\r\nLocation: https:\/\/chat\.example\/api\/members\r\n/);

  await context.close();
  sio.close();
  ws.close();
  kim.socket.destroy();
  await server.empty();
});

test('through nginx, the per-address limit counts each client\'s own address, and a forged X-Forwarded-For is ignored', async () => {
  const full = `too many connections from your address (limit ${PER_ADDRESS})`;
  // 127.0.0.5 fills its places with TCP text connections through nginx's stream proxy.
  const fillers = [];
  for (let i = 0; i < PER_ADDRESS; i += 1) {
    const client = await tcpFrom('127.0.0.5', ports.tcpText);
    await client.until(' connected!');
    fillers.push(client);
  }
  const refused = await tcpFrom('127.0.0.5', ports.tcpText);
  await until(() => refused.closed, 'the refused connection closed');
  assert.equal(refused.received, `error: ${full}\n`);
  // Over HTTPS too: the same client, another listener.
  const polling = '/socket.io/?EIO=4&transport=polling';
  const over = await request(ports.https, polling, { from: '127.0.0.5' });
  assert.equal(over.status, 503);
  assert.deepEqual(JSON.parse(over.body), { error: full });
  // Another address is in, whoever it claims to be.
  const other = await request(ports.https, polling, { from: '127.0.0.6', headers: { 'X-Forwarded-For': '127.0.0.5' } });
  assert.equal(other.status, 200, other.body);
  assert.match(other.body, /^0\{"sid":"/);
  const tcp = await tcpFrom('127.0.0.6', ports.tcpText);
  await tcp.until(' connected!');
  // And 127.0.0.5 cannot pass for another with a forged X-Forwarded-For.
  const forged = await request(ports.https, polling, { from: '127.0.0.5', headers: { 'X-Forwarded-For': '198.51.100.7' } });
  assert.equal(forged.status, 503);
  assert.deepEqual(JSON.parse(forged.body), { error: full });
  for (const client of [...fillers, tcp]) client.socket.destroy();
  await server.empty();
});

test('the systemd unit passes systemd-analyze verify (binary path substituted)', () => {
  const unitDir = mkdtempSync(path.join(os.tmpdir(), 'chatterbox-unit-'));
  try {
    const unit = substitute(readFileSync(deployFile('systemd/chatterbox.service'), 'utf8'),
      [['ExecStart=/usr/local/bin/chatterbox', `ExecStart=${binary}`]]);
    const file = path.join(unitDir, 'chatterbox.service');
    writeFileSync(file, unit);
    const verify = spawnSync('systemd-analyze', ['verify', file], { encoding: 'utf8' });
    assert.equal(verify.error, undefined, 'systemd-analyze runs (Debian: apt-get install systemd)');
    assert.equal(verify.status, 0, verify.stderr);
    const aboutUnit = verify.stderr.split('\n').filter((l) => l.includes('chatterbox.service'));
    assert.deepEqual(aboutUnit, []);
    for (const wanted of ['KillSignal=SIGTERM', 'Restart=on-failure', 'StateDirectory=chatterbox',
      'LimitNOFILE=', 'DynamicUser=yes', 'ProtectSystem=strict', 'NoNewPrivileges=yes',
      'EnvironmentFile=/etc/chatterbox/chatterbox.env']) {
      assert.ok(unit.includes(`\n${wanted}`), wanted);
    }
  } finally {
    rmSync(unitDir, { recursive: true, force: true });
  }
});

test('deploy/chatterbox.env names every setting of chatterbox --help', () => {
  const help = execFileSync(binary, ['--help'], { encoding: 'utf8' });
  const variables = [...help.matchAll(/\[env: (CHATTERBOX_[A-Z_]+)=/g)].map((m) => m[1]);
  assert.ok(variables.length > 30, 'the variables read from --help');
  const text = readFileSync(deployFile('chatterbox.env'), 'utf8');
  const missing = variables.filter((v) => !new RegExp(`^#?${v}=`, 'm').test(text));
  assert.deepEqual(missing, []);
  // What it sets is what running behind nginx on one host needs.
  const settings = envFile(deployFile('chatterbox.env'));
  assert.equal(settings.CHATTERBOX_HOST, '127.0.0.1');
  assert.equal(settings.CHATTERBOX_TRUSTED_PROXIES, '127.0.0.1');
  assert.equal(settings.CHATTERBOX_DB, '/var/lib/chatterbox/chatterbox.db');
});
