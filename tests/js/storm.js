// A like storm watched by many subscribers, each one the browser client itself (web/realtime.js, run here as it runs
// in a page) over the provider's official SDK from npm (ably, pusher-js, socket.io-client), so a subscriber orders,
// de-duplicates, unpacks groups and catches up exactly as a gallery does.
//
// Usage: node storm.js '<json>' with {api, slug, watchers, likes, likeWindowMs, timeoutMs, settleMs, warmUpPhotoId,
// warmUpLikes}:
//   1. makes `likes` guest sessions (the likers) and `watchers` more (the subscribers) through POST /api/auth/guest;
//   2. connects every watcher with HafiRealtime.connect (credentials from our own /api/realtime/auth), from the
//      event's seq of GET /api/events/{slug};
//   3. warms the deployment up: warmUpLikes likers like the photo warmUpPhotoId of another event, a few at a time
//      (at a wedding the deployment has served likes long before the storm);
//   4. after settleMs (a gallery's guests have been watching for a while when the storm comes, so the watchers'
//      own setup, their connections, attachments and first catch-up, is over), sends the likes, liker i on photo
//      i % photos, spread evenly over likeWindowMs (each sent on time, not after the one before it is answered),
//      each with its own X-Mutation-Id;
//   5. waits until every watcher has reached the channel's last seq (or timeoutMs);
// then prints one JSON line: the likes (mutationId, photoId, sentAt, answeredAt, status), and per watcher the ids
// it applied (in order), each like's arrival time (by mutationId) and the like counts it ends with. Times are
// Date.now() on this one process's clock. Exits 1 with a message on stderr on a setup error.
"use strict";

const fs = require("fs");
const path = require("path");
const vm = require("vm");

const config = JSON.parse(process.argv[2]);
const CONCURRENT_SETUP_REQUESTS = 20;
const SETUP_ATTEMPTS = 5;

function fail(message) {
  process.stderr.write(`${message}\n`);
  process.exit(1);
}

const Ably = require("ably");

// ably-js speaks msgpack by default in Node and JSON in a browser: a watcher here is a browser.
class BrowserAblyRealtime extends Ably.Realtime {
  constructor(options) {
    super({ useBinaryProtocol: false, ...options });
  }
}

// Every guest is a phone of its own: the app (CLIENT_ADDRESS_SOURCE=x-real-ip, as behind infra/nginx) reads its
// address from X-Real-IP, which the edge would write. Guest i is 10.x.y.z.
function address(i) {
  return `10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`;
}

// One page's globals: the SDKs the page would load from web/vendor/, its own fetch (from its own address), and just
// enough of a document for realtime.js's script loader (the SDK is already there, so the "script" loads at once).
function loadBrowserClient(from) {
  const document = {
    querySelector: () => null,
    head: { appendChild: (script) => setTimeout(() => script.onload(), 0) },
    createElement: () => ({ dataset: {} }),
  };
  const sandbox = {
    document,
    fetch: (url, init = {}) => fetch(url, { ...init, headers: { ...(init.headers || {}), "X-Real-IP": from } }),
    console,
    setTimeout,
    clearTimeout,
    Promise,
    Ably: { Realtime: BrowserAblyRealtime },
    Pusher: require("pusher-js"),
    io: require("socket.io-client").io,
  };
  sandbox.window = sandbox;
  vm.createContext(sandbox);
  const source = fs.readFileSync(path.join(__dirname, "..", "..", "web", "realtime.js"), "utf8");
  vm.runInContext(source, sandbox, { filename: "web/realtime.js" });
  return sandbox.HafiRealtime;
}

async function call(method, route, { token, body, headers, from } = {}) {
  const response = await fetch(config.api + route, {
    method,
    headers: {
      "X-Real-IP": from,
      ...(token ? { Authorization: `Bearer ${token}` } : {}),
      ...(body ? { "Content-Type": "application/json" } : {}),
      ...(headers || {}),
    },
    body: body ? JSON.stringify(body) : undefined,
  });
  const text = await response.text();
  return { status: response.status, data: text ? JSON.parse(text) : null };
}

async function inBatches(count, make) {
  const made = new Array(count);
  let next = 0;
  const worker = async () => {
    while (next < count) {
      const i = next++;
      made[i] = await make(i);
    }
  };
  await Promise.all(Array.from({ length: Math.min(count, CONCURRENT_SETUP_REQUESTS) }, worker));
  return made;
}

