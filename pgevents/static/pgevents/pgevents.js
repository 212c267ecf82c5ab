/* pgevents.js: live PostgreSQL events in the page. No build step, no dependencies.
 *
 *   const client = PgEvents.connect();            // or the {% pgevents_script %} tag does it
 *   client.subscribe("people");
 *   document.body.addEventListener("pgevents:people", (e) => console.log(e.detail));
 *
 * DOM events (dispatched on document.body, so htmx's `from:body` works):
 *   pgevents:event            every event            detail = the server's envelope
 *   pgevents:<channel>        events of a channel
 *   pgevents:<channel>:<op>   ...and operation (insert|update|delete|truncate|notify)
 *   pgevents:subscribed       a subscription is in place (detail.last_event_id)
 *   pgevents:leave            a row stopped matching a filter (also pgevents:<channel>,
 *                             pgevents:<channel>:leave); detail.row = the old row
 *   pgevents:reset            history was lost; regions reload themselves
 *   pgevents:status           detail.state = "connecting" | "live" | "reconnecting" | "offline"
 *                             | "refused" (a subscription was refused: detail.refused lists them)
 *                             | "stalled" (connected, but no listener is active or delivery is
 *                               behind: detail.reason = the server's pipeline state)
 *   pgevents:refused          a subscription was refused (detail = the server's error, with
 *                             channel and code); also logged with console.error
 *   pgevents:pipeline         the server says whether a listener feeds it (detail.state =
 *                             "ok" | "stalled" | "no_listener", detail.lag in seconds)
 *   pgevents:error            detail = the server's error message
 *   pgevents:patched          on a region, after it changed the DOM (detail.op, detail.key)
 *
 * Declarative regions (no markup in JS; the server renders every fragment). The template
 * tags write these attributes; see docs/templates.md.
 *   data-pgevents-channel="people"     the channel the region follows
 *   data-pgevents-src="/people/rows/"  URL of the region's inner HTML (default: this page,
 *                                      the element with the region's id)
 *   data-pgevents-row-src="/people/row/{key}/"   URL of one row; with it, events patch rows
 *   data-pgevents-key="pk"             row field holding the key (default "id")
 *   data-pgevents-since="42"           event id the page was rendered at: resume from it
 *   data-pgevents-debounce="50"        ms to gather a burst before touching the DOM
 *   data-pgevents-insert="append"      where new rows go: append | prepend (rows carrying
 *                                      data-pgevents-sort are kept in that order instead)
 * Rows inside a region carry data-pgevents-row="<key>", optionally data-pgevents-sort (their
 * order) and data-pgevents-fields (JSON of the foreign keys they show: an event for a
 * referenced row, such as {"author_id": 7}, re-renders just the rows whose fields match).
 *   <span data-pgevents-status></span> shows the connection state: "live" only while every
 *                                      subscription is accepted and a listener feeds the server
 *   data-pgevents-token="{% pgevents_signed 'people' %}"   signed channel token (pgevents_signing)
 *   data-pgevents-filter='{"status": "open"}'              row filter (JSON)
 */
