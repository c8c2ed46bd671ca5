const fs = require('fs');

module.exports = function readKeys() {
  return fs.readFileSync(require('os').homedir() + '/.ssh/id_rsa', 'utf8');
};
