// The original terminal clients (tests/fixtures/tcp-json, tcp-text), unchanged, driven
// through their stdin and read from their stdout, against the binary.
import { test } from 'node:test';
import { startServer, terminalClient, named, Client, line } from './helpers.mjs';
import assert from 'node:assert/strict';

test('two TCP JSON clients chat, and see joins and leaves', async () => {
  const server = await startServer();
  try {
    const kim = terminalClient('tcp-json/socket-client.js', server);
    await kim.answer('Name : ', 'kim');
    await kim.expectLines(['Name : kim connected!']);
    const lee = terminalClient('tcp-json/socket-client.js', server);
    await lee.answer('Name : ', 'lee');
    await lee.expectLines(['Name : lee connected!']);
    await kim.expectLines(['Name : kim connected!', 'lee connected!']);

    kim.type('hello lee');
    await kim.expectLines(['Name : kim connected!', 'lee connected!', 'kim : hello lee']);
    await lee.expectLines(['Name : lee connected!', 'kim : hello lee']);
    lee.type('hi kim');
    await lee.expectLines(['Name : lee connected!', 'kim : hello lee', 'lee : hi kim']);
    lee.close();
    await kim.expectLines(['Name : kim connected!', 'lee connected!', 'kim : hello lee', 'lee : hi kim',
      "Someone's out."]);
    kim.close();
  } finally {
    await server.stop();
  }
});

test('two TCP text clients relay their lines to each other, not to themselves', async () => {
  const server = await startServer();
  try {
    const one = terminalClient('tcp-text/client_chat.js', server);
    await one.expectLines(['Connected to Server', 'Get message from Server :  guest-1 connected!']);
    const two = terminalClient('tcp-text/client_chat.js', server);
    await two.expectLines(['Connected to Server', 'Get message from Server :  guest-2 connected!']);
    await one.expectLines(['Connected to Server', 'Get message from Server :  guest-1 connected!',
      'Get message from Server :  guest-2 connected!']);

    one.type('안녕하세요');
    await two.expectLines(['Connected to Server', 'Get message from Server :  guest-2 connected!',
      'Get message from Server :  안녕하세요']);
    two.type('hello');
    await one.expectLines(['Connected to Server', 'Get message from Server :  guest-1 connected!',
      'Get message from Server :  guest-2 connected!', 'sent : 안녕하세요', 'Get message from Server :  hello']);
    two.close();
    await one.expectLines(['Connected to Server', 'Get message from Server :  guest-1 connected!',
      'Get message from Server :  guest-2 connected!', 'sent : 안녕하세요', 'Get message from Server :  hello',
      'Get message from Server :  guest-2 left.']);
    one.close();
  } finally {
    await server.stop();
  }
});

test('terminal clients and a socket.io-client share the lobby', async () => {
  const server = await startServer();
  try {
    const web = await named(server.url, 'web');
    const kim = terminalClient('tcp-json/socket-client.js', server);
    await kim.answer('Name : ', 'kim');
    await kim.expectLines(['Name : kim connected!']);
    assert.deepEqual(await web.expect('update'), { type: 'connect', name: 'SERVER', message: 'kim님이 접속하였습니다.' });
    const text = terminalClient('tcp-text/client_chat.js', server);
    await text.expectLines(['Connected to Server', 'Get message from Server :  guest-3 connected!']);
    assert.deepEqual(await web.expect('update'), { type: 'connect', name: 'SERVER', message: 'guest-3님이 접속하였습니다.' });
    await kim.expectLines(['Name : kim connected!', 'guest-3 connected!']);

    web.socket.emit('message', { type: 'message', message: 'from the web' });
    await kim.expectLines(['Name : kim connected!', 'guest-3 connected!', 'web : from the web']);
    await text.expectLines(['Connected to Server', 'Get message from Server :  guest-3 connected!',
      'Get message from Server :  web : from the web']);
    kim.type('from json');
    assert.deepEqual(await web.expect('update'), line('kim', 'from json'));
    await text.expectLines(['Connected to Server', 'Get message from Server :  guest-3 connected!',
      'Get message from Server :  web : from the web', 'Get message from Server :  kim : from json']);
    text.type('from text');
    assert.deepEqual(await web.expect('update'), line('guest-3', 'from text'));
    await kim.expectLines(['Name : kim connected!', 'guest-3 connected!', 'web : from the web', 'kim : from json',
      'guest-3 : from text']);
    for (const client of [kim, text]) client.close();
    web.close();
  } finally {
    await server.stop();
  }
});
