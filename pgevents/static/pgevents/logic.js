/* pgevents/logic.js: the client's decisions, with no browser API in sight.
 *
 * Backoff, what a close code or an HTTP refusal means, how a region's data-pgevents-*
 * attributes are read, which events are new and which rows an event concerns: plain
 * functions, so Node's built-in test runner checks them (tests/js/) without a browser.
 */

/** Most row patches one burst may cost; a bigger burst reloads the region once. */
export const MAX_PATCHES = 20;

/** Reconnect delays: 250 ms doubling up to 10 s, each randomised between half and all of it. */
export const BACKOFF = { minDelay: 250, maxDelay: 10000 };

/** After 4429 (too many messages) the next attempt waits at least this long. */
export const RATE_LIMITED_DELAY = 5000;

/**
 * The delay before reconnect attempt `attempt` (1, 2, …): capped exponential backoff with
 * jitter, so a restarted server is not hit by every page at once. `random` is injectable.
 */
export function backoffDelay(attempt, options = {}, random = Math.random) {
  const min = options.minDelay || BACKOFF.minDelay;
  const max = options.maxDelay || BACKOFF.maxDelay;
  const floor = options.floor || 0;
  const n = Math.max(1, Math.min(attempt, 30));
  const cap = Math.max(floor, Math.min(max, min * Math.pow(2, n - 1)));
  return cap / 2 + (random() * cap) / 2;
}

/**
 * What to do when the WebSocket closes with `code` (see docs/security.md, "Close codes").
 *   ended   — the session ended (4401): stop; never reconnect as someone else (anonymous)
 *   refuse  — the server refused the subscription it names (4400, 4403, 4404, 4413): the
 *             same request would be refused again, so that subscription is not retried
 *   slow    — too many messages (4429): reconnect after a longer pause
 *   resume  — too slow a reader (4408): reconnect now, resuming after the last id seen
 *   retry   — anything else (network, server restart, 1006, 4503): reconnect with backoff
 */
export function closeAction(code) {
  switch (code) {
    case 4401:
      return "ended";
    case 4400:
    case 4403:
    case 4404:
    case 4413:
      return "refuse";
    case 4429:
      return "slow";
    case 4408:
      return "resume";
    default:
      return "retry";
  }
}

/**
 * An SSE stream answered with an HTTP error status instead of a stream: 400, 403 and 404
 * are refusals (asking again gets the same answer), anything else (502, 503, a proxy's
 * error page) is a failure to retry with backoff.
 */
export function sseRefusal(status) {
  if (status === 400) return "bad_request";
  if (status === 403) return "forbidden";
  if (status === 404) return "unknown_channel";
  return null;
}

/** A region whose data-pgevents-* attributes cannot be understood. */
export class RegionConfigError extends Error {
  constructor(message) {
    super(message);
    this.name = "RegionConfigError";
  }
}

function integer(value, name, min) {
  if (value === undefined || value === "") return null;
  if (!/^-?\d+$/.test(String(value).trim())) throw new RegionConfigError(name + " must be an integer, got " + JSON.stringify(value));
  const n = parseInt(value, 10);
  if (n < min) throw new RegionConfigError(name + " must be at least " + min + ", got " + n);
  return n;
}

/**
 * A region's settings from its element's `dataset` (camel-cased data-pgevents-* names).
 * Throws RegionConfigError naming the attribute at fault: one malformed region must not
 * keep the others from binding.
 */
export function parseRegion(d) {
  const channel = d.pgeventsChannel;
  if (!channel || typeof channel !== "string") throw new RegionConfigError("data-pgevents-channel is empty");
  const insert = d.pgeventsInsert || "append";
  if (insert !== "append" && insert !== "prepend") {
    throw new RegionConfigError("data-pgevents-insert must be append or prepend, got " + JSON.stringify(insert));
  }
  let filter = null;
  if (d.pgeventsFilter) {
    try {
      filter = JSON.parse(d.pgeventsFilter);
    } catch (err) {
      throw new RegionConfigError("data-pgevents-filter is not JSON: " + err.message);
    }
    if (filter === null || typeof filter !== "object" || Array.isArray(filter)) {
      throw new RegionConfigError("data-pgevents-filter must be a JSON object");
    }
  }
  if (d.pgeventsShared !== undefined && !d.pgeventsRegion) {
    throw new RegionConfigError("data-pgevents-shared needs data-pgevents-region (the region's id)");
  }
  if (d.pgeventsRowSrc !== undefined && d.pgeventsRowSrc.indexOf("{key}") < 0) {
    throw new RegionConfigError("data-pgevents-row-src has no {key} placeholder: " + JSON.stringify(d.pgeventsRowSrc));
  }
  const debounce = integer(d.pgeventsDebounce, "data-pgevents-debounce", 0);
  return {
    channel: channel,
    src: d.pgeventsSrc || null, // null: this page, the element with the same id
    rowSrc: d.pgeventsRowSrc || null,
    keyName: d.pgeventsKey || "id",
    insert: insert,
    delay: debounce === null ? 50 : debounce,
    since: integer(d.pgeventsSince, "data-pgevents-since", 0),
    token: d.pgeventsToken || null,
    filter: filter,
    shared: d.pgeventsShared || null, // the signed descriptor the server renders from
    regionId: d.pgeventsShared ? d.pgeventsRegion || null : null,
  };
}

