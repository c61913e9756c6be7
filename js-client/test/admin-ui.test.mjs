// Headless Chromium drives the real, embedded Socket.IO Admin UI (/admin/): it logs
// in, sees the dashboard and the sockets of every protocol (our page, a WebSocket
// client, a TCP JSON client), and disconnects the TCP JSON client, which is cut off and
// announced as left. Nothing is loaded from outside chatterbox (the fonts included).
// In development mode, its Events page shows a member's line received and sent.
//
// README's picture of the dashboard (docs/admin-ui.png) is written to
// js-client/screenshots/admin-ui.png on every run, and copied to docs/ with
// UPDATE_SCREENSHOT=1.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { copyFile, mkdir } from 'node:fs/promises';
import { createRequire } from 'node:module';
import net from 'node:net';
import path from 'node:path';
import WebSocket from 'ws';
import { launchChromium, line, named, repoRoot, startServer, until, within } from './helpers.mjs';

const bcrypt = createRequire(import.meta.url)('bcryptjs');
const screenshots = path.join(repoRoot, 'js-client/screenshots');
let browser;

before(async () => {
  browser = await launchChromium();
  await mkdir(screenshots, { recursive: true });
});
after(async () => { await browser?.close(); });

test('the admin UI logs in, lists every protocol\'s members and disconnects a TCP JSON client', async () => {
  const server = await startServer(['--no-history', '--admin-user', 'op',
    '--admin-password-hash', bcrypt.hashSync('correct horse', 4)]);
  const contexts = [];
  try {
    // Our chat page, as ann.
    const chat = await browser.newContext();
    contexts.push(chat);
    const annPage = await chat.newPage();
    annPage.on('dialog', (dialog) => dialog.accept('ann'));
    await annPage.goto(server.url);
    const annLines = () => annPage.locator('#log li').allInnerTexts();
    await until(async () => (await annLines()).includes('ann님이 접속하였습니다.'), 'ann joined');

    const ws = new WebSocket(`ws://127.0.0.1:${server.ports.websocket}/`);
    await within(new Promise((resolve) => ws.once('open', resolve)), 'websocket open');
    const tcp = net.connect(server.ports.tcpJson, '127.0.0.1');
    const tcpClosed = new Promise((resolve) => tcp.once('close', resolve));
    tcp.on('data', () => {});
    tcp.write(JSON.stringify({ type: 'CONNECT', content: 'tess' }));
    await until(async () => (await annLines()).includes('tess님이 접속하였습니다.'), 'tess joined');

    const admin = await browser.newContext({ viewport: { width: 1280, height: 1000 } });
    contexts.push(admin);
    const page = await admin.newPage();
    const elsewhere = [];
    page.on('request', (request) => {
      if (!request.url().startsWith(server.url)) elsewhere.push(request.url());
    });
    await page.goto(`${server.url}/admin/`);
    await page.getByLabel('Server URL').fill(server.url);
    await page.getByLabel('Username').fill('op');
    await page.getByLabel('Password').fill('wrong');
    await page.getByRole('button', { name: 'Connect' }).click();
    await page.getByText('Invalid credentials').waitFor({ timeout: 10_000 });
    await page.getByLabel('Password').fill('correct horse');
    await page.getByRole('button', { name: 'Connect' }).click();
    await page.getByText('connected', { exact: true }).first().waitFor({ timeout: 10_000 });

    // A line after the login: the bytes chart has it.
    tcp.write(JSON.stringify({ type: 'CHAT', content: 'tess : hello' }));
    await until(async () => (await annLines()).some((l) => l.includes('hello')), 'the line at ann');
    const charted = () => page.evaluate(() => document.querySelector('#app').__vue__.$store.state.main.aggregatedEvents
      .filter((e) => e.type === 'bytesIn' || e.type === 'bytesOut').map((e) => e.type).sort());
    await until(async () => (await charted()).length === 2, 'bytes in and out in the UI');
    assert.deepEqual(await charted(), ['bytesIn', 'bytesOut']);

    // The dashboard: namespace / holds the three members; one healthy server.
    const rowsOf = async (card) => (await page.locator('.v-card', { hasText: card }).locator('tr').allInnerTexts())
      .map((row) => row.replace(/\s+/g, ' ').trim());
    await until(async () => (await rowsOf('Namespaces')).includes('/ 3'), 'namespace / with 3 sockets');
    assert.deepEqual(await rowsOf('Namespaces'), ['Name # of sockets', '/ 3', '/admin 1']);
    assert.deepEqual(await rowsOf('Servers'), ['Status #', 'HEALTHY 1 100.0 %', 'UNHEALTHY 0 0.0 %']);
    // The picture once the login dialog has gone and the charts stopped moving.
    await page.getByText('Connection', { exact: true }).waitFor({ state: 'hidden', timeout: 10_000 });
    const shot = path.join(screenshots, 'admin-ui.png');
    let previous;
    await until(async () => {
      const now = await page.screenshot({ path: shot });
      const settled = previous?.equals(now);
      previous = now;
      return settled;
    }, 'the dashboard settled');
    if (process.env.UPDATE_SCREENSHOT === '1') await copyFile(shot, path.join(repoRoot, 'docs/admin-ui.png'));

    // The sockets: our page on Socket.IO, the WebSocket and the TCP JSON client.
    await page.getByRole('navigation').getByRole('link', { name: 'Sockets' }).click();
    const rows = page.locator('tbody tr');
    const table = async () => (await rows.allInnerTexts()).map((row) => row.split(/\s+/).filter(Boolean));
    await until(async () => (await table()).length === 3, 'three sockets listed');
    const listed = await table();
    assert.ok(listed.every(([, address]) => address === '127.0.0.1'), JSON.stringify(listed));
    assert.deepEqual(listed.map(([id, , transport]) => [id.replace(/^(tcp-json|websocket)-\d+$/, '$1-N'), transport]).sort(), [
      ['tcp-json-N', 'tcp-json'],
      ['websocket-N', 'ws'],
      [listed.find(([id]) => !/^(tcp-json|websocket)-/.test(id))[0], 'WebSocket'],
    ].sort());

    // Disconnected from the UI: cut off, announced as left, gone from the list.
    await rows.filter({ hasText: 'tcp-json-' }).getByRole('button').click();
    await within(tcpClosed, 'the TCP JSON client cut off');
    await until(async () => (await annLines()).includes('tess님이 나가셨습니다.'), 'tess announced as left');
    // The UI shows the socket's page: disconnected. Its list no longer has it.
    await page.getByText('disconnected', { exact: true }).first().waitFor({ timeout: 10_000 });
    await page.getByRole('navigation').getByRole('link', { name: 'Sockets' }).click();
    await until(async () => (await table()).length === 2, 'two sockets left');
    assert.ok(!(await table()).some(([id]) => id.startsWith('tcp-json-')));
    const wsId = listed.find(([id]) => id.startsWith('websocket-'))[0];
    assert.deepEqual(await server.members(), ['ann', `guest-${wsId.split('-')[1]}`]);
    assert.deepEqual(elsewhere, [], 'nothing loaded from outside chatterbox');
    ws.close();
  } finally {
    for (const context of contexts) await context.close();
    await server.stop();
  }
});

