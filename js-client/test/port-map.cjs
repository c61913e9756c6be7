// Test harness, preloaded with `node --require`: the original terminal clients dial
// fixed ports (5000, 3000); this maps those ports to the ports a test server bound
// (CHATTERBOX_PORT_MAP='{"5000": 41234}'), so the clients themselves stay unchanged.
const net = require('node:net');

const map = JSON.parse(process.env.CHATTERBOX_PORT_MAP || '{}');
const connect = net.Socket.prototype.connect;
net.Socket.prototype.connect = function (...args) {
  // net.connect() passes its normalized arguments as an array; socket.connect() as is.
  const options = Array.isArray(args[0]) ? args[0][0] : args[0];
  if (options && typeof options === 'object' && map[options.port]) {
    options.port = map[options.port];
    options.host = '127.0.0.1';
  }
  return connect.apply(this, args);
};