/**
 * What the HTML the server sent with an event means for a shared region:
 *   {skip: true}            nothing to do (a later event of the burst carries the region)
 *   {patch: key, html}      the row's new HTML (html null: the row is gone)
 *   {region: html}          the region's whole inner HTML
 *   null                    nothing was sent for this region: decide and fetch as usual
 */
export function sharedDecision(region, msg) {
  const entry = region.regionId && msg.html ? msg.html[region.regionId] : undefined;
  if (!entry || typeof entry !== "object") return null;
  if (entry.op === "skip") return { skip: true };
  if (entry.op === "row" && entry.key !== undefined) return { patch: String(entry.key), html: entry.html === undefined ? null : entry.html };
  if (entry.op === "region" && typeof entry.html === "string") return { region: entry.html };
  return null;
}

/**
 * Whether `msg` (an event or leave) is new to subscription `sub` ({lastEventId}); records
 * its id when it is. Ids only grow on a channel, so an id at or below the last one seen is a
 * duplicate (a replay overlapping live delivery, a resumed page): dropped, each event once.
 */
export function accept(sub, msg) {
  if (!sub || msg.id === null || msg.id === undefined) return true;
  if (sub.lastEventId !== null && sub.lastEventId !== undefined && msg.id <= sub.lastEventId) return false;
  sub.lastEventId = msg.id;
  return true;
}

/** The shared-region tokens of a subscription, each once, in the order regions asked. */
export function addRegion(list, token) {
  if (token && list.indexOf(token) < 0) list.push(token);
  return list;
}

/** Several regions of one channel rendered at different ids: resume from the oldest. */
export function resumePoint(current, wanted) {
  if (wanted === undefined || wanted === null) return current;
  return current === null || current === undefined ? wanted : Math.min(current, wanted);
}

/** The DOM event suffix of a message: insert | update | delete | truncate | notify | leave. */
export function opName(msg) {
  return msg.type === "leave" ? "leave" : (msg.op || "notify").toLowerCase();
}

/** Numbers numerically, anything else alphabetically: the order of data-pgevents-sort. */
export function compare(a, b) {
  const x = Number(a);
  const y = Number(b);
  if (a !== "" && b !== "" && !isNaN(x) && !isNaN(y)) return x - y;
  return String(a).localeCompare(String(b));
}

/** The row URL for `key`, from a template with {key}. */
export function fill(template, key) {
  return template.split("{key}").join(encodeURIComponent(String(key)));
}

/**
 * Keys of the rows whose declared fields match every field of `row`; null when no row
 * declares those fields (then nothing says which rows are concerned: reload). `rows` is a
 * list of {key, fields} where fields is the row's data-pgevents-fields text (or undefined).
 */
export function matchingRows(rows, row) {
  const keys = [];
  let declared = false;
  for (const r of rows) {
    if (r.fields === undefined) continue;
    let fields;
    try {
      fields = JSON.parse(r.fields);
    } catch (err) {
      return null;
    }
    if (!Object.keys(row).every((f) => f in fields)) continue;
    declared = true;
    if (Object.keys(row).every((f) => String(fields[f]) === String(row[f]))) keys.push(r.key);
  }
  return declared ? keys : null;
}

/**
 * What a region does with one event: {patch: key, op} for a row it can re-render alone,
 * {rows: [keys]} for rows showing a referenced row, or {reload: true}.
 */
export function regionDecision(region, msg, rows) {
  const row = msg.row || msg.old;
  const key = row ? row[region.keyName] : undefined;
  const op = msg.type === "leave" ? "DELETE" : msg.op; // a row leaving a filter leaves the list
  const canPatch = region.rowSrc && op && op !== "TRUNCATE" && row;
  if (canPatch && key !== undefined && key !== null) return { patch: String(key), op: op };
  if (canPatch) {
    const keys = matchingRows(rows, row);
    if (keys) return { rows: keys };
  }
  return { reload: true }; // TRUNCATE, a plain NOTIFY, rows that do not say what they show
}
