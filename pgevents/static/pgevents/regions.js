/* pgevents/regions.js: declarative regions. An element with data-pgevents-channel follows
 * its channel; the server renders every fragment (no markup in JS). What an event means for
 * a region is decided in logic.js (regionDecision); this module fetches and places HTML.
 */
import { compare, fill, parseRegion, regionDecision, sharedDecision, MAX_PATCHES } from "./logic.js";
import { dispatch } from "./client.js";
import { Fetcher } from "./fetcher.js";

/** Regions made without a fetcher fetch each URL themselves. */
const DIRECT = new Fetcher(null, 0);

function firstElement(html) {
  const t = document.createElement("template");
  t.innerHTML = html.trim(); // our own server's template output, escaped by Django
  return t.content.firstElementChild;
}

export class Region {
  /** Throws RegionConfigError when the element's attributes cannot be understood. `fetcher`
      (fetcher.js) is the page's: per-user regions' fetches share its coalesced requests. */
  constructor(el, fetcher) {
    this.el = el;
    this.fetcher = fetcher || DIRECT;
    Object.assign(this, parseRegion(el.dataset));
    this.pending = new Map(); // key -> {op, html?}, gathered during the debounce window
    this.regionHtml = null; // the region's inner HTML as the server sent it (shared regions)
    this.reloadWanted = false;
    this.running = Promise.resolve();
    this._timer = null;
    document.body.addEventListener("pgevents:" + this.channel, (e) => this.onEvent(e.detail));
    document.body.addEventListener("pgevents:reset", (e) => {
      if (e.detail.channel !== this.channel) return;
      const shared = sharedDecision(this, e.detail);
      if (shared && shared.region !== undefined) this._takeRegion(shared.region);
      else this.reload();
    });
  }

  _rows() {
    return Array.from(this.el.children, (c) => ({ key: c.dataset.pgeventsRow, fields: c.dataset.pgeventsFields }));
  }

  onEvent(msg) {
    const shared = sharedDecision(this, msg);
    if (shared) {
      if (shared.region !== undefined) this._takeRegion(shared.region);
      else if (shared.patch !== undefined) {
        this.pending.delete(shared.patch); // re-inserted: the newest goes last
        this.pending.set(shared.patch, { op: shared.html === null ? "DELETE" : msg.op || "UPDATE", html: shared.html });
        this._schedule();
      }
      return; // skip: a later event of the burst brings the region
    }
    const decision = regionDecision(this, msg, this._rows());
    if (decision.patch !== undefined) {
      this.pending.set(decision.patch, { op: decision.op });
    } else if (decision.rows) {
      // A referenced row changed ({"author_id": 7}): re-render the rows that show it.
      decision.rows.forEach((k) => {
        if (!this.pending.has(k)) this.pending.set(k, { op: "UPDATE" });
      });
    } else {
      this.reloadWanted = true;
    }
    this._schedule();
  }

  /** The server sent the whole region: it replaces what came before; later events patch it. */
  _takeRegion(html) {
    this.regionHtml = html;
    this.pending = new Map();
    this.reloadWanted = false;
    this._schedule();
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
      this.running = this.running
        .then(() => this._flush())
        .catch((err) => {
          dispatch(this.el, "pgevents:error", { code: "region", message: String(err) });
        });
    }, this.delay);
  }

  async _flush() {
    const pending = this.pending;
    const regionHtml = this.regionHtml;
    let fetches = 0;
    pending.forEach((p) => {
      if (p.html === undefined && p.op !== "DELETE") fetches++;
    });
    const reload = this.reloadWanted || fetches > MAX_PATCHES;
    this.pending = new Map();
    this.regionHtml = null;
    this.reloadWanted = false;
    if (reload) {
      await this._reloadNow();
      return;
    }
    if (regionHtml !== null) this._fill(regionHtml);
    // Every fetch starts before the first is awaited: the page's fetcher asks for all at once.
    const planned = [];
    for (const [key, p] of pending) {
      const html =
        p.html !== undefined || p.op === "DELETE"
          ? Promise.resolve(p.html === undefined ? null : p.html)
          : this.fetcher.get(fill(this.rowSrc, key));
      html.catch(() => {}); // handled below, in order
      planned.push([key, p.op, html]);
    }
    for (const [key, op, html] of planned) {
      try {
        this._put(op, key, await html);
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

  /** Put row `key` as `html` shows it (null: the row is gone). */
  _put(op, key, html) {
    const current = this._find(key);
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
      html = await this.fetcher.get(this.src);
    } else {
      if (!this.el.id) throw new Error("a region without src needs an id to reload from the page");
      const page = await this.fetcher.get(location.pathname + location.search);
      const doc = page === null ? null : new DOMParser().parseFromString(page, "text/html");
      const fresh = doc && this.el.id ? doc.getElementById(this.el.id) : null;
      html = fresh ? fresh.innerHTML : null;
    }
    if (html === null) return;
    this._fill(html);
  }

  _fill(html) {
    this.el.innerHTML = html; // our own server's escaped template output
    dispatch(this.el, "pgevents:patched", { op: "reload", key: null });
  }
}
