// SIGTERM: the server closes every client's connection and exits 0 within 5 s.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { startServer, named, within } from './helpers.mjs';

for (const signal of ['SIGTERM', 'SIGINT']) {
  test(`${signal} disconnects every socket and exits 0 within 5 s`, async () => {
    const server = await startServer();
    // A WebSocket client is told the server closed. A long-polling client is told so
    // when its poll is pending; between two polls it sees its next poll fail instead.
    // Either way the official client reconnects once the server is back.
    const clients = [
      [await named(server.url, 'ws', { transports: ['websocket'] }), /^transport close$/],
      [await named(server.url, 'polling', { transports: ['polling'], upgrade: false }),
        /^transport (close|error)$/],
    ];
    const started = Date.now();
    server.child.kill(signal);
    for (const [client, reason] of clients) {
      let got = await client.next('disconnect');
      while (got.event === 'update') got = await client.next('disconnect');
      assert.equal(got.event, 'disconnect');
      assert.match(got.data, reason);
    }
    const { code } = await within(server.exited, 'exit', 5_000);
    assert.equal(code, 0, server.output());
    assert.ok(Date.now() - started < 5_000);
  });
}
