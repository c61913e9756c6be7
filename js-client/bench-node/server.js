// The original Node.js Socket.IO lobby chat server (PROTOCOLS.md section 1), as the
// reference for chatterbox's benchmark: socket.io 4 with its defaults, the same events
// and texts. It prints `listening http=<address>` like chatterbox.
//
// With REDIS_SOCKET (a redis-server's unix socket) or REDIS_URL (redis://host:port) it is
// one process of a cluster, as the Node world runs one: socket.io's Redis adapter
// (@socket.io/redis-adapter over ioredis, pub/sub), every broadcast published to every
// process (compare-cluster.sh runs three).
const http = require('node:http');
const { Server } = require('socket.io');

const server = http.createServer();
const io = new Server(server);

// The adapter's two connections (one publishes, one subscribes), once both are ready.
async function redisAdapter() {
  const { createAdapter } = require('@socket.io/redis-adapter');
  const { Redis } = require('ioredis');
  const pub = process.env.REDIS_SOCKET ? new Redis({ path: process.env.REDIS_SOCKET }) : new Redis(process.env.REDIS_URL);
  const sub = pub.duplicate();
  await Promise.all([pub, sub].map((client) => new Promise((resolve, reject) => {
    client.once('ready', resolve);
    client.once('error', reject);
  })));
  for (const client of [pub, sub]) client.on('error', (error) => console.error(`redis: ${error.message}`));
  return createAdapter(pub, sub);
}

io.on('connection', (socket) => {
  socket.on('newUser', (name) => {
    socket.name = name;
    io.sockets.emit('update', { type: 'connect', name: 'SERVER', message: `${name}님이 접속하였습니다.` });
  });
  socket.on('message', (data) => {
    data.name = socket.name;
    socket.broadcast.emit('update', data);
  });
  socket.on('disconnect', () => {
    socket.broadcast.emit('update', { type: 'disconnect', name: 'SERVER', message: `${socket.name}님이 나가셨습니다.` });
  });
});

async function main() {
  if (process.env.REDIS_SOCKET || process.env.REDIS_URL) io.adapter(await redisAdapter());
  const port = Number(process.env.PORT ?? 0);
  server.listen(port, '127.0.0.1', () => {
    const { address, port: bound } = server.address();
    console.error(`listening http=${address}:${bound}`);
  });
}
main().catch((error) => {
  console.error(`cannot start: ${error.message}`);
  process.exit(1);
});
process.on('SIGTERM', () => io.close(() => process.exit(0)));