// Setup is not what is measured: a busy server's 503 there is waited out (a few times) rather than ending the run.
async function patiently(step) {
  for (let attempt = 1; ; attempt++) {
    try {
      return await step();
    } catch (error) {
      if (attempt >= SETUP_ATTEMPTS || error.status !== 503) throw error;
      await new Promise((resolve) => setTimeout(resolve, 500 * attempt));
    }
  }
}

async function guest(i) {
  return patiently(async () => {
    const answer = await call("POST", "/api/auth/guest", { from: address(i) });
    if (answer.status !== 200) throw Object.assign(new Error(`POST /api/auth/guest: ${answer.status} ${JSON.stringify(answer.data)}`), { status: answer.status });
    return answer.data.token;
  });
}

async function eventState(token) {
  const answer = await call("GET", `/api/events/${config.slug}`, { token, from: address(0) });
  if (answer.status !== 200) fail(`GET /api/events/${config.slug}: ${answer.status}`);
  return answer.data;
}

function watch(HafiRealtime, token, seq) {
  // (each watcher runs in a page of its own, from its own address)
  const channel = `event:${config.slug}`;
  const watcher = { applied: [], arrivals: {}, counts: {}, lastSeq: seq, refused: [], resets: 0 };
  return HafiRealtime.connect({
    api: config.api,
    token,
    eventSlug: config.slug,
    seq: { [channel]: seq },
    onEvent(name, data) {
      watcher.applied.push(data.id);
      watcher.lastSeq = Math.max(watcher.lastSeq, data.seq);
      if (name === "photo:liked" || name === "photo:unliked") watcher.counts[data.photoId] = data.likeCount;
      if (data.mutationId && !(data.mutationId in watcher.arrivals)) watcher.arrivals[data.mutationId] = Date.now();
    },
    onRefused(_channel, reason) {
      watcher.refused.push(String(reason && (reason.message || reason.error || reason)));
    },
    onReset() {
      watcher.resets += 1;
    },
  }).then((live) => Object.assign(watcher, { live }));
}

async function main() {
  const likers = await inBatches(config.likes, guest);
  const watcherTokens = await inBatches(config.watchers, (i) => guest(config.likes + i));
  const before = await eventState(watcherTokens[0]);
  const watchers = await Promise.all(
    watcherTokens.map((token, i) => patiently(() => watch(loadBrowserClient(address(config.likes + i)), token, before.seq))),
  );
  const refused = watchers.filter((w) => w.refused.length);
  if (refused.length) fail(`subscriptions refused: ${JSON.stringify(refused[0].refused)}`);

  const photos = before.photos.map((photo) => photo.id);
  await inBatches(config.warmUpLikes || 0, async (i) => {
    const answer = await call("POST", `/api/photos/${config.warmUpPhotoId}/like`, { token: likers[i], from: address(i) });
    if (answer.status !== 200) fail(`warm-up like: ${answer.status} ${JSON.stringify(answer.data)}`);
  });
  await new Promise((resolve) => setTimeout(resolve, config.settleMs || 0));
  const started = Date.now();
  const likes = await Promise.all(
    likers.map(async (token, i) => {
      const at = started + Math.floor((i * config.likeWindowMs) / config.likes);
      await new Promise((resolve) => setTimeout(resolve, Math.max(0, at - Date.now())));
      const like = { mutationId: `storm-${i}`, photoId: photos[i % photos.length], sentAt: Date.now() };
      const answer = await call("POST", `/api/photos/${like.photoId}/like`, {
        token,
        from: address(i),
        headers: { "X-Mutation-Id": like.mutationId },
      });
      return Object.assign(like, { answeredAt: Date.now(), status: answer.status });
    }),
  );

  const after = await eventState(watcherTokens[0]);
  const deadline = started + config.timeoutMs;
  while (Date.now() < deadline && watchers.some((w) => w.lastSeq < after.seq)) {
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  for (const watcher of watchers) watcher.live.close();
  const report = {
    finalSeq: after.seq,
    likes,
    watchers: watchers.map(({ applied, arrivals, counts, lastSeq, resets }) => ({ applied, arrivals, counts, lastSeq, resets })),
  };
  // The SDKs keep timers of their own after close (Ably's, pusher-js's): end once the report is written out (a pipe
  // is written asynchronously; exiting before would cut it short).
  process.stdout.write(`${JSON.stringify(report)}\n`, () => process.exit(0));
}

main().catch((error) => fail(error && error.stack ? error.stack : String(error)));
