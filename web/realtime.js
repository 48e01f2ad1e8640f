/*
 * Hafiportrait Realtime browser client: one API over Ably, Pusher and our Socket.IO server.
 *
 *   const live = await HafiRealtime.connect({
 *     token,                       // a guest or admin token from /api/auth/*
 *     eventSlug: "demo-wedding",   // the gallery to follow (omit for the admin channel only)
 *     admin: false,                // also follow the admin channel (admin tokens only)
 *     seq: {"event:demo-wedding": 12},  // the channel's seq from GET /api/events/{slug}, so nothing is missed;
 *                                       // a channel left out starts from its first live event
 *     onEvent(name, data, channel) {},  // photo:liked, comment:added, notification:new-comment, ...
 *     onStatus(state) {},               // "connecting" | "live" | "catching-up" | "offline"
 *     onPresence(data) {},              // {eventSlug, count}: how many are watching the gallery (Socket.IO's
 *                                       // room size, Ably's occupancy, Pusher's subscription count)
 *     onRefused(channel, reason) {},    // the provider refused a subscription
 *     onReset(channel) {},              // events were missed beyond what the server keeps: reload the state
 *     scripts: {ably: "https://cdn.ably.com/lib/ably.min-2.js"},  // optional: load an SDK from elsewhere (a CDN)
 *   });
 *   live.close();
 *
 * What the client guarantees whatever the provider: each event is delivered once (ids already seen are dropped),
 * in seq order per channel; a gap in seq, a reconnection or a provider's continuity loss fetches what was missed
 * from /updates?after=. A "group" message (several events of one channel published together) is unpacked into its
 * events, each handled as if it had come alone. It
 * subscribes to the provider channels the server names, and takes only what our server publishes there: Pusher
 * client events ("client-…"), provider-internal events and messages another client published are dropped.
 *
 * The official SDKs are served from this API's origin (web/vendor/, pinned versions, unmodified builds).
 */
