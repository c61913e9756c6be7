// Headless Chromium (Debian's, driven by playwright-core; no browser is downloaded):
// our page and the original page, served by the binary, chatting with each other.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { copyFile, mkdir } from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { joined, line, named, repoRoot, startServer, terminalClient, until, launchChromium } from './helpers.mjs';

const screenshots = path.join(repoRoot, 'js-client/screenshots');
let browser;

before(async () => {
  browser = await launchChromium();
  await mkdir(screenshots, { recursive: true });
});
after(async () => { await browser?.close(); });

// Opens `url` in a fresh context, answering the name prompt with `name`. Any other
// dialog (an `alert` from injected markup) is recorded in `alerts`. With `wsPort`, the
// page's fixed `ws://localhost:8001` is mapped to that port (the page stays unchanged).
async function openAs(url, name, wsPort) {
  const context = await browser.newContext();
  if (wsPort) {
    await context.addInitScript((port) => {
      const Native = window.WebSocket;
      window.WebSocket = class extends Native {
        constructor(address, protocols) {
          super(String(address).replace('ws://localhost:8001', `ws://127.0.0.1:${port}`), protocols);
        }
      };
    }, wsPort);
  }
  const page = await context.newPage();
  const visitor = { page, context, logs: [], alerts: [] };
  page.on('dialog', async (dialog) => {
    if (dialog.type() === 'prompt') await dialog.accept(name);
    else {
      visitor.alerts.push(dialog.message());
      await dialog.dismiss();
    }
  });
  page.on('console', (message) => {
    if (message.type() === 'log') visitor.logs.push(message.text());
  });
  await page.goto(url);
  return visitor;
}

const lines = (visitor) => visitor.page.locator('#log li').allInnerTexts();

async function expectLines(visitor, expected) {
  await until(async () => (await lines(visitor)).length >= expected.length, `${expected.length} lines`);
  assert.deepEqual(await lines(visitor), expected);
}

async function expectLogs(visitor, expected) {
  await until(async () => visitor.logs.length >= expected.length, `${expected.length} console lines`);
  assert.deepEqual(visitor.logs, expected);
}

test('our page: two visitors chat, see joins, leaves and each other\'s lines', async () => {
  const server = await startServer();
  try {
    const alice = await openAs(server.url, 'alice');
    await expectLines(alice, ['alice님이 접속하였습니다.']);
    assert.equal(await alice.page.locator('#state').getAttribute('data-state'), 'connected');
    const bob = await openAs(server.url, 'bob');
    await expectLines(bob, ['bob님이 접속하였습니다.']);
    await expectLines(alice, ['alice님이 접속하였습니다.', 'bob님이 접속하였습니다.']);

    await alice.page.fill('#test', 'hello bob');
    await alice.page.press('#test', 'Enter');
    await expectLines(bob, ['bob님이 접속하였습니다.', 'alice : hello bob']);
    assert.equal(await alice.page.inputValue('#test'), '');

    await bob.page.fill('#test', 'hi alice');
    await bob.page.click('#composer button');
    await expectLines(alice, ['alice님이 접속하였습니다.', 'bob님이 접속하였습니다.', 'alice : hello bob',
      'bob : hi alice']);
    await expectLines(bob, ['bob님이 접속하였습니다.', 'alice : hello bob', 'bob : hi alice']);
    assert.deepEqual(await alice.page.locator('#log li.mine').allInnerTexts(), ['alice : hello bob']);
    await expectLogs(alice, ['SERVER : alice님이 접속하였습니다.', 'SERVER : bob님이 접속하였습니다.',
      'bob : hi alice']);

    await bob.context.close();
    await expectLines(alice, ['alice님이 접속하였습니다.', 'bob님이 접속하였습니다.', 'alice : hello bob',
      'bob : hi alice', 'bob님이 나가셨습니다.']);
    await alice.page.screenshot({ path: path.join(screenshots, 'lobby.png') });
    await alice.context.close();
  } finally {
    await server.stop();
  }
});

