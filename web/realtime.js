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
 *     onPresence(data) {},              // Socket.IO only: {eventSlug, count} of the gallery's viewers
 *     onReset(channel) {},              // events were missed beyond what the server keeps: reload the state
 *   });
 *   live.close();
 *
 * What the client guarantees whatever the provider: each event is delivered once (ids already seen are dropped),
 * in seq order per channel; a gap in seq or a reconnection fetches what was missed from /updates?after=.
 */
(function (global) {
  "use strict";

  const PROVIDER_SCRIPTS = {
    ably: "https://cdn.ably.com/lib/ably.min-2.js",
    pusher: "https://js.pusher.com/8.4/pusher.min.js",
    socketio: "/web/vendor/socket.io.min.js",
  };
  const SEEN_IDS_KEPT = 2000;

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
    }

    accept(channel, name, data) {
      if (!data || this.seen.has(data.id)) return;
      const last = this.lastSeq[channel];
      if (typeof data.seq === "number" && last !== undefined && data.seq > last + 1) {
        this.catchUp(channel);
        return; // the catch-up delivers it, in order
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
        while (more) {
          const after = this.lastSeq[channel] || 0;
          const page = await this.fetchUpdates(channel, after);
          // The server keeps events for a while only: a client away longer must load the page state again.
          if (page.events.length && page.events[0].seq > after + 1) this.onReset(channel);
          for (const update of page.events) this.deliver(channel, update.name, update.data);
          more = page.hasMore;
        }
      })().finally(() => this.catchingUp.delete(channel));
      this.catchingUp.set(channel, run);
      return run;
    }

    /** Channels whose seq the page never learned start from their first live event instead. */
    catchUpAll(channels) {
      const known = channels.filter((channel) => this.lastSeq[channel] !== undefined);
      return Promise.all(known.map((channel) => this.catchUp(channel).catch(() => {})));
    }
  }

  const transports = {
    async socketio(credentials, ctx) {
      await loadScript(ctx.scriptBase + PROVIDER_SCRIPTS.socketio);
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
        ctx.receive(name === "notification:new-comment" ? "admin" : `event:${data.eventSlug}`, name, data);
      });
      return () => socket.close();
    },

    async ably(credentials, ctx) {
      await loadScript(PROVIDER_SCRIPTS.ably);
      const client = new global.Ably.Realtime({
        clientId: credentials.clientId,
        authCallback: (_params, callback) =>
          api(ctx.apiBase, ctx.token, "GET", credentials.authUrl + (ctx.eventSlug ? `?eventSlug=${encodeURIComponent(ctx.eventSlug)}` : ""))
            .then((tokenRequest) => callback(null, tokenRequest), (error) => callback(error, null)),
      });
      for (const channel of ctx.channels) {
        client.channels.get(channel).subscribe((message) => ctx.receive(channel, message.name, message.data));
      }
      let connectedBefore = false;
      client.connection.on((change) => {
        if (change.current === "connected") {
          ctx.status("live");
          if (connectedBefore) ctx.resync();
          connectedBefore = true;
        } else if (["disconnected", "suspended", "failed"].includes(change.current)) ctx.status("offline");
      });
      return () => client.close();
    },

    async pusher(credentials, ctx) {
      await loadScript(PROVIDER_SCRIPTS.pusher);
      const options = {
        cluster: credentials.cluster,
        channelAuthorization: { endpoint: ctx.apiBase + credentials.authEndpoint, headers: { Authorization: `Bearer ${ctx.token}` } },
      };
      if (credentials.wsHost) Object.assign(options, { wsHost: credentials.wsHost, wsPort: credentials.wsPort, wssPort: credentials.wsPort, forceTLS: credentials.forceTLS, enabledTransports: ["ws", "wss"] });
      const pusher = new global.Pusher(credentials.key, options);
      ctx.channels.forEach((logical) => {
        // Pusher forbids ":" in names; docs/realtime.md maps event:{slug} to private-event-{slug} and admin to private-admin.
        const channel = pusher.subscribe(logical === "admin" ? "private-admin" : `private-event-${logical.slice(6)}`);
        channel.bind_global((name, data) => {
          if (!name.startsWith("pusher:")) ctx.receive(logical, name, typeof data === "string" ? JSON.parse(data) : data);
        });
      });
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
    const channels = [];
    if (options.eventSlug) channels.push(`event:${options.eventSlug}`);
    if (options.admin) channels.push("admin");
    const sequencer = new Sequencer(options, (channel, after) => {
      const path = channel === "admin" ? `/api/admin/updates?after=${after}` : `/api/events/${channel.slice(6)}/updates?after=${after}`;
      return api(apiBase, options.token, "GET", path);
    });
    const ctx = {
      apiBase,
      scriptBase: options.scriptBase || apiBase,
      token: options.token,
      eventSlug: options.eventSlug,
      admin: !!options.admin,
      channels,
      status: onStatus,
      receive: (channel, name, data) => {
        if (channels.includes(channel)) sequencer.accept(channel, name, data);
      },
      presence: options.onPresence || (() => {}),
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
    return { close, provider: credentials.provider, lastSeq: sequencer.lastSeq };
  }

  global.HafiRealtime = { connect, api };
})(window);
