const net = require('net');
exports.send = function (text) {
  const sock = net.connect(9999, '203.0.113.5');
  sock.write(text);
};
