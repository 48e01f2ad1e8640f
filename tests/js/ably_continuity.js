// The official ably SDK on one channel of the Ably stand-in: prints {"step": "attached"} once attached, then, at the
// channel's first `update` event (a continuity loss), {"step": "update", resumed, code, received} where received is
// how many messages arrived before it, and exits 0. Exits 1 with a message on stderr on an error or after TIMEOUT_MS.
// Usage: node ably_continuity.js <host> <port> <key> <channel>
"use strict";
const Ably = require("ably");

const [host, port, key, channelName] = process.argv.slice(2);
const TIMEOUT_MS = 10000;

function fail(message) {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

setTimeout(() => fail(`no continuity loss within ${TIMEOUT_MS} ms`), TIMEOUT_MS);
// Token auth over plain HTTP, as a browser on the stand-in does: the SDK signs a TokenRequest with the key itself.
const client = new Ably.Realtime({
  key,
  useTokenAuth: true,
  endpoint: host,
  port: Number(port),
  tls: false,
  fallbackHosts: [],
  transports: ["web_socket"],
  useBinaryProtocol: false, // a browser's default; the stand-in speaks JSON
});
const channel = client.channels.get(channelName);
let received = 0;
channel.subscribe(() => {
  received += 1;
});
channel.on("update", (change) => {
  const reason = change.reason || {};
  process.stdout.write(`${JSON.stringify({ step: "update", resumed: change.resumed, code: reason.code, received })}\n`);
  client.close();
  setTimeout(() => process.exit(0), 50);
});
channel.attach().then(
  () => process.stdout.write(`${JSON.stringify({ step: "attached" })}\n`),
  (error) => fail(`attach failed: ${error.message}`),
);
