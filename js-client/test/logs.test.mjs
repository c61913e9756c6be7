// --log-format json: every log line is one JSON object; joins, leaves and refusals are
// logged, relayed lines are not (at the default level).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, named, until, joined } from './helpers.mjs';

test('JSON logs: one object per line, joins, leaves and refusals, no relayed line', async () => {
  const server = await startServer(['--log-format', 'json']);
  try {
    const kim = await named(server.url, 'kim');
    const lee = await named(server.url, 'lee');
    assert.deepEqual(await kim.expect('update'), joined('lee'));
    kim.socket.emit('message', { type: 'message', message: 'a secret line' });
    await lee.expect('update');
    lee.socket.emit('message', 'not an object');
    await lee.expect('error');
    lee.close();
    await kim.expect('update');

    const entries = () => server.output().trim().split('\n').map((line) => JSON.parse(line));
    await until(() => entries().some((e) => e.message === 'left'), 'the leave in the log');
    const events = entries()
      .filter((e) => ['joined', 'left', 'refused'].includes(e.message))
      .map(({ message, name, protocol, why }) => ({ message, name, protocol, why }));
    assert.deepEqual(events, [
      { message: 'joined', name: 'kim', protocol: 'socketio', why: undefined },
      { message: 'joined', name: 'lee', protocol: 'socketio', why: undefined },
      {
        message: 'refused', name: undefined, protocol: 'socketio',
        why: 'message expects an object {type: "message", message: "<text>"}',
      },
      { message: 'left', name: 'lee', protocol: 'socketio', why: undefined },
    ]);
    assert.ok(entries().every((e) => e.level && e.timestamp));
    assert.ok(!server.output().includes('a secret line'), 'relayed lines are not logged');
    kim.close();
  } finally {
    await server.stop();
  }
});
