const cp = require('child_process');

function unused() {
  cp.execSync('rm -rf /tmp/nothing');
}
