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
 *   pgevents:leave            a row stopped matching a filter (also pgevents:<channel>,
 *                             pgevents:<channel>:leave); detail.row = the old row
 *   pgevents:reset            history was lost; regions reload themselves
 *   pgevents:status           detail.state = "connecting" | "live" | "reconnecting" | "offline"
 *   pgevents:error            detail = the server's error message
 *
 * Declarative regions (no markup in JS; the server renders every fragment):
 *   <tbody data-pgevents-channel="people" data-pgevents-src="/people/rows/">      reload, debounced
 *   <tbody data-pgevents-channel="people" data-pgevents-row-src="/people/row/{key}/"
 *          data-pgevents-key="pk" data-pgevents-row-id="person-{key}">             patch one row
 *   <span data-pgevents-status></span>                                            connection state
 *   data-pgevents-token="{% pgevents_signed 'people' %}"   signed channel token (pgevents_signing)
 *   data-pgevents-filter='{"status": "open"}'              row filter (JSON)
 */
(function (global) {
  "use strict";

  function dispatch(name, detail) {
    const target = document.body || document;
    target.dispatchEvent(new CustomEvent(name, { detail: detail, bubbles: true }));
  }

  function defaultUrl(path) {
    const proto = location.protocol === "https:" ? "wss:" : "ws:";
    return proto + "//" + location.host + path;
  }

  class Client {
    constructor(options) {
      options = options || {};
      this.url = options.url || defaultUrl("/ws/pgevents/");
      this.minDelay = options.minDelay || 250;
      this.maxDelay = options.maxDelay || 10000;
      this.channels = new Map(); // channel -> {lastEventId, filter}
      this.ws = null;
      this.attempt = 0;
      this.state = "offline";
      this.closed = false;
      this._open();
      window.addEventListener("online", () => this._reconnectNow());
    }

    subscribe(channel, opts) {
      opts = opts || {};
      const known = this.channels.get(channel);
      const sub = known || { lastEventId: null, filter: null, token: null };
      if (opts.lastEventId !== undefined) sub.lastEventId = opts.lastEventId;
      if (opts.filter !== undefined) sub.filter = opts.filter;
      if (opts.token !== undefined) sub.token = opts.token;
      this.channels.set(channel, sub);
      this._sendSubscribe(channel, sub);
      return this;
    }

    unsubscribe(channel) {
      this.channels.delete(channel);
      this._send({ type: "unsubscribe", channel: channel });
    }

    close() {
      this.closed = true;
      if (this.ws) this.ws.close();
      this._setState("offline");
    }

    lastEventId(channel) {
      const sub = this.channels.get(channel);
      return sub ? sub.lastEventId : null;
    }

    _sendSubscribe(channel, sub) {
      const msg = { type: "subscribe", channel: channel };
      if (sub.lastEventId !== null) msg.last_event_id = sub.lastEventId;
      if (sub.filter) msg.filter = sub.filter;
      if (sub.token) msg.token = sub.token;
      this._send(msg);
    }

    _send(msg) {
      if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(msg));
    }

    _setState(state) {
      if (state === this.state) return;
      this.state = state;
      dispatch("pgevents:status", { state: state });
      document.querySelectorAll("[data-pgevents-status]").forEach((el) => {
        el.textContent = state;
        el.dataset.state = state;
      });
    }

    _open() {
      if (this.closed) return;
      this._setState(this.attempt ? "reconnecting" : "connecting");
      let ws;
      try {
        ws = new WebSocket(this.url);
      } catch (err) {
        this._schedule();
        return;
      }
      this.ws = ws;
      ws.onopen = () => {
        this.attempt = 0;
        this._setState("live");
        this.channels.forEach((sub, channel) => this._sendSubscribe(channel, sub));
      };
      ws.onmessage = (m) => this._receive(m.data);
      ws.onclose = () => {
        if (this.ws === ws) this.ws = null;
        if (!this.closed) this._schedule();
      };
      ws.onerror = () => {}; // onclose follows
    }

    _schedule() {
      this._setState(navigator.onLine === false ? "offline" : "reconnecting");
      const cap = Math.min(this.maxDelay, this.minDelay * Math.pow(2, this.attempt));
      this.attempt = Math.min(this.attempt + 1, 20);
      const delay = cap / 2 + Math.random() * cap / 2; // jitter: no thundering herd
      clearTimeout(this._timer);
      this._timer = setTimeout(() => this._open(), delay);
    }

    _reconnectNow() {
      if (!this.ws && !this.closed) {
        clearTimeout(this._timer);
        this._open();
      }
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
          if (sub.lastEventId !== null && msg.id <= sub.lastEventId) return; // duplicate
          sub.lastEventId = msg.id;
        }
        const op = msg.type === "leave" ? "leave" : (msg.op || "notify").toLowerCase();
        dispatch(msg.type === "leave" ? "pgevents:leave" : "pgevents:event", msg);
        dispatch("pgevents:" + msg.channel, msg);
        dispatch("pgevents:" + msg.channel + ":" + op, msg);
      } else if (msg.type === "reset") {
        if (sub) sub.lastEventId = msg.last_event_id;
        dispatch("pgevents:reset", msg);
      } else if (msg.type === "error") {
        dispatch("pgevents:error", msg);
      } else if (msg.type === "subscribed") {
        dispatch("pgevents:subscribed", msg);
      }
    }
  }

  /* ---- declarative regions ---------------------------------------------------------- */

  function fill(template, key) {
    return template.split("{key}").join(encodeURIComponent(String(key)));
  }

  async function fetchHtml(url) {
    const r = await fetch(url, { headers: { "X-Requested-With": "pgevents" }, credentials: "same-origin" });
    if (r.status === 404) return null;
    if (!r.ok) throw new Error("fetch " + url + ": " + r.status);
    return r.text();
  }

  function fragment(html) {
    const t = document.createElement("template");
    t.innerHTML = html.trim();
    return t.content.firstElementChild;
  }

  class Region {
    constructor(el) {
      this.el = el;
      this.channel = el.dataset.pgeventsChannel;
      this.src = el.dataset.pgeventsSrc || null;
      this.rowSrc = el.dataset.pgeventsRowSrc || null;
      this.keyName = el.dataset.pgeventsKey || "id";
      this.rowId = el.dataset.pgeventsRowId || null;
      this.delay = parseInt(el.dataset.pgeventsDebounce || "50", 10);
      this._timer = null;
      document.body.addEventListener("pgevents:" + this.channel, (e) => this.onEvent(e.detail));
      document.body.addEventListener("pgevents:reset", (e) => {
        if (e.detail.channel === this.channel) this.reload();
      });
    }

    onEvent(msg) {
      const row = msg.row || msg.old;
      const op = msg.type === "leave" ? "DELETE" : msg.op; // a row leaving a filter leaves the list
      if (this.rowSrc && this.rowId && row && row[this.keyName] !== undefined && op !== "TRUNCATE") {
        this.patch(op, row[this.keyName]).catch(() => this.reload());
      } else {
        this.reload();
      }
    }

    async patch(op, key) {
      const id = fill(this.rowId, key);
      const current = document.getElementById(decodeURIComponent(id));
      if (op === "DELETE") {
        if (current) current.remove();
        this.el.dispatchEvent(new CustomEvent("pgevents:patched", { detail: { op: op, key: key }, bubbles: true }));
        return;
      }
      const html = await fetchHtml(fill(this.rowSrc, key));
      if (html === null) {
        if (current) current.remove();
      } else {
        const node = fragment(html);
        if (current) current.replaceWith(node);
        else this.el.appendChild(node);
      }
      this.el.dispatchEvent(new CustomEvent("pgevents:patched", { detail: { op: op, key: key }, bubbles: true }));
    }

    reload() {
      if (!this.src) return;
      clearTimeout(this._timer);
      this._timer = setTimeout(async () => {
        const html = await fetchHtml(this.src);
        if (html !== null) {
          this.el.innerHTML = html; // our own server's escaped template output
          this.el.dispatchEvent(new CustomEvent("pgevents:patched", { detail: { op: "reload" }, bubbles: true }));
        }
      }, this.delay);
    }
  }

  function boot() {
    const script = document.querySelector("script[data-pgevents-url]");
    if (!script || global.PgEvents.client) return;
    const client = new Client({ url: defaultUrl(script.dataset.pgeventsUrl) });
    global.PgEvents.client = client;
    document.querySelectorAll("[data-pgevents-channel]").forEach((el) => {
      const region = new Region(el);
      const opts = {};
      if (el.dataset.pgeventsToken) opts.token = el.dataset.pgeventsToken;
      if (el.dataset.pgeventsFilter) opts.filter = JSON.parse(el.dataset.pgeventsFilter);
      client.subscribe(region.channel, opts);
    });
    (script.dataset.pgeventsChannels || "").split(",").filter(Boolean).forEach((c) => client.subscribe(c));
  }

  global.PgEvents = {
    Client: Client,
    Region: Region,
    client: null,
    connect: (options) => new Client(options),
  };
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", boot);
  else boot();
})(window);
