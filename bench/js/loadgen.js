// The fan-out load generator: N official socket.io-client connections (websocket transport only) join one event
// room; then likes are sent over HTTP one at a time and every client's arrival time of each photo:liked is taken
// against the moment the like was sent, on this process's one clock. One like is also sent while the joins are
// still going on, to see that the server keeps answering HTTP under a crowd of joins.
//
// Usage: node loadgen.js '<json config>'   (config: see bench/fanout.py, which is the only caller)
// Prints one JSON object on stdout and exits 0; everything is bounded by config.deadlineMs, after which it prints
// what it has (with "timedOut": true) and exits.
const { io } = require("socket.io-client");
const { performance } = require("node:perf_hooks");

const config = JSON.parse(process.argv[2]);
const started = performance.now();
const sockets = [];
const joinFailures = {};
const joinMs = [];
const transports = {};
let joined = 0;
let midJoinLike = null;
// arrivals[photoId] = list of ms since that like was sent, one per client that received it
const sentAt = {};
const arrivals = {};

function countFailure(reason) {
  const key = String(reason).slice(0, 160);
  joinFailures[key] = (joinFailures[key] || 0) + 1;
}

function percentile(sorted, q) {
  if (sorted.length === 0) return null;
  return Math.round(sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] * 100) / 100;
}

function summary(samples) {
  const sorted = [...samples].sort((a, b) => a - b);
  return { count: sorted.length, p50_ms: percentile(sorted, 0.5), p95_ms: percentile(sorted, 0.95),
    p99_ms: percentile(sorted, 0.99), max_ms: percentile(sorted, 1) };
}

function finish(extra) {
  for (const socket of sockets) socket.close();
  const latencies = [];
  const likes = config.likes.map((like) => {
    const got = arrivals[like.photoId] || [];
    latencies.push(...got);
    return { photoId: like.photoId, received: got.length, ...summary(got) };
  });
  const expected = joined * Object.keys(sentAt).length;
  const result = {
    clients: config.clients, joined, joinFailures, notJoined: config.clients - joined, join: summary(joinMs), transports, midJoinLike,
    likesSent: Object.keys(sentAt).length, deliveriesExpected: expected, deliveriesReceived: latencies.length,
    deliveriesMissing: expected - latencies.length, fanout: summary(latencies), perLike: likes,
    wallMs: Math.round(performance.now() - started), ...extra,
  };
  process.stdout.write(`${JSON.stringify(result)}\n`);
  process.exit(0);
}

setTimeout(() => finish({ timedOut: true }), config.deadlineMs).unref();

async function post(like) {
  const t0 = performance.now();
  try {
    const response = await fetch(like.url, { method: "POST", headers: like.headers, body: like.body,
      signal: AbortSignal.timeout(config.httpTimeoutMs) });
    await response.text();
    return { t0, status: response.status, ms: Math.round((performance.now() - t0) * 100) / 100 };
  } catch (error) {
    return { t0, status: null, error: String(error), ms: Math.round((performance.now() - t0) * 100) / 100 };
  }
}

function connectOne() {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const socket = io(config.url, {
      path: config.path, transports: ["websocket"], forceNew: true, reconnection: false,
      timeout: config.joinTimeoutMs, auth: config.token ? { token: config.token } : {},
    });
    sockets.push(socket);
    let settled = false;
    const settle = (reason) => {
      if (settled) return;
      settled = true;
      if (reason) countFailure(reason);
      resolve();
    };
    socket.on("connect_error", (err) => settle(`connect_error: ${err.message}`));
    const arrived = (data) => {
      const at = sentAt[data.photoId];
      if (at !== undefined) (arrivals[data.photoId] ||= []).push(performance.now() - at);
    };
    socket.on("photo:liked", arrived);
    // Our server sends events committed while a publish is in flight as one "group" (docs/realtime.md).
    socket.on("group", (group) => {
      for (const event of group.events) if (event.name === "photo:liked") arrived(event.data);
    });
    socket.on("connect", () => {
      const name = socket.io.engine.transport.name;
      transports[name] = (transports[name] || 0) + 1;
      socket.timeout(config.joinTimeoutMs).emit("join:event", { eventSlug: config.slug }, (err, ack) => {
        if (err) return settle(`join ack timeout (${config.joinTimeoutMs} ms)`);
        if (!ack || ack.error) return settle(`join refused: ${JSON.stringify(ack && ack.error)}`);
        joined += 1;
        joinMs.push(performance.now() - t0);
        settle(null);
      });
    });
  });
}

async function main() {
  // Connect in waves of `connectConcurrency`; the mid-join like goes out when half of the clients are asked for.
  let next = 0;
  let midJoinPromise = null;
  async function worker() {
    while (next < config.clients) {
      next += 1;
      if (!midJoinPromise && config.midJoinLike && next >= config.clients / 2) {
        midJoinPromise = post(config.midJoinLike).then((answer) => { midJoinLike = answer; });
      }
      await connectOne();
    }
  }
  await Promise.all(Array.from({ length: Math.min(config.connectConcurrency, config.clients) }, worker));
  if (midJoinPromise) await midJoinPromise;
  const joinsDoneMs = Math.round(performance.now() - started);
  await new Promise((r) => setTimeout(r, config.settleMs));

  for (const like of config.likes) {
    const deliveredBefore = () => (arrivals[like.photoId] || []).length;
    const t0 = performance.now();
    sentAt[like.photoId] = t0;
    const answer = await post({ ...like, t0 });
    if (answer.status !== 200) countFailure(`like answered ${answer.status} ${answer.error || ""}`);
    const waitUntil = performance.now() + config.deliveryTimeoutMs;
    while (deliveredBefore() < joined && performance.now() < waitUntil) {
      await new Promise((r) => setTimeout(r, 5));
    }
    await new Promise((r) => setTimeout(r, config.gapMs));
  }
  finish({ timedOut: false, joinsDoneMs });
}

main().catch((error) => finish({ crashed: String(error && error.stack) }));
