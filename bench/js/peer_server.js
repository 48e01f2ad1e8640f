// The peer in the fan-out benchmark: the official Node socket.io server doing what our server does for a like,
// minus the database: clients join an event room (`join:event`, acked with the room's size) and
// `POST /api/photos/:id/like` broadcasts `photo:liked` to that room, answered 200 with the same shape.
// Usage: node peer_server.js <port> <socket path>; prints "listening <port>" when ready; stops on SIGTERM.
const http = require("node:http");
const { Server } = require("socket.io");

const [port, path] = [Number(process.argv[2]), process.argv[3] || "/api/socket"];
const SLUG = /^[a-z0-9][a-z0-9-]{0,62}$/;
let seq = 0;
const likeCounts = new Map();

const server = http.createServer((req, res) => {
  const match = /^\/api\/photos\/(\d+)\/like$/.exec(req.url || "");
  if (req.method !== "POST" || !match) {
    res.writeHead(404).end();
    return;
  }
  req.resume();
  req.on("end", () => {
    const photoId = Number(match[1]);
    const slug = req.headers["x-event-slug"];
    const likeCount = (likeCounts.get(photoId) || 0) + 1;
    likeCounts.set(photoId, likeCount);
    seq += 1;
    io.to(`event:${slug}`).emit("photo:liked", { photoId, eventSlug: slug, likeCount, seq });
    res.writeHead(200, { "content-type": "application/json" });
    res.end(JSON.stringify({ photoId, likeCount, liked: true, changed: true }));
  });
});

const io = new Server(server, { path, transports: ["websocket"], serveClient: false });
io.on("connection", (socket) => {
  socket.on("join:event", (payload, ack) => {
    const slug = typeof payload === "string" ? payload : payload && payload.eventSlug;
    if (typeof ack !== "function") return;
    if (typeof slug !== "string" || !SLUG.test(slug)) {
      ack({ error: { code: "invalid_input", message: "eventSlug is required" } });
      return;
    }
    const room = `event:${slug}`;
    socket.join(room);
    ack({ room, eventSlug: slug, count: io.sockets.adapter.rooms.get(room)?.size || 0 });
  });
});

server.listen(port, "127.0.0.1", () => process.stdout.write(`listening ${port}\n`));
process.on("SIGTERM", () => { io.close(); server.close(() => process.exit(0)); });
