// The original Node.js Socket.IO lobby chat server (PROTOCOLS.md section 1), as the
// reference for chatterbox's benchmark: socket.io 4 with its defaults, the same events
// and texts. It prints `listening http=<address>` like chatterbox.
const http = require('node:http');
const { Server } = require('socket.io');

const server = http.createServer();
const io = new Server(server);

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

const port = Number(process.env.PORT ?? 0);
server.listen(port, '127.0.0.1', () => {
  const { address, port: bound } = server.address();
  console.error(`listening http=${address}:${bound}`);
});
process.on('SIGTERM', () => io.close(() => process.exit(0)));
