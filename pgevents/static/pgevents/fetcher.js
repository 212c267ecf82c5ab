/* pgevents/fetcher.js: one request per page for what its per-user regions need.
 *
 * Regions ask for URLs (a row, the region's source, the page); the fetcher gathers them for a
 * short window, jittered at random so that many tabs seeing one change do not ask at the
 * same instant, and asks the server's fragments endpoint for all of them at once (at most
 * MAX_URLS per request). Without that endpoint it fetches each URL itself, as before.
 */

/** Most URLs one fragments request carries (the server's limit). */
export const MAX_URLS = 32;
/** Shortest gathering window (ms): regions of one channel flush a moment apart. */
export const MIN_WINDOW = 20;

const HEADERS = { "X-Requested-With": "pgevents" };

/** A URL's HTML from a response status: text, null when gone (404/410), or an error. */
export function outcome(url, status, html) {
  if (status === 404 || status === 410) return null;
  if (status < 200 || status >= 300) throw new Error("fetch " + url + ": " + status);
  return html;
}

export class Fetcher {
  /** endpoint: the fragments URL ("" or null: fetch one by one); jitter: ms of random delay. */
  constructor(endpoint, jitter, env = {}) {
    this.endpoint = endpoint || null;
    this.jitter = Math.max(0, jitter || 0);
    this.fetch = env.fetch || ((...args) => fetch(...args));
    this.random = env.random || Math.random;
    this.waiting = new Map(); // url -> [{resolve, reject}]
    this.timer = null;
    this.requests = 0; // HTTP requests made (for tests and curiosity)
  }

  /** The HTML of `url` (null: gone), from the next coalesced request. */
  get(url) {
    if (!this.endpoint) return this._one(url);
    return new Promise((resolve, reject) => {
      if (!this.waiting.has(url)) this.waiting.set(url, []);
      this.waiting.get(url).push({ resolve, reject });
      if (this.timer === null) this.timer = setTimeout(() => this._flush(), MIN_WINDOW + this.random() * this.jitter);
    });
  }

  async _one(url) {
    this.requests++;
    const r = await this.fetch(url, { headers: HEADERS, credentials: "same-origin", cache: "no-store" });
    return outcome(url, r.status, r.status >= 200 && r.status < 300 ? await r.text() : "");
  }

  _flush() {
    this.timer = null;
    const waiting = this.waiting;
    this.waiting = new Map();
    const urls = [...waiting.keys()];
    for (let i = 0; i < urls.length; i += MAX_URLS) this._ask(urls.slice(i, i + MAX_URLS), waiting);
  }

  async _ask(urls, waiting) {
    const settle = (url, fn) => waiting.get(url).forEach(fn);
    try {
      this.requests++;
      const query = urls.map((u) => "u=" + encodeURIComponent(u)).join("&");
      const r = await this.fetch(this.endpoint + "?" + query, { headers: HEADERS, credentials: "same-origin", cache: "no-store" });
      if (!r.ok) throw new Error("fetch " + this.endpoint + ": " + r.status);
      const body = await r.json();
      const byUrl = new Map(body.fragments.map((f) => [f.url, f]));
      for (const url of urls) {
        const f = byUrl.get(url);
        try {
          const html = f ? outcome(url, f.status, f.html) : null;
          settle(url, (w) => w.resolve(html));
        } catch (err) {
          settle(url, (w) => w.reject(err));
        }
      }
    } catch (err) {
      for (const url of urls) settle(url, (w) => w.reject(err));
    }
  }
}