// README's picture of the page (docs/page.png) is this chat: written to
// js-client/screenshots/page.png on every run, and copied to docs/ with
// UPDATE_SCREENSHOT=1 (`cd js-client && UPDATE_SCREENSHOT=1 node --test
// test/browser.test.mjs`), when the page has changed.
test('our page: two visitors and a terminal client chat (README\'s screenshot)', async () => {
  const server = await startServer();
  try {
    const alice = await openAs(server.url, 'alice');
    await alice.page.setViewportSize({ width: 900, height: 400 });
    await expectLines(alice, ['alice님이 접속하였습니다.']);
    const bob = await openAs(server.url, 'bob');
    // Kim's client prints every line the lobby sends from its connection on: bob's join
    // is seen first, so that kim's screen starts at the prompt.
    await expectLines(alice, ['alice님이 접속하였습니다.', 'bob님이 접속하였습니다.']);
    const kim = terminalClient('tcp-json/socket-client.js', server);
    await kim.answer('Name : ', 'kim');
    const joins = ['alice님이 접속하였습니다.', 'bob님이 접속하였습니다.', 'kim님이 접속하였습니다.'];
    await expectLines(alice, joins);

    await alice.page.fill('#test', 'hello, is everyone here?');
    await alice.page.press('#test', 'Enter');
    await expectLines(alice, [...joins, 'alice : hello, is everyone here?']);
    await kim.expectLines(['Name : kim connected!', 'alice : hello, is everyone here?']);
    kim.type('yes, from the terminal client');
    await expectLines(alice, [...joins, 'alice : hello, is everyone here?', 'kim : yes, from the terminal client']);
    await bob.page.fill('#test', '안녕하세요! from the browser');
    await bob.page.press('#test', 'Enter');
    const said = [...joins, 'alice : hello, is everyone here?', 'kim : yes, from the terminal client',
      'bob : 안녕하세요! from the browser'];
    await expectLines(alice, said);
    await until(async () => JSON.stringify(await alice.page.locator('#member-list li').allInnerTexts())
      === JSON.stringify(['alice socketio', 'bob socketio', 'kim tcp-json']), 'alice, bob and kim online');
    assert.equal(await alice.page.locator('#member-count').innerText(), '3');

    const shot = path.join(screenshots, 'page.png');
    await alice.page.screenshot({ path: shot });
    if (process.env.UPDATE_SCREENSHOT === '1') await copyFile(shot, path.join(repoRoot, 'docs/page.png'));
    kim.close();
    await bob.context.close();
    await alice.context.close();
  } finally {
    await server.stop();
  }
});

test('our page: earlier lines from the history, load older, and who is here, live', async () => {
  const server = await startServer();
  const sockets = [];
  try {
    // 60 lines before anyone opens the page, from three clients (20 each: a burst any
    // rate limit allows); the watcher has them all, so all are stored.
    const watcher = await named(server.url, 'watcher');
    sockets.push(watcher);
    const names = ['amy', 'ben', 'cat'];
    const talkers = [];
    for (const name of names) {
      talkers.push(await named(server.url, name));
      assert.deepEqual(await watcher.expect('update'), joined(name));
    }
    sockets.push(...talkers);
    const said = [];
    for (let n = 1; n <= 60; n += 1) {
      const who = (n - 1) % 3;
      talkers[who].socket.emit('message', { type: 'message', message: `line ${n}` });
      said.push(`${names[who]} : line ${n}`);
      assert.deepEqual(await watcher.expect('update'), line(names[who], `line ${n}`));
    }

    const viewer = await openAs(server.url, 'viewer');
    const earlier = () => viewer.page.locator('#earlier li').allInnerTexts();
    await until(async () => (await earlier()).length === 50, '50 earlier lines');
    assert.deepEqual(await earlier(), said.slice(10));
    await expectLines(viewer, ['viewer님이 접속하였습니다.']);
    await viewer.page.click('#older');
    await until(async () => (await earlier()).length === 60, '60 earlier lines');
    assert.deepEqual(await earlier(), said);
    assert.equal(await viewer.page.locator('#older').isHidden(), true);

    const members = () => viewer.page.locator('#member-list li').allInnerTexts();
    const expectMembers = async (expected) => {
      await until(async () => JSON.stringify(await members()) === JSON.stringify(expected),
        `members ${expected}`);
      assert.equal(await viewer.page.locator('#member-count').innerText(), String(expected.length));
    };
    const sio = ['watcher socketio', 'amy socketio', 'ben socketio', 'cat socketio', 'viewer socketio'];
    await expectMembers(sio);
    const ws = await openAs(`${server.url}/ws/`, null, server.ports.websocket);
    await expectMembers([...sio, 'guest-6 websocket']);
    const kim = terminalClient('tcp-json/socket-client.js', server);
    await kim.answer('Name : ', 'kim');
    await expectMembers([...sio, 'guest-6 websocket', 'kim tcp-json']);
    const text = terminalClient('tcp-text/client_chat.js', server);
    await expectMembers([...sio, 'guest-6 websocket', 'kim tcp-json', 'guest-8 tcp-text']);
    await viewer.page.locator('#log li').last().scrollIntoViewIfNeeded();
    await viewer.page.screenshot({ path: path.join(screenshots, 'presence.png') });

    await ws.context.close();
    kim.close();
    text.close();
    watcher.close();
    await expectMembers(sio.slice(1));
    assert.deepEqual(viewer.alerts, []);
    await viewer.context.close();
  } finally {
    for (const client of sockets) client.close();
    await server.stop();
  }
});