test('development mode: the UI\'s Events page shows what a member sent and what the others were sent', async () => {
  const server = await startServer(['--no-history', '--admin-no-auth', '--admin-mode', 'development']);
  const context = await browser.newContext({ viewport: { width: 1280, height: 800 } });
  const clients = [];
  try {
    const page = await context.newPage();
    await page.goto(`${server.url}/admin/`);
    await page.getByLabel('Server URL').fill(server.url);
    await page.getByRole('button', { name: 'Connect' }).click();
    await page.getByText('connected', { exact: true }).first().waitFor({ timeout: 10_000 });
    await page.getByRole('navigation').getByRole('link', { name: 'Events' }).click();

    const ann = await named(server.url, 'ann');
    clients.push(ann);
    const bob = await named(server.url, 'bob');
    clients.push(bob);
    ann.socket.emit('message', { type: 'message', message: 'hello' });
    assert.deepEqual(await bob.expect('update'), line('ann', 'hello'));
    const rows = async () => (await page.locator('tbody tr').allInnerTexts()).map((row) => row.replace(/\s+/g, ' ').trim());
    const has = (id, type, name) => (all) => all.some((row) => row.includes(id) && row.includes(type) && row.includes(`Event name: ${name}`));
    await page.locator('.v-select', { hasText: 'Select namespace' }).click();
    await page.getByRole('option', { name: '/', exact: true }).click();
    await until(async () => has(ann.socket.id, 'Event received', 'message')(await rows()), 'ann\'s line received');
    await until(async () => has(bob.socket.id, 'Event sent', 'update')(await rows()), 'the line sent to bob');
    // Its arguments, expanded.
    await page.locator('tbody tr', { hasText: 'Event received' }).filter({ hasText: 'Event name: message' })
      .getByRole('button').click();
    await page.getByText('"hello"').first().waitFor({ timeout: 10_000 });
  } finally {
    for (const client of clients) client.close();
    await context.close();
    await server.stop();
  }
});
