/* pgevents/client.js: one connection to the server, its subscriptions, and what the server
 * says about them. The decisions (backoff, close codes, refusals, duplicates) are in
 * logic.js; this module applies them to a WebSocket or EventSources and tells the page
 * through DOM events and the [data-pgevents-status] indicator.
 */
import { accept, addRegion, backoffDelay, closeAction, opName, resumePoint, sseRefusal, RATE_LIMITED_DELAY } from "./logic.js";

export function dispatch(target, name, detail) {
  target = target || document.body || document;
  target.dispatchEvent(new CustomEvent(name, { detail: detail, bubbles: true }));
}

function absolute(path, ws) {
  const url = new URL(path, location.href);
  if (ws && url.protocol.indexOf("http") === 0) url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  return url.toString();
}

/* ---- transports: one object per connection attempt, reporting to the client ------------- */

class SocketTransport {
  constructor(client) {
    this.client = client;
    this.ws = new WebSocket(client.url);
    this.ws.onopen = () => client._opened(this);
    this.ws.onmessage = (m) => client._receive(m.data);
    this.ws.onclose = (e) => client._closed(this, e.code);
    this.ws.onerror = () => {}; // onclose follows
  }
  subscribe(channel, sub) {
    const msg = { type: "subscribe", channel: channel };
    if (sub.lastEventId !== null) msg.last_event_id = sub.lastEventId;
    if (sub.filter) msg.filter = sub.filter;
    if (sub.token) msg.token = sub.token;
    if (sub.regions.length) msg.regions = sub.regions;
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

/* Server-Sent Events: one EventSource per channel. The browser's own retry resends the last
   id it saw (Last-Event-ID). A stream refused with 400/403/404 is not retried. */
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
    if (sub.regions.length) query.push("regions=" + encodeURIComponent(sub.regions.join(",")));
    if (query.length) url += "?" + query.join("&");
    const source = new EventSource(url, { withCredentials: true });
    let opened = false;
    this.sources.set(channel, source);
    source.onmessage = (m) => this.client._receive(m.data);
    source.addEventListener("control", (m) => this.client._receive(m.data));
    source.onopen = () => {
      opened = true;
    };
    source.onerror = () => {
      if (this.sources.get(channel) !== source) return;
      if (source.readyState !== EventSource.CLOSED) {
        this.client._pending(channel); // the browser retries; "subscribed" comes again
      } else if (!opened) {
        this._refusedOrLost(channel, url); // the server answered with an error status
      } else {
        this.close();
        this.client._closed(this, null);
      }
    };
  }
  /* An EventSource hides the response of a refusal: ask for it once, to learn its status and why. */
  _refusedOrLost(channel, url) {
    fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(async (r) => {
        const code = r.ok ? null : sseRefusal(r.status);
        if (code === null) {
          if (r.body) r.body.cancel(); // a stream after all: a passing failure
          throw new Error("not a refusal");
        }
        let msg = null;
        try {
          msg = await r.json();
        } catch (err) {
          msg = null; // a proxy's or Django's own error page: the status says enough
        }
        if (!msg || msg.type !== "error") msg = { type: "error", code: code, message: "HTTP " + r.status + " from " + url };
        this.unsubscribe(channel);
        this.client._receive(JSON.stringify(Object.assign({ channel: channel }, msg)));
      })
      .catch(() => {
        if (this.client.transport !== this) return;
        this.close();
        this.client._closed(this, null);
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

/* ---- the client ---------------------------------------------------------------------------- */

export class Client {
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
    this.lastError = null; // the last error naming a channel: a refusing close code is about it
    this._open();
    window.addEventListener("online", () => {
      if (!this.connected) this.reconnect();
    });
    window.addEventListener("offline", () => this._setState("offline"));
  }

  subscribe(channel, opts) {
    opts = opts || {};
    const sub = this.channels.get(channel) || { lastEventId: null, filter: null, token: null, regions: [], state: "pending" };
    sub.lastEventId = resumePoint(sub.lastEventId, opts.lastEventId);
    if (opts.filter !== undefined) sub.filter = opts.filter;
    if (opts.token !== undefined) sub.token = opts.token;
    if (opts.region) addRegion(sub.regions, opts.region); // a shared region: the server sends its HTML
    sub.state = "pending";
    this.channels.set(channel, sub);
    if (this.connected) this.transport.subscribe(channel, sub);
    else if (!this.transport && !this._timer && !this.closed) this._open(); // everything had been refused
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
    this._stop();
    this._setState("offline");
  }

  /** Drop the connection and open a new one now (also when the browser comes back online). */
  reconnect() {
    if (this.closed) return;
    clearTimeout(this._timer);
    this._timer = null;
    if (this.transport) this.transport.close();
    this.transport = null;
    this.connected = false;
    this._open();
  }

  _stop() {
    this.closed = true;
    clearTimeout(this._timer);
    this._timer = null;
    if (this.transport) this.transport.close();
    this.transport = null;
    this.connected = false;
  }

  _setState(state) {
    const reason = state === "stalled" ? this.pipeline.state : null;
    if (state === this.state && reason === this.reason) return;
    this.state = state;
    this.reason = reason;
    if (state === "live") this.everLive = true;
    const label = reason === "no_listener" ? "no listener" : state === "ended" ? "session ended" : state;
    document.querySelectorAll("[data-pgevents-status]").forEach((el) => {
      el.textContent = label;
      el.dataset.state = state;
      if (reason) el.dataset.reason = reason;
      else delete el.dataset.reason;
    });
    const refused = [];
    this.channels.forEach((sub, channel) => {
      if (sub.state === "refused") refused.push(channel);
    });
    dispatch(null, "pgevents:status", { state: state, reason: reason, refused: refused });
  }

  /** While connected: "live" only when every subscription is accepted and a listener feeds
      the server; otherwise what is missing. */
  _update() {
    if (this.closed) return;
    let pending = false;
    let refused = false;
    this.channels.forEach((sub) => {
      pending = pending || sub.state === "pending";
      refused = refused || sub.state === "refused";
    });
    if (!this.connected) {
      if (refused && !pending) this._setState("refused"); // nothing left to connect for
      return;
    }
    if (refused) this._setState("refused");
    else if (pending) this._setState(this.everLive ? "reconnecting" : "connecting");
    else if (this.pipeline.state !== "ok") this._setState("stalled");
    else this._setState("live");
  }

  _pending(channel) {
    const sub = this.channels.get(channel);
    if (sub && sub.state !== "refused") sub.state = "pending";
    this._update();
  }

  /** Subscriptions worth asking for: a refused one would be refused again. */
  _wanted() {
    let n = 0;
    this.channels.forEach((sub) => {
      if (sub.state !== "refused") n++;
    });
    return n;
  }

  _open() {
    this._timer = null;
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
      this._closed(this.transport, null);
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
      if (sub.state === "refused") return;
      sub.state = "pending";
      transport.subscribe(channel, sub);
    });
    this._update();
  }

  /** The connection ended with WebSocket close code `code` (null: no code, e.g. SSE). */
  _closed(transport, code) {
    if (transport !== this.transport || this.closed) return;
    const action = code === null ? "retry" : closeAction(code);
    if (action === "ended") {
      this._ended({ code: "session_ended", message: "the session has ended; log in again" });
      return;
    }
    if (action === "refuse") {
      // The error naming the refused subscription came just before the close; without one,
      // nothing says which subscription was at fault, and every pending one is.
      const named = this.lastError && this.channels.get(this.lastError.channel);
      if (!named) {
        this.channels.forEach((sub, channel) => {
          if (sub.state === "pending") this._refuse(channel, { code: "closed_" + code, message: "closed with " + code });
        });
      }
    }
    this.transport = null;
    this.connected = false;
    this.lastError = null;
    this.channels.forEach((sub) => {
      if (sub.state !== "refused") sub.state = "pending";
    });
    if (this._wanted() === 0 && this.channels.size > 0) {
      this._update(); // every subscription refused: nothing to reconnect for
      return;
    }
    let delay;
    if (action === "resume") {
      delay = backoffDelay(1, this); // not a failure: back at once, after the last id seen
    } else {
      this.attempt = Math.min(this.attempt + 1, 30);
      delay = backoffDelay(this.attempt, { minDelay: this.minDelay, maxDelay: this.maxDelay, floor: action === "slow" ? RATE_LIMITED_DELAY : 0 });
    }
    this._setState(this._waitingState());
    clearTimeout(this._timer);
    this._timer = setTimeout(() => this._open(), delay);
  }

  /** The server ended the session (logout, expiry): stop, and never come back as anonymous. */
  _ended(msg) {
    if (this.closed) return;
    this._stop();
    this._setState("ended");
    console.error("pgevents: " + (msg.message || "the session has ended") + "; live updates stopped");
    dispatch(null, "pgevents:ended", msg);
  }

  _refuse(channel, msg) {
    const sub = this.channels.get(channel);
    if (!sub || sub.state === "refused") return;
    sub.state = "refused";
    console.error("pgevents: subscription to " + JSON.stringify(channel) + " refused (" + msg.code + "): " + msg.message);
    dispatch(null, "pgevents:refused", Object.assign({ channel: channel }, msg));
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
      if (!accept(sub, msg)) return; // seen already
      const op = opName(msg);
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
      dispatch(null, "pgevents:error", msg);
      if (msg.code === "session_ended") {
        this._ended(msg);
        return;
      }
      if (sub) this.lastError = msg;
      if (sub && sub.state === "pending" && msg.code !== "not_subscribed") this._refuse(msg.channel, msg);
      this._update();
    }
  }
}