test('our page renders names and lines as text, never as markup', async () => {
  const server = await startServer();
  try {
    const xss = '<img src=x onerror=alert(1)>';
    const reader = await openAs(server.url, 'reader');
    await expectLines(reader, ['reader님이 접속하였습니다.']);
    const mallory = await openAs(server.url, xss);
    await expectLines(mallory, [`${xss}님이 접속하였습니다.`]);
    await mallory.page.fill('#test', '<b>bold</b><script>alert(2)</script>');
    await mallory.page.press('#test', 'Enter');
    await expectLines(reader, ['reader님이 접속하였습니다.', `${xss}님이 접속하였습니다.`,
      `${xss} : <b>bold</b><script>alert(2)</script>`]);
    // Its own line shows once the server has acknowledged it.
    await until(async () => (await mallory.page.locator('#log li.mine').count()) === 1, 'own line');
    assert.deepEqual(await mallory.page.locator('#log li.mine').allInnerTexts(),
      [`${xss} : <b>bold</b><script>alert(2)</script>`]);
    for (const visitor of [reader, mallory]) {
      assert.equal(await visitor.page.locator('#log img, #log b, #log script').count(), 0);
      assert.deepEqual(visitor.alerts, []);
    }
    await reader.page.screenshot({ path: path.join(screenshots, 'lobby-markup-as-text.png') });
    await reader.context.close();
    await mallory.context.close();
  } finally {
    await server.stop();
  }
});

test('the original page, served with --static-dir, chats through its console', async () => {
  const server = await startServer(['--static-dir', path.join(repoRoot, 'tests/fixtures/classic')]);
  try {
    const ann = await openAs(server.url, 'ann');
    await expectLogs(ann, ['SERVER : ann님이 접속하였습니다.']);
    const ben = await openAs(server.url, '');
    await expectLogs(ben, ['SERVER : 익명님이 접속하였습니다.']);
    await expectLogs(ann, ['SERVER : ann님이 접속하였습니다.', 'SERVER : 익명님이 접속하였습니다.']);

    await ann.page.fill('#test', 'hello');
    await ann.page.click('button');
    await expectLogs(ben, ['SERVER : 익명님이 접속하였습니다.', 'ann : hello']);
    await ben.page.fill('#test', 'hi ann');
    await ben.page.click('button');
    await expectLogs(ann, ['SERVER : ann님이 접속하였습니다.', 'SERVER : 익명님이 접속하였습니다.',
      '익명 : hi ann']);
    await ben.context.close();
    await expectLogs(ann, ['SERVER : ann님이 접속하였습니다.', 'SERVER : 익명님이 접속하였습니다.',
      '익명 : hi ann', 'SERVER : 익명님이 나가셨습니다.']);
    await ann.page.screenshot({ path: path.join(screenshots, 'classic.png') });
    await ann.context.close();
  } finally {
    await server.stop();
  }
});

