/* pgevents/regions.js: declarative regions. An element with data-pgevents-channel follows
 * its channel; the server renders every fragment (no markup in JS). What an event means for
 * a region is decided in logic.js (regionDecision); this module fetches and places HTML.
 */
import { compare, fill, parseRegion, regionDecision, MAX_PATCHES } from "./logic.js";
import { dispatch } from "./client.js";

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

export class Region {
  /** Throws RegionConfigError when the element's attributes cannot be understood. */
  constructor(el) {
    this.el = el;
    Object.assign(this, parseRegion(el.dataset));
    this.pending = new Map(); // key -> op, gathered during the debounce window
    this.reloadWanted = false;
    this.running = Promise.resolve();
    this._timer = null;
    document.body.addEventListener("pgevents:" + this.channel, (e) => this.onEvent(e.detail));
    document.body.addEventListener("pgevents:reset", (e) => {
      if (e.detail.channel === this.channel) this.reload();
    });
  }

  _rows() {
    return Array.from(this.el.children, (c) => ({ key: c.dataset.pgeventsRow, fields: c.dataset.pgeventsFields }));
  }

  onEvent(msg) {
    const decision = regionDecision(this, msg, this._rows());
    if (decision.patch !== undefined) {
      this.pending.set(decision.patch, decision.op);
    } else if (decision.rows) {
      // A referenced row changed ({"author_id": 7}): re-render the rows that show it.
      decision.rows.forEach((k) => {
        if (!this.pending.has(k)) this.pending.set(k, "UPDATE");
      });
    } else {
      this.reloadWanted = true;
    }
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