(function (global) {
  "use strict";

  const PROVIDER_SCRIPTS = {
    ably: "/web/vendor/ably/ably.min.js",
    pusher: "/web/vendor/pusher-js/pusher.min.js",
    socketio: "/web/vendor/socket.io.min.js",
  };
  const SEEN_IDS_KEPT = 2000;
  const CATCH_UP_ATTEMPTS = 5;
  const CATCH_UP_FIRST_WAIT_MS = 250;

  function loadScript(src) {
    return new Promise((resolve, reject) => {
      if (document.querySelector(`script[data-hafi-src="${src}"]`)) return resolve();
      const script = document.createElement("script");
      script.src = src;
      script.async = true;
      script.dataset.hafiSrc = src;
      script.onload = () => resolve();
      script.onerror = () => reject(new Error(`cannot load ${src}`));
      document.head.appendChild(script);
    });
  }

  async function api(base, token, method, path, body) {
    const response = await fetch(base + path, {
      method,
      headers: { Authorization: `Bearer ${token}`, ...(body ? { "Content-Type": "application/json" } : {}) },
      body: body ? JSON.stringify(body) : undefined,
    });
    const data = response.status === 204 ? null : await response.json();
    if (!response.ok) {
      const error = new Error((data && data.error && data.error.message) || response.statusText);
      error.code = data && data.error && data.error.code;
      error.status = response.status;
      throw error;
    }
    return data;
  }

  /** Orders and de-duplicates the events of every channel, and fetches what a gap or reconnection missed. */
  class Sequencer {
    constructor(options, fetchUpdates) {
      this.onEvent = options.onEvent || (() => {});
      this.onReset = options.onReset || (() => {});
      this.lastSeq = Object.assign({}, options.seq || {});
      this.seen = new Set();
      this.fetchUpdates = fetchUpdates;
      this.catchingUp = new Map();
      this.wanted = {}; // per channel, the highest seq seen live while a catch-up was needed
    }

    accept(channel, name, data) {
      // Several events of one channel published together (docs/realtime.md, "Groups"): each goes the way a lone one
      // does, in the group's order.
      if (name === "group") {
        if (data && Array.isArray(data.events)) for (const event of data.events) if (event) this.accept(channel, event.name, event.data);
        return;
      }
      if (!data || this.seen.has(data.id)) return;
      const last = this.lastSeq[channel];
      if (typeof data.seq === "number" && last !== undefined && (data.seq > last + 1 || this.catchingUp.has(channel))) {
        // The catch-up delivers it, in order: one already running goes on until it has reached this seq.
        this.wanted[channel] = Math.max(this.wanted[channel] || 0, data.seq);
        this.catchUp(channel).catch(() => {}); // given up after its attempts: the next gap or reconnection tries again
        return;
      }
      this.deliver(channel, name, data);
    }

    deliver(channel, name, data) {
      if (this.seen.has(data.id)) return;
      this.seen.add(data.id);
      if (this.seen.size > SEEN_IDS_KEPT) this.seen.delete(this.seen.values().next().value);
      if (typeof data.seq === "number") this.lastSeq[channel] = Math.max(this.lastSeq[channel] || 0, data.seq);
      this.onEvent(name, data, channel);
    }

    catchUp(channel) {
      if (this.catchingUp.has(channel)) return this.catchingUp.get(channel);
      const run = (async () => {
        let more = true;
        let emptyPages = 0;
        while (more) {
          const after = this.lastSeq[channel] || 0;
          const page = await this.fetchPatiently(channel, after);
          // The server keeps events for a while only: a client away longer must load the page state again.
          if (page.events.length && page.events[0].seq > after + 1) this.onReset(channel);
          for (const update of page.events) this.deliver(channel, update.name, update.data);
          emptyPages = page.events.length ? 0 : emptyPages + 1;
          // An event that arrived live while the page was on its way may be newer than the page: fetch again (an
          // event is stored before it is published, so the next page has it; two empty pages in a row end it).
          more = page.hasMore || ((this.wanted[channel] || 0) > (this.lastSeq[channel] || 0) && emptyPages < 2);
        }
      })().finally(() => this.catchingUp.delete(channel));
      this.catchingUp.set(channel, run);
      return run;
    }

    /** A page of /updates; a failure (a busy server's 503, a network blip) is tried again a few times, waiting longer
     * each time, since what it would fetch is otherwise missed until the next gap. */
    async fetchPatiently(channel, after) {
      for (let attempt = 0; ; attempt++) {
        try {
          return await this.fetchUpdates(channel, after);
        } catch (error) {
          if (attempt >= CATCH_UP_ATTEMPTS - 1) throw error;
          await new Promise((resolve) => setTimeout(resolve, CATCH_UP_FIRST_WAIT_MS * 2 ** attempt * (0.5 + Math.random())));
        }
      }
    }

    /** Channels whose seq the page never learned start from their first live event instead. */
    catchUpAll(channels) {
      const known = channels.filter((channel) => this.lastSeq[channel] !== undefined);
      return Promise.all(known.map((channel) => this.catchUp(channel).catch(() => {})));
    }
  }

  const transports = {
    async socketio(credentials, ctx) {
      await loadScript(ctx.script("socketio"));
      const url = credentials.url || ctx.apiBase || undefined;
      const socket = global.io(url, { path: credentials.path, auth: { token: ctx.token }, transports: ["websocket", "polling"] });
      const join = () => {
        if (ctx.eventSlug) socket.emit("join:event", { eventSlug: ctx.eventSlug });
        if (ctx.admin) socket.emit("join:admin");
      };
      let connectedBefore = false;
      socket.on("connect", () => {
        join();
        ctx.status("live");
        if (connectedBefore) ctx.resync();
        connectedBefore = true;
      });
      socket.on("disconnect", () => ctx.status("offline"));
      socket.onAny((name, data) => {
        if (name === "presence:count") return ctx.presence(data);
        if (!data || !data.id) return;
        // Socket.IO does not say which room an event came through; docs/realtime.md fixes one channel per event name.
        // A group never mixes channels: one with a notification is the admin channel's, else its events' event's.
        const events = name === "group" && Array.isArray(data.events) ? data.events.filter((e) => e && e.data) : [{ name, data }];
        if (!events.length) return;
        const admin = events.some((e) => e.name === "notification:new-comment");
        ctx.receive(admin ? "admin" : `event:${events[0].data.eventSlug}`, name, data);
      });
      return () => socket.close();
    },

    async ably(credentials, ctx) {
      await loadScript(ctx.script("ably"));
      let tokenRequest = credentials.tokenRequest; // the first one came with the credentials: no second round trip
      const query = ctx.eventSlug ? `?eventSlug=${encodeURIComponent(ctx.eventSlug)}` : "";
      const options = {
        clientId: credentials.clientId,
        authCallback: (_params, callback) => {
          const ready = tokenRequest;
          tokenRequest = null;
          (ready ? Promise.resolve(ready) : api(ctx.apiBase, ctx.token, "GET", credentials.authUrl + query)).then(
            (signed) => callback(null, signed),
            (error) => callback(error, null),
          );
        },
      };
      if (credentials.endpoint) Object.assign(options, { endpoint: credentials.endpoint, tls: credentials.tls });
      // A host of its own (a stand-in, named as ably-js tells a hostname from a routing policy): only its WebSocket,
      // no fallback hosts. A routing policy ("nonprod:sandbox") keeps Ably's fallbacks and transports.
      const endpoint = credentials.endpoint || "";
      if (endpoint.includes(".") || endpoint.includes("::") || endpoint === "localhost") {
        Object.assign(options, { fallbackHosts: [], transports: ["web_socket"] });
      }
      if (credentials.port) options.port = credentials.port;
      if (credentials.tlsPort) options.tlsPort = credentials.tlsPort;
      const client = new global.Ably.Realtime(options);
      for (const [logical, name] of ctx.subscriptions) {
        // Occupancy (Ably's subscriber count of the channel) is asked for on the event channel only.
        const watched = logical.startsWith("event:");
        const channel = client.channels.get(name, watched ? { params: { occupancy: "metrics" } } : undefined);
        channel.subscribe((message) => {
          if (message.name === "[meta]occupancy") {
            if (watched && message.data && message.data.metrics) ctx.presence({ eventSlug: logical.slice(6), count: message.data.metrics.subscribers });
            return;
          }
          // Our server publishes over REST with no clientId; a message with one came from a browser.
          if (message.clientId || String(message.name).startsWith("[")) return;
          ctx.receive(logical, message.name, message.data);
        });
        channel.on("failed", (change) => ctx.refused(logical, change.reason));
        // A continuity loss (Ably dropped messages, e.g. 80020 over a connection's message rate): still attached, but
        // what was missed is fetched from /updates.
        channel.on("update", (change) => {
          if (!change.resumed) ctx.catchUp(logical);
        });
      }
      let connectedBefore = false;
      client.connection.on((change) => {
        if (change.current === "connected") {
          ctx.status("live");
          if (connectedBefore && change.previous !== "connected") ctx.resync();
          connectedBefore = true;
        } else if (["disconnected", "suspended", "failed"].includes(change.current)) ctx.status("offline");
      });
      return () => client.close();
    },

    async pusher(credentials, ctx) {
      await loadScript(ctx.script("pusher"));
      const options = {
        // pusher-js insists on a cluster even where wsHost says where to connect (a Pusher-protocol server).
        cluster: credentials.cluster || "mt1",
        enableStats: false,
        channelAuthorization: { endpoint: ctx.apiBase + credentials.authEndpoint, headers: { Authorization: `Bearer ${ctx.token}` } },
      };
      if (credentials.wsHost) Object.assign(options, { wsHost: credentials.wsHost, wsPort: credentials.wsPort, wssPort: credentials.wssPort || credentials.wsPort, forceTLS: credentials.forceTLS, enabledTransports: ["ws", "wss"] });
      const pusher = new global.Pusher(credentials.key, options);
      for (const [logical, name] of ctx.subscriptions) {
        const channel = pusher.subscribe(name);
        channel.bind_global((event, data) => {
          if (event === "pusher:subscription_count") {
            if (logical.startsWith("event:")) ctx.presence({ eventSlug: logical.slice(6), count: data.subscription_count });
            return;
          }
          if (event === "pusher:subscription_error") return ctx.refused(logical, data);
          // Only what our server publishes: never Pusher's own events, never a browser's client events.
          if (event.startsWith("pusher") || event.startsWith("client-")) return;
          ctx.receive(logical, event, typeof data === "string" ? JSON.parse(data) : data);
        });
      }
      let connectedBefore = false;
      pusher.connection.bind("state_change", (states) => {
        if (states.current === "connected") {
          ctx.status("live");
          if (connectedBefore) ctx.resync();
          connectedBefore = true;
        } else if (["unavailable", "failed", "disconnected"].includes(states.current)) ctx.status("offline");
      });
      return () => pusher.disconnect();
    },
  };

  async function connect(options) {
    const apiBase = options.api || "";
    const onStatus = options.onStatus || (() => {});
    onStatus("connecting");
    const credentials = await api(apiBase, options.token, "POST", "/api/realtime/auth", options.eventSlug ? { eventSlug: options.eventSlug } : null);
    const wanted = [];
    if (options.eventSlug) wanted.push(`event:${options.eventSlug}`);
    if (options.admin) wanted.push("admin");
    // The provider's own channel names come from the server (Pusher's are not ours); a channel the server did not
    // grant is not subscribed to at all.
    const names = credentials.channelNames || {};
    const channels = wanted.filter((channel) => names[channel]);
    const sequencer = new Sequencer(options, (channel, after) => {
      const path = channel === "admin" ? `/api/admin/updates?after=${after}` : `/api/events/${channel.slice(6)}/updates?after=${after}`;
      return api(apiBase, options.token, "GET", path);
    });
    const ctx = {
      apiBase,
      script: (provider) => (options.scripts || {})[provider] || (options.scriptBase || apiBase) + PROVIDER_SCRIPTS[provider],
      token: options.token,
      eventSlug: options.eventSlug,
      admin: !!options.admin,
      channels,
      subscriptions: channels.map((channel) => [channel, names[channel]]),
      status: onStatus,
      receive: (channel, name, data) => {
        if (channels.includes(channel)) sequencer.accept(channel, name, data);
      },
      presence: options.onPresence || (() => {}),
      refused: options.onRefused || (() => {}),
      catchUp: (channel) => {
        if (channels.includes(channel)) sequencer.catchUp(channel).catch(() => {});
      },
      resync: () => {
        onStatus("catching-up");
        sequencer.catchUpAll(channels).then(() => onStatus("live"));
      },
    };
    const transport = transports[credentials.provider];
    if (!transport) throw new Error(`realtime provider ${credentials.provider} has no browser transport`);
    const close = await transport(credentials, ctx);
    // Anything published between the page load (its seq) and the subscription is fetched now.
    await sequencer.catchUpAll(channels);
    return { close, provider: credentials.provider, channels, lastSeq: sequencer.lastSeq };
  }

  global.HafiRealtime = { connect, api };
})(window);
