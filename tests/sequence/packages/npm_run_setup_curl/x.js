// Inert test data: read as text by malseq, never run.
const os = require("os");
const info = os.hostname();
