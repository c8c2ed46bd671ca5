#!/usr/bin/env node
const os = require('os');

console.log(os.hostname());