test('all four original clients chat with each other through one server', async () => {
  const server = await startServer(['--static-dir', path.join(repoRoot, 'tests/fixtures/classic')]);
  try {
    // 1: the original Socket.IO page
    const ann = await openAs(server.url, 'ann');
    await expectLogs(ann, ['SERVER : ann님이 접속하였습니다.']);
    // 2: the original WebSocket page, served unchanged at /ws/
    const ws = await openAs(`${server.url}/ws/`, null, server.ports.websocket);
    const wsLines = () => ws.page.locator('#chat .message').allInnerTexts();
    const expectWs = async (expected) => {
      await until(async () => (await wsLines()).length >= expected.length, `ws page: ${expected}`);
      assert.deepEqual(await wsLines(), expected);
    };
    await expectWs(['새로운 유저 접속 [현재 : 2명]']);
    // 3: the TCP JSON terminal client; 4: the TCP text terminal client
    const kim = terminalClient('tcp-json/socket-client.js', server);
    await kim.answer('Name : ', 'kim');
    await kim.expectLines(['Name : kim connected!']);
    const text = terminalClient('tcp-text/client_chat.js', server);
    await text.expectLines(['Connected to Server', 'Get message from Server :  guest-4 connected!']);
    await expectLogs(ann, ['SERVER : ann님이 접속하였습니다.', 'SERVER : guest-2님이 접속하였습니다.',
      'SERVER : kim님이 접속하였습니다.', 'SERVER : guest-4님이 접속하였습니다.']);
    await expectWs(['새로운 유저 접속 [현재 : 2명]', '새로운 유저 접속 [현재 : 3명]', '새로운 유저 접속 [현재 : 4명]']);
    await kim.expectLines(['Name : kim connected!', 'guest-4 connected!']);

    // Each line is sent once the one before has arrived: lines of different clients
    // have no order of their own.
    await ann.page.fill('#test', 'hello from socket.io');
    await ann.page.click('button');
    await kim.expectLines(['Name : kim connected!', 'guest-4 connected!', 'ann : hello from socket.io']);
    await ws.page.fill('#name', 'wendy');
    await ws.page.fill('#msg', 'hello from the websocket page');
    await ws.page.click('button');
    await kim.expectLines(['Name : kim connected!', 'guest-4 connected!', 'ann : hello from socket.io',
      'wendy : hello from the websocket page']);
    kim.type('hello from json');
    await kim.expectLines(['Name : kim connected!', 'guest-4 connected!', 'ann : hello from socket.io',
      'wendy : hello from the websocket page', 'kim : hello from json']);
    text.type('hello from text');
    await kim.expectLines(['Name : kim connected!', 'guest-4 connected!', 'ann : hello from socket.io',
      'wendy : hello from the websocket page', 'kim : hello from json', 'guest-4 : hello from text']);
    kim.type('<img src=x onerror=alert(1)>');

    await expectLogs(ann, ['SERVER : ann님이 접속하였습니다.', 'SERVER : guest-2님이 접속하였습니다.',
      'SERVER : kim님이 접속하였습니다.', 'SERVER : guest-4님이 접속하였습니다.',
      'wendy : hello from the websocket page', 'kim : hello from json', 'guest-4 : hello from text',
      'kim : <img src=x onerror=alert(1)>']);
    await expectWs(['새로운 유저 접속 [현재 : 2명]', '새로운 유저 접속 [현재 : 3명]', '새로운 유저 접속 [현재 : 4명]',
      'ann: hello from socket.io', 'wendy: hello from the websocket page', 'kim: hello from json',
      'guest-4: hello from text', 'kim: <img src=x onerror=alert(1)>']);
    await text.expectLines(['Connected to Server', 'Get message from Server :  guest-4 connected!',
      'Get message from Server :  ann : hello from socket.io',
      'Get message from Server :  wendy : hello from the websocket page',
      'Get message from Server :  kim : hello from json', 'sent : hello from text',
      'Get message from Server :  kim : <img src=x onerror=alert(1)>']);
    // The original page inserts what it receives as HTML: escaped, it shows as text,
    // whatever protocol it was typed on.
    assert.equal(await ws.page.locator('#chat img').count(), 0);
    const shown = await wsLines();
    await ann.page.fill('#test', '<b>x</b> from socket.io');
    await ann.page.click('button');
    await expectWs([...shown, 'ann: <b>x</b> from socket.io']);
    await ws.page.fill('#msg', '<b>x</b> from the websocket page');
    await ws.page.click('button');
    await expectWs([...shown, 'ann: <b>x</b> from socket.io', 'wendy: <b>x</b> from the websocket page']);
    kim.type('<b>x</b> from json');
    await expectWs([...shown, 'ann: <b>x</b> from socket.io', 'wendy: <b>x</b> from the websocket page',
      'kim: <b>x</b> from json']);
    text.type('<b>x</b> from text');
    await expectWs([...shown, 'ann: <b>x</b> from socket.io', 'wendy: <b>x</b> from the websocket page',
      'kim: <b>x</b> from json', 'guest-4: <b>x</b> from text']);
    assert.equal(await ws.page.locator('#chat b').count(), 0);
    assert.deepEqual(ws.alerts, []);
    await ws.page.screenshot({ path: path.join(screenshots, 'ws-chat.png') });

    kim.close();
    await expectWs(['새로운 유저 접속 [현재 : 2명]', '새로운 유저 접속 [현재 : 3명]', '새로운 유저 접속 [현재 : 4명]',
      'ann: hello from socket.io', 'wendy: hello from the websocket page', 'kim: hello from json',
      'guest-4: hello from text', 'kim: <img src=x onerror=alert(1)>', 'ann: <b>x</b> from socket.io',
      'wendy: <b>x</b> from the websocket page', 'kim: <b>x</b> from json', 'guest-4: <b>x</b> from text',
      '유저 연결 해제 [현재 : 3명]']);
    await text.expectLines(['Connected to Server', 'Get message from Server :  guest-4 connected!',
      'Get message from Server :  ann : hello from socket.io',
      'Get message from Server :  wendy : hello from the websocket page',
      'Get message from Server :  kim : hello from json', 'sent : hello from text',
      'Get message from Server :  kim : <img src=x onerror=alert(1)>',
      'Get message from Server :  ann : <b>x</b> from socket.io',
      'Get message from Server :  wendy : <b>x</b> from the websocket page',
      'Get message from Server :  kim : <b>x</b> from json', 'sent : <b>x</b> from text',
      'Get message from Server :  kim left.']);
    await ann.context.close();
    await ws.context.close();
  } finally {
    await server.stop();
  }
});

