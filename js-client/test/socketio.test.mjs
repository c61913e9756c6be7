// The official socket.io-client (4.x, and 2.x for Engine.IO v3) against the binary:
// every transport, the upgrade, both protocol versions, and the payload limit.
import { test, before, after, afterEach } from 'node:test';
import assert from 'node:assert/strict';
import ioV2 from 'socket.io-client-v2';
import { Client, startServer, named, joined, left, line, within } from './helpers.mjs';

let server;
before(async () => { server = await startServer(); });
// Tests share the server: each starts once the last one's clients are gone.
afterEach(async () => { await server.empty(); });
after(async () => {
  const { code } = await server.stop();
  assert.equal(code, 0, server.output());
});

test('the handshake has the Node server\'s defaults', async () => {
  const response = await fetch(`${server.url}/socket.io/?EIO=4&transport=polling`);
  assert.equal(response.status, 200);
  const body = await response.text();
  assert.equal(body[0], '0');
  const open = JSON.parse(body.slice(1));
  assert.deepEqual(
    { upgrades: open.upgrades, pingInterval: open.pingInterval, pingTimeout: open.pingTimeout, maxPayload: open.maxPayload },
    { upgrades: ['websocket'], pingInterval: 25000, pingTimeout: 20000, maxPayload: 1000000 },
  );
});

// Two clients chat both ways; `a` and `b` are named and `a` saw `b` join.
async function chat(a, aName, b, bName) {
  a.socket.emit('message', { type: 'message', message: `from ${aName}` });
  assert.deepEqual(await b.expect('update'), line(aName, `from ${aName}`));
  b.socket.emit('message', { type: 'message', message: `from ${bName}` });
  assert.deepEqual(await a.expect('update'), line(bName, `from ${bName}`));
}

test('default transports: long-polling first, then the upgrade to WebSocket', async () => {
  const a = new Client(server.url);
  const transports = [];
  const upgraded = new Promise((resolve) => {
    a.socket.io.on('open', () => {
      const engine = a.socket.io.engine;
      transports.push(engine.transport.name);
      engine.on('upgrade', (transport) => {
        transports.push(transport.name);
        resolve();
      });
    });
  });
  await a.expect('connect');
  a.socket.emit('newUser', 'upgrader');
  assert.deepEqual(await a.expect('update'), joined('upgrader'));
  await within(upgraded, 'upgrade to websocket');
  assert.deepEqual(transports, ['polling', 'websocket']);

  const b = await named(server.url, 'plain');
  assert.deepEqual(await a.expect('update'), joined('plain'));
  await chat(a, 'upgrader', b, 'plain');
  b.close();
  assert.deepEqual(await a.expect('update'), left('plain'));
  a.close();
});

test('websocket only and polling only talk to each other', async () => {
  const ws = await named(server.url, 'ws-only', { transports: ['websocket'] });
  assert.equal(ws.socket.io.engine.transport.name, 'websocket');
  const polling = await named(server.url, 'polling-only', { transports: ['polling'], upgrade: false });
  assert.equal(polling.socket.io.engine.transport.name, 'polling');
  assert.deepEqual(await ws.expect('update'), joined('polling-only'));
  await chat(ws, 'ws-only', polling, 'polling-only');
  polling.close();
  assert.deepEqual(await ws.expect('update'), left('polling-only'));
  ws.close();
});

test('a socket.io-client 2.x (Engine.IO v3) client chats with a 4.x client', async () => {
  const v4 = await named(server.url, 'modern');
  const v2 = new Client(server.url, { transports: ['polling', 'websocket'] }, ioV2);
  await v2.expect('connect');
  v2.socket.emit('newUser', 'legacy');
  assert.deepEqual(await v2.expect('update'), joined('legacy'));
  assert.deepEqual(await v4.expect('update'), joined('legacy'));
  await chat(v4, 'modern', v2, 'legacy');
  v2.close();
  assert.deepEqual(await v4.expect('update'), left('legacy'));
  v4.close();
});

test('bad input: an error event for the sender, nothing for the others', async () => {
  const bob = await named(server.url, 'bob');
  const eve = new Client(server.url);
  await eve.expect('connect');
  eve.socket.emit('message', { type: 'message', message: 'anyone?' });
  assert.deepEqual(await eve.expect('error'), { message: 'choose a name before sending messages' });
  eve.socket.emit('newUser', { evil: true });
  assert.deepEqual(await eve.expect('error'), { message: 'newUser expects your name as a string' });
  eve.socket.emit('newUser', 'eve');
  assert.deepEqual(await eve.expect('update'), joined('eve'));
  assert.deepEqual(await bob.expect('update'), joined('eve'));
  eve.socket.emit('message', 'not an object');
  assert.deepEqual(await eve.expect('error'), {
    message: 'message expects an object {type: "message", message: "<text>"}',
  });
  await chat(eve, 'eve', bob, 'bob');
  eve.close();
  bob.close();
});

for (const transports of [['websocket'], ['polling']]) {
  test(`a payload over 1,000,000 bytes closes only its sender's connection (${transports[0]})`, async () => {
    const bob = await named(server.url, 'bob');
    const big = await named(server.url, 'big', { transports, upgrade: false });
    assert.deepEqual(await bob.expect('update'), joined('big'));

    big.socket.emit('message', { type: 'message', message: 'x'.repeat(1_000_001) });
    const { event, data } = await big.next('disconnect');
    assert.equal(event, 'disconnect');
    assert.match(data, /^transport (close|error)$/);
    assert.deepEqual(await bob.expect('update'), left('big'));

    const carol = await named(server.url, 'carol');
    assert.deepEqual(await bob.expect('update'), joined('carol'));
    await chat(bob, 'bob', carol, 'carol');
    carol.close();
    bob.close();
  });
}
