const cp = require('child_process');

cp.execSync('node bin/cli.js --help');
