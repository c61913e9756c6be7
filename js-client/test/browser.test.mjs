// Headless Chromium (Debian's, driven by playwright-core; no browser is downloaded):
// our page and the original page, served by the binary, chatting with each other.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import path from 'node:path';
import { chromium } from 'playwright-core';
import { repoRoot, startServer, within, WAIT_MS } from './helpers.mjs';

const screenshots = path.join(repoRoot, 'js-client/screenshots');
let browser;

before(async () => {
  browser = await chromium.launch({
    executablePath: process.env.CHROMIUM ?? '/usr/bin/chromium',
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
  await mkdir(screenshots, { recursive: true });
});
after(async () => { await browser?.close(); });

// Resolves once `condition()` is true; polls, since the page changes on its own.
async function until(condition, what) {
  await within((async () => {
    while (!(await condition())) await new Promise((resolve) => setTimeout(resolve, 25));
  })(), what, WAIT_MS);
}

// Opens `url` in a fresh context, answering the name prompt with `name`. Any other
// dialog (an `alert` from injected markup) is recorded in `alerts`.
async function openAs(url, name) {
  const context = await browser.newContext();
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
    await bob.page.click('button');
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