// Issue #15: a person using our page sees every line exactly once, in order, across a
// network blip and a server restart, with nothing lost or doubled where the history it
// fetches meets the live chat.
test('our page misses no line and doubles none across a blip and a server restart', async () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'chatterbox-restart-'));
  const db = path.join(dir, 'kept.db');
  // The rate limit off: bob talks as fast as his lines come back.
  const args = ['--db', db, '--rate-lines-per-sec', '0'];
  let server = await startServer(args);
  try {
    const alice = await openAs(server.url, 'alice');
    await expectLines(alice, ['alice님이 접속하였습니다.']);
    const bob = await openAs(server.url, 'bob');
    await expectLines(bob, ['bob님이 접속하였습니다.']);
    let kim = terminalClient('tcp-json/socket-client.js', server);
    await kim.answer('Name : ', 'kim');
    await kim.expectLines(['Name : kim connected!']);
    const chat = (visitor) => visitor.page.locator('#log li:is(.message, .mine)').allInnerTexts();
    const expectChat = async (visitor, expected) => {
      await until(async () => (await chat(visitor)).length >= expected.length, `${expected.length} chat lines`);
      assert.deepEqual(await chat(visitor), expected);
    };
    const say = async (visitor, text) => {
      await visitor.page.fill('#test', text);
      await visitor.page.press('#test', 'Enter');
    };
    const said = [];
    // Each line once the one before has arrived everywhere: lines of different clients
    // have no order of their own.
    const everyone = async (line) => {
      said.push(line);
      await expectChat(alice, said);
      await expectChat(bob, said);
    };
    await say(alice, 'before the blip');
    await everyone('alice : before the blip');
    kim.type('from the terminal');
    await everyone('kim : from the terminal');
    await say(bob, 'see you');
    await everyone('bob : see you');

    // Alice's network goes away, and the server restarts on the same history.
    await alice.context.setOffline(true);
    const port = server.ports.http;
    await server.stop();
    server = await startServer([...args, '--port', String(port)]);
    await until(async () => await bob.page.locator('#state').getAttribute('data-state') === 'connected',
      'bob back');
    // Bob's page names him again once connected: kim's client, started after that join,
    // starts at its prompt.
    await until(async () => JSON.stringify(await server.members()) === '["bob"]', 'bob in the lobby again');
    kim = terminalClient('tcp-json/socket-client.js', server);
    await kim.answer('Name : ', 'kim');
    await kim.expectLines(['Name : kim connected!']);
    // The others go on without her.
    const missed = ['bob : while alice is away', 'kim : she will see this'];
    await say(bob, 'while alice is away');
    said.push(missed[0]);
    await expectChat(bob, said);
    kim.type('she will see this');
    said.push(missed[1]);
    await expectChat(bob, said);
    assert.equal(await alice.page.locator('#state').getAttribute('data-state'), 'disconnected');
    assert.deepEqual(await chat(alice), said.slice(0, -2));

    // She comes back while bob goes on talking, a line as soon as the one before has
    // reached him, up to ten after her page says it is connected: the lines she missed
    // (fetched) and the live ones meet.
    await alice.context.setOffline(false);
    const aliceConnected = async () => await alice.page.locator('#state').getAttribute('data-state') === 'connected';
    for (let n = 1, after = 0; after < 10; n += 1) {
      // socket.io-client waits up to 5 s (and a random half more) between tries.
      assert.ok(n <= 400, 'alice did not reconnect');
      await say(bob, `burst ${n}`);
      said.push(`bob : burst ${n}`);
      await expectChat(bob, said);
      if (await aliceConnected()) after += 1;
    }
    await expectChat(alice, said);
    await say(alice, 'back, and I saw it all');
    await everyone('alice : back, and I saw it all');
    kim.type('welcome back');
    await everyone('kim : welcome back');
    assert.deepEqual(alice.alerts, []);
    await alice.page.screenshot({ path: path.join(screenshots, 'no-line-missed.png') });
    await alice.context.close();
    await bob.context.close();
  } finally {
    await server.stop();
    rmSync(dir, { recursive: true, force: true });
  }
});
