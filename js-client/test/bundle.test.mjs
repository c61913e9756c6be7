// The Socket.IO browser bundle, served by the binary as the Node server serves it: the
// official files byte for byte, a JavaScript content type, an ETag, gzip and br.
import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import zlib from 'node:zlib';
import { repoRoot, startServer } from './helpers.mjs';

const dist = path.join(repoRoot, 'js-client/node_modules/socket.io-client/dist');
let server;
before(async () => { server = await startServer(); });
after(async () => { await server.stop(); });

// GET `pathname` with `headers`; resolves to { status, headers, body (raw bytes) }.
function get(pathname, headers = {}) {
  return new Promise((resolve, reject) => {
    http.get(new URL(pathname, server.url), { headers }, (response) => {
      const chunks = [];
      response.on('data', (chunk) => chunks.push(chunk));
      response.on('end', () => resolve({
        status: response.statusCode, headers: response.headers, body: Buffer.concat(chunks),
      }));
    }).on('error', reject);
  });
}

const files = [
  ['socket.io.js', 'application/javascript; charset=utf-8'],
  ['socket.io.min.js', 'application/javascript; charset=utf-8'],
  ['socket.io.esm.min.js', 'application/javascript; charset=utf-8'],
  ['socket.io.msgpack.min.js', 'application/javascript; charset=utf-8'],
  ['socket.io.js.map', 'application/json; charset=utf-8'],
  ['socket.io.min.js.map', 'application/json; charset=utf-8'],
  ['socket.io.esm.min.js.map', 'application/json; charset=utf-8'],
];

for (const [file, type] of files) {
  test(`/socket.io/${file} is the official file with its type and an ETag`, async () => {
    const official = await readFile(path.join(dist, file));
    const plain = await get(`/socket.io/${file}`);
    assert.equal(plain.status, 200);
    assert.equal(plain.headers['content-type'], type);
    assert.equal(plain.headers['content-encoding'], undefined);
    assert.match(plain.headers.etag, /^"[0-9a-f]{16}"$/);
    assert.ok(plain.body.equals(official), 'same bytes as the npm package');

    const again = await get(`/socket.io/${file}`, { 'if-none-match': plain.headers.etag });
    assert.equal(again.status, 304);
    assert.equal(again.body.length, 0);
    assert.equal(again.headers.etag, plain.headers.etag);
  });
}

test('the bundle is compressed with br or gzip as the client asks', async () => {
  const official = await readFile(path.join(dist, 'socket.io.js'));
  const br = await get('/socket.io/socket.io.js', { 'accept-encoding': 'br' });
  assert.equal(br.headers['content-encoding'], 'br');
  assert.match(br.headers.vary, /accept-encoding/i);
  assert.ok(br.body.length < official.length / 2);
  assert.ok(zlib.brotliDecompressSync(br.body).equals(official));

  const gzip = await get('/socket.io/socket.io.js', { 'accept-encoding': 'gzip' });
  assert.equal(gzip.headers['content-encoding'], 'gzip');
  assert.ok(zlib.gunzipSync(gzip.body).equals(official));
});

test('our page is served at / with its stylesheet and script', async () => {
  const page = await get('/');
  assert.equal(page.status, 200);
  assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
  const html = page.body.toString();
  assert.match(html, /<script src="\/socket.io\/socket.io.js"><\/script>/);
  const here = path.join(repoRoot, 'static');
  for (const [url, file, type] of [
    ['/', 'index.html', 'text/html; charset=utf-8'],
    ['/css/index.css', 'css/index.css', 'text/css; charset=utf-8'],
    ['/js/index.js', 'js/index.js', 'application/javascript; charset=utf-8'],
  ]) {
    const response = await get(url);
    assert.equal(response.status, 200, url);
    assert.equal(response.headers['content-type'], type, url);
    assert.ok(response.body.equals(await readFile(path.join(here, file))), url);
  }
  assert.equal((await get('/no/such/page')).status, 404);
});

test('the original WebSocket chat page is served unchanged at /ws/', async () => {
  const original = await readFile(path.join(repoRoot, 'tests/fixtures/ws-chat/index.html'));
  for (const url of ['/ws/', '/ws/index.html']) {
    const page = await get(url);
    assert.equal(page.status, 200, url);
    assert.equal(page.headers['content-type'], 'text/html; charset=utf-8');
    assert.ok(page.body.equals(original), `${url}: the original page byte for byte`);
  }
});
