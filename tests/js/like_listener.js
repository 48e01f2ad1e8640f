// Connects the way the original platform's browser code does, joins one event and waits for a like.
// Prints one JSON line per step on stdout ({"step": "joined", ...} then {"step": "liked", ...}) and exits 0;
// exits 1 with a message on stderr on any error or after TIMEOUT_MS.
// Usage: node like_listener.js <url> <path> <eventSlug> [token]
const { io } = require("socket.io-client");

const [url, path, slug, token] = process.argv.slice(2);
const TIMEOUT_MS = 10000;

function fail(message) {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

const timer = setTimeout(() => fail(`no photo:liked within ${TIMEOUT_MS} ms`), TIMEOUT_MS);
const socket = io(url, { path, auth: token ? { token } : {}, reconnection: false });

socket.on("connect_error", (err) => fail(`connect_error: ${err.message} ${JSON.stringify(err.data)}`));
socket.on("error", (data) => fail(`error event: ${JSON.stringify(data)}`));
socket.on("connect", () => {
  socket.emit("join:event", { eventSlug: slug }, (ack) => {
    if (ack.error) fail(`join refused: ${JSON.stringify(ack.error)}`);
    process.stdout.write(`${JSON.stringify({ step: "joined", ack, transport: socket.io.engine.transport.name })}\n`);
  });
});
socket.on("photo:liked", (data) => {
  clearTimeout(timer);
  process.stdout.write(`${JSON.stringify({ step: "liked", data })}\n`);
  socket.close();
  process.exit(0);
});
