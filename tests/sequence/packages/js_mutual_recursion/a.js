const cp = require('child_process');
const b = require('./b');

function even(n) {
  cp.execSync('id');
  if (n > 0) b.odd(n - 1);
}
module.exports.even = even;
even(4);