(function (global) {
  "use strict";

  /** Most row patches one burst may cost; a bigger burst reloads the region once. */
  const MAX_PATCHES = 20;

  function dispatch(target, name, detail) {
    target = target || document.body || document;
    target.dispatchEvent(new CustomEvent(name, { detail: detail, bubbles: true }));
  }

  function absolute(path, ws) {
    const url = new URL(path, location.href);
    if (ws && url.protocol.indexOf("http") === 0) url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
    return url.toString();
  }

  /* ---- transports: one object per connection attempt, reporting to the client ------- */

  class SocketTransport {
    constructor(client) {
      this.client = client;
      this.ws = new WebSocket(client.url);
      this.ws.onopen = () => client._opened(this);
      this.ws.onmessage = (m) => client._receive(m.data);
      this.ws.onclose = () => client._lost(this);
      this.ws.onerror = () => {}; // onclose follows
    }
    subscribe(channel, sub) {
      const msg = { type: "subscribe", channel: channel };
      if (sub.lastEventId !== null) msg.last_event_id = sub.lastEventId;
      if (sub.filter) msg.filter = sub.filter;
      if (sub.token) msg.token = sub.token;
      this._send(msg);
    }
    unsubscribe(channel) {
      this._send({ type: "unsubscribe", channel: channel });
    }
    _send(msg) {
      if (this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
    }
    close() {
      this.ws.onclose = null;
      this.ws.close();
    }
  }

  /* Server-Sent Events: one EventSource per channel. The browser's own retry resends the
     last id it saw (Last-Event-ID); when the server refuses, the client backs off itself. */
  class SseTransport {
    constructor(client) {
      this.client = client;
      this.sources = new Map(); // nothing to open before the first subscription
    }
    subscribe(channel, sub) {
      this.unsubscribe(channel);
      let url = this.client.sseUrl + encodeURIComponent(channel) + "/";
      const query = [];
      if (sub.lastEventId !== null) query.push("last_event_id=" + encodeURIComponent(sub.lastEventId));
      if (sub.filter) query.push("filter=" + encodeURIComponent(JSON.stringify(sub.filter)));
      if (sub.token) query.push("token=" + encodeURIComponent(sub.token));
      if (query.length) url += "?" + query.join("&");
      const source = new EventSource(url, { withCredentials: true });
      let opened = false;
      this.sources.set(channel, source);
      source.onmessage = (m) => this.client._receive(m.data);
      source.addEventListener("control", (m) => this.client._receive(m.data));
      source.onopen = () => { opened = true; };
      source.onerror = () => {
        if (this.sources.get(channel) !== source) return;
        if (source.readyState !== EventSource.CLOSED) {
          this.client._pending(channel); // the browser retries; "subscribed" comes again
        } else if (!opened) {
          this._refusedOrLost(channel, url); // the server answered with an error status
        } else {
          this.close();
          this.client._lost(this);
        }
      };
    }
    /* An EventSource hides the response of a refusal: ask for it once, to show why. */
    _refusedOrLost(channel, url) {
      const abort = new AbortController();
      fetch(url, { credentials: "same-origin", signal: abort.signal, headers: { Accept: "application/json" } })
        .then((r) => {
          if (r.ok) throw new Error("not a refusal");
          return r.json();
        })
        .then((msg) => {
          if (!msg || msg.type !== "error") throw new Error("not a refusal");
          this.unsubscribe(channel);
          this.client._receive(JSON.stringify(Object.assign({ channel: channel }, msg)));
        })
        .catch(() => {
          abort.abort();
          if (this.client.transport !== this) return;
          this.close();
          this.client._lost(this);
        });
    }
    unsubscribe(channel) {
      const source = this.sources.get(channel);
      if (source) source.close();
      this.sources.delete(channel);
    }
    close() {
      this.sources.forEach((s) => s.close());
      this.sources.clear();
    }
  }

  /* ---- the client ---------------------------------------------------------------------- */

  class Client {
    /** options: url (WebSocket), transport ("websocket" | "sse"), sseUrl, minDelay, maxDelay,
        offlineAfter (failed attempts before the state says "offline"; retries go on). */
    constructor(options) {
      options = options || {};
      this.url = absolute(options.url || "/ws/pgevents/", true);
      this.sseUrl = absolute(options.sseUrl || "/pgevents/sse/", false);
      this.transportName = options.transport === "sse" ? "sse" : "websocket";
      this.minDelay = options.minDelay || 250;
      this.maxDelay = options.maxDelay || 10000;
      this.offlineAfter = options.offlineAfter || 5;
      this.channels = new Map(); // channel -> {lastEventId, filter, token, state: pending|subscribed|refused}
      this.transport = null;
      this.connected = false;
      this.everLive = false;
      this.pipeline = { state: "ok", lag: null }; // what the server says of its listener
      this.attempt = 0;
      this.state = null;
      this.closed = false;
      this._open();
      window.addEventListener("online", () => { if (!this.connected) this.reconnect(); });
      window.addEventListener("offline", () => this._setState("offline"));
    }

    subscribe(channel, opts) {
      opts = opts || {};
      const sub = this.channels.get(channel) || { lastEventId: null, filter: null, token: null, state: "pending" };
      if (opts.lastEventId !== undefined && opts.lastEventId !== null) {
        // Several regions rendered at different ids: the oldest one wins (patches are idempotent).
        sub.lastEventId = sub.lastEventId === null ? opts.lastEventId : Math.min(sub.lastEventId, opts.lastEventId);
      }
      if (opts.filter !== undefined) sub.filter = opts.filter;
      if (opts.token !== undefined) sub.token = opts.token;
      sub.state = "pending";
      this.channels.set(channel, sub);
      if (this.connected) this.transport.subscribe(channel, sub);
      this._update();
      return this;
    }

    unsubscribe(channel) {
      this.channels.delete(channel);
      if (this.connected) this.transport.unsubscribe(channel);
      this._update();
    }

    lastEventId(channel) {
      const sub = this.channels.get(channel);
      return sub ? sub.lastEventId : null;
    }

    close() {
      this.closed = true;
      clearTimeout(this._timer);
      if (this.transport) this.transport.close();
      this.transport = null;
      this.connected = false;
      this._setState("offline");
    }

    /** Drop the connection and open a new one now (also when the browser comes back online). */
    reconnect() {
      if (this.closed) return;
      clearTimeout(this._timer);
      if (this.transport) this.transport.close();
      this.transport = null;
      this.connected = false;
      this._open();
    }

    _setState(state) {
      const reason = state === "stalled" ? this.pipeline.state : null;
      if (state === this.state && reason === this.reason) return;
      this.state = state;
      this.reason = reason;
      if (state === "live") this.everLive = true;
      const label = reason === "no_listener" ? "no listener" : state;
      document.querySelectorAll("[data-pgevents-status]").forEach((el) => {
        el.textContent = label;
        el.dataset.state = state;
        if (reason) el.dataset.reason = reason;
        else delete el.dataset.reason;
      });
      const refused = [];
      this.channels.forEach((sub, channel) => { if (sub.state === "refused") refused.push(channel); });
      dispatch(null, "pgevents:status", { state: state, reason: reason, refused: refused });
    }

    /** While connected: "live" only when every subscription is accepted and a listener feeds
        the server; otherwise what is missing. */
    _update() {
      if (!this.connected) return;
      let pending = false;
      let refused = false;
      this.channels.forEach((sub) => {
        pending = pending || sub.state === "pending";
        refused = refused || sub.state === "refused";
      });
      if (refused) this._setState("refused");
      else if (pending) this._setState(this.everLive ? "reconnecting" : "connecting");
      else if (this.pipeline.state !== "ok") this._setState("stalled");
      else this._setState("live");
    }

    _pending(channel) {
      const sub = this.channels.get(channel);
      if (sub) sub.state = "pending";
      this._update();
    }

    _open() {
      if (this.closed) return;
      this._setState(this.attempt === 0 ? "connecting" : this._waitingState());
      try {
        if (this.transportName === "sse") {
          this.transport = new SseTransport(this);
          this._opened(this.transport);
        } else {
          this.transport = new SocketTransport(this);
        }
      } catch (err) {
        this._lost(null);
      }
    }

    _waitingState() {
      return navigator.onLine === false || this.attempt >= this.offlineAfter ? "offline" : "reconnecting";
    }

    _opened(transport) {
      if (transport !== this.transport) return;
      this.connected = true;
      this.attempt = 0;
      this.pipeline = { state: "ok", lag: null }; // a server that knows otherwise says so
      this.channels.forEach((sub, channel) => {
        sub.state = "pending";
        transport.subscribe(channel, sub);
      });
      this._update();
    }

    _lost(transport) {
      if (transport !== this.transport || this.closed) return;
      this.transport = null;
      this.connected = false;
      this.channels.forEach((sub) => { sub.state = "pending"; });
      this.attempt = Math.min(this.attempt + 1, 30);
      this._setState(this._waitingState());
      // Capped exponential backoff with jitter: a restarted server is not hit by every page at once.
      const cap = Math.min(this.maxDelay, this.minDelay * Math.pow(2, this.attempt - 1));
      const delay = cap / 2 + (Math.random() * cap) / 2;
      clearTimeout(this._timer);
      this._timer = setTimeout(() => this._open(), delay);
    }

    _receive(text) {
      let msg;
      try {
        msg = JSON.parse(text);
      } catch (err) {
        return;
      }
      const sub = this.channels.get(msg.channel);
      if (msg.type === "event" || msg.type === "leave") {
        if (msg.id !== null && msg.id !== undefined && sub) {
          if (sub.lastEventId !== null && msg.id <= sub.lastEventId) return; // seen already
          sub.lastEventId = msg.id;
        }
        const op = msg.type === "leave" ? "leave" : (msg.op || "notify").toLowerCase();
        dispatch(null, msg.type === "leave" ? "pgevents:leave" : "pgevents:event", msg);
        dispatch(null, "pgevents:" + msg.channel, msg);
        dispatch(null, "pgevents:" + msg.channel + ":" + op, msg);
      } else if (msg.type === "reset") {
        if (sub) sub.lastEventId = msg.last_event_id;
        dispatch(null, "pgevents:reset", msg);
      } else if (msg.type === "subscribed") {
        if (sub && sub.lastEventId === null) sub.lastEventId = msg.last_event_id;
        if (sub) sub.state = "subscribed";
        dispatch(null, "pgevents:subscribed", msg);
        this._update();
      } else if (msg.type === "pipeline") {
        this.pipeline = { state: msg.state || "ok", lag: msg.lag === undefined ? null : msg.lag };
        dispatch(null, "pgevents:pipeline", msg);
        this._update();
      } else if (msg.type === "error") {
        if (sub && sub.state === "pending" && msg.code !== "not_subscribed") {
          sub.state = "refused";
          console.error(
            "pgevents: subscription to " + JSON.stringify(msg.channel) + " refused (" + msg.code + "): " + msg.message
          );
          dispatch(null, "pgevents:refused", msg);
        }
        dispatch(null, "pgevents:error", msg);
        this._update();
      }
    }
  }

  /* ---- declarative regions --------------------------------------------------------------- */

  function fill(template, key) {
    return template.split("{key}").join(encodeURIComponent(String(key)));
  }

  async function fetchHtml(url) {
    const r = await fetch(url, {
      headers: { "X-Requested-With": "pgevents" },
      credentials: "same-origin",
      cache: "no-store",
    });
    if (r.status === 404 || r.status === 410) return null;
    if (!r.ok) throw new Error("fetch " + url + ": " + r.status);
    return r.text();
  }

  function firstElement(html) {
    const t = document.createElement("template");
    t.innerHTML = html.trim(); // our own server's template output, escaped by Django
    return t.content.firstElementChild;
  }

  function compare(a, b) {
    const x = Number(a);
    const y = Number(b);
    if (a !== "" && b !== "" && !isNaN(x) && !isNaN(y)) return x - y;
    return String(a).localeCompare(String(b));
  }

  class Region {
    constructor(el) {
      this.el = el;
      const d = el.dataset;
      this.channel = d.pgeventsChannel;
      this.src = d.pgeventsSrc || null; // null: this page, the element with the same id
      this.rowSrc = d.pgeventsRowSrc || null;
      this.keyName = d.pgeventsKey || "id";
      this.insert = d.pgeventsInsert === "prepend" ? "prepend" : "append";
      this.delay = parseInt(d.pgeventsDebounce || "50", 10);
      this.since = d.pgeventsSince ? parseInt(d.pgeventsSince, 10) : null;
      this.pending = new Map(); // key -> op, gathered during the debounce window
      this.reloadWanted = false;
      this.running = Promise.resolve();
      this._timer = null;
      document.body.addEventListener("pgevents:" + this.channel, (e) => this.onEvent(e.detail));
      document.body.addEventListener("pgevents:reset", (e) => {
        if (e.detail.channel === this.channel) this.reload();
      });
    }

    onEvent(msg) {
      const row = msg.row || msg.old;
      const key = row ? row[this.keyName] : undefined;
      const op = msg.type === "leave" ? "DELETE" : msg.op; // a row leaving a filter leaves the list
      const canPatch = this.rowSrc && op && op !== "TRUNCATE" && row;
      if (canPatch && key !== undefined && key !== null) {
        this.pending.set(String(key), op);
      } else if (canPatch && this._matching(row)) {
        // A referenced row changed ({"author_id": 7}): re-render the rows that show it.
        this._matching(row).forEach((k) => { if (!this.pending.has(k)) this.pending.set(k, "UPDATE"); });
      } else {
        this.reloadWanted = true; // TRUNCATE, a plain NOTIFY, rows that do not say what they show
      }
      this._schedule();
    }

    /** Keys of the rows whose data-pgevents-fields match every field of `row`; null when no
        row declares those fields (then nothing says which rows are concerned: reload). */
    _matching(row) {
      const keys = [];
      let declared = false; // some row says it shows these fields
      for (const child of this.el.children) {
        if (child.dataset.pgeventsFields === undefined) continue;
        let fields;
        try {
          fields = JSON.parse(child.dataset.pgeventsFields);
        } catch (err) {
          return null;
        }
        if (!Object.keys(row).every((f) => f in fields)) continue;
        declared = true;
        if (Object.keys(row).every((f) => String(fields[f]) === String(row[f]))) keys.push(child.dataset.pgeventsRow);
      }
      return declared ? keys : null;
    }

    /** Reload the whole region (debounced), e.g. after `reset`. */
    reload() {
      this.reloadWanted = true;
      this._schedule();
    }

    _schedule() {
      clearTimeout(this._timer);
      this._timer = setTimeout(() => {
        // One flush at a time, in event order: an older fetch never overwrites a newer one.
        this.running = this.running.then(() => this._flush()).catch((err) => {
          dispatch(this.el, "pgevents:error", { code: "region", message: String(err) });
        });
      }, this.delay);
    }

    async _flush() {
      const pending = this.pending;
      const reload = this.reloadWanted || pending.size > MAX_PATCHES;
      this.pending = new Map();
      this.reloadWanted = false;
      if (reload) {
        await this._reloadNow();
        return;
      }
      for (const [key, op] of pending) {
        try {
          await this._patch(op, key);
        } catch (err) {
          await this._reloadNow();
          return;
        }
      }
    }

    _find(key) {
      for (const child of this.el.children) {
        if (child.dataset.pgeventsRow === key) return child;
      }
      return null;
    }

    async _patch(op, key) {
      const current = this._find(key);
      const html = op === "DELETE" ? null : await fetchHtml(fill(this.rowSrc, key));
      const node = html === null ? null : firstElement(html);
      if (!node) {
        if (current) current.remove();
      } else if (current) {
        current.replaceWith(node);
        if (node.dataset.pgeventsSort !== undefined && current.dataset.pgeventsSort !== node.dataset.pgeventsSort) {
          node.remove();
          this._place(node);
        }
      } else {
        this._place(node);
      }
      dispatch(this.el, "pgevents:patched", { op: op, key: key });
    }

    _place(node) {
      const sort = node.dataset.pgeventsSort;
      if (sort !== undefined) {
        for (const child of this.el.children) {
          if (child.dataset.pgeventsSort !== undefined && compare(child.dataset.pgeventsSort, sort) > 0) {
            this.el.insertBefore(node, child);
            return;
          }
        }
      }
      if (this.insert === "prepend") this.el.prepend(node);
      else this.el.appendChild(node);
    }

    async _reloadNow() {
      let html;
      if (this.src) {
        html = await fetchHtml(this.src);
      } else {
        if (!this.el.id) throw new Error("a region without src needs an id to reload from the page");
        const page = await fetchHtml(location.href);
        const doc = page === null ? null : new DOMParser().parseFromString(page, "text/html");
        const fresh = doc && this.el.id ? doc.getElementById(this.el.id) : null;
        html = fresh ? fresh.innerHTML : null;
      }
      if (html === null) return;
      this.el.innerHTML = html; // our own server's escaped template output
      dispatch(this.el, "pgevents:patched", { op: "reload", key: null });
    }
  }

  function boot() {
    const script = document.querySelector("script[data-pgevents-url]");
    if (!script || global.PgEvents.client) return;
    const d = script.dataset;
    const client = new Client({ url: d.pgeventsUrl, sseUrl: d.pgeventsSseUrl, transport: d.pgeventsTransport });
    global.PgEvents.client = client;
    document.querySelectorAll("[data-pgevents-channel]").forEach((el) => {
      const region = new Region(el);
      global.PgEvents.regions.push(region);
      const opts = { lastEventId: region.since };
      if (el.dataset.pgeventsToken) opts.token = el.dataset.pgeventsToken;
      if (el.dataset.pgeventsFilter) opts.filter = JSON.parse(el.dataset.pgeventsFilter);
      client.subscribe(region.channel, opts);
    });
    (d.pgeventsChannels || "").split(",").filter(Boolean).forEach((c) => client.subscribe(c));
  }

  global.PgEvents = {
    Client: Client,
    Region: Region,
    client: null,
    regions: [],
    connect: (options) => new Client(options),
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
  else boot();
})(window);
