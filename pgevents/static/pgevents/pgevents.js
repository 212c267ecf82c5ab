/* pgevents.js: live PostgreSQL events in the page. A native ES module: no build step, no
 * dependencies; {% pgevents_script %} includes it as <script type="module">. Its parts:
 * logic.js (pure decisions, tested with `node --test`), client.js (the connection),
 * regions.js (declarative regions). Included twice, it still opens one connection.
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
 *                             | "ended" (the server ended the session: logout, expiry; the
 *                               client stops rather than come back as an anonymous visitor)
 *                             | "refused" (a subscription was refused: detail.refused lists them)
 *                             | "stalled" (connected, but no listener is active or delivery is
 *                               behind: detail.reason = the server's pipeline state)
 *   pgevents:refused          a subscription was refused (detail = the server's error, with
 *                             channel and code); also logged with console.error
 *   pgevents:pipeline         the server says whether a listener feeds it (detail.state =
 *                             "ok" | "stalled" | "no_listener", detail.lag in seconds)
 *   pgevents:ended            the session ended (close code 4401 or error session_ended)
 *   pgevents:error            detail = the server's error message; also dispatched on a region
 *                             whose data-pgevents-* attributes are malformed (code
 *                             "region_config"; the element gets data-pgevents-state="error")
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
 *   data-pgevents-shared="<signed>" data-pgevents-region="r…"  a shared region: the server
 *                                      renders its rows / inner HTML once per change and sends
 *                                      the HTML with the event (msg.html[region id])
 */
import { Client } from "./client.js";
import { Fetcher } from "./fetcher.js";
import { Region } from "./regions.js";

function boot(api) {
  const script = document.querySelector("script[data-pgevents-url]");
  if (!script || api.client) return;
  const d = script.dataset;
  const client = new Client({ url: d.pgeventsUrl, sseUrl: d.pgeventsSseUrl, transport: d.pgeventsTransport });
  api.client = client;
  api.fetcher = new Fetcher(d.pgeventsFragmentsUrl, parseInt(d.pgeventsJitter || "0", 10) || 0);
  document.querySelectorAll("[data-pgevents-channel]").forEach((el) => {
    let region;
    try {
      region = new Region(el, api.fetcher);
    } catch (err) {
      // One malformed region must not keep the others from binding: say which, and where.
      el.dataset.pgeventsState = "error";
      console.error("pgevents: region " + (el.id ? "#" + el.id + " " : "") + "not bound: " + err.message, el);
      el.dispatchEvent(new CustomEvent("pgevents:error", { detail: { code: "region_config", message: err.message }, bubbles: true }));
      return;
    }
    el.dataset.pgeventsState = "bound";
    api.regions.push(region);
    const opts = { lastEventId: region.since };
    if (region.token) opts.token = region.token;
    if (region.filter) opts.filter = region.filter;
    if (region.shared) opts.region = region.shared;
    client.subscribe(region.channel, opts);
  });
  (d.pgeventsChannels || "").split(",").filter(Boolean).forEach((c) => client.subscribe(c));
}

/* A page that includes the script twice (a base template and a page both carry the tag, or
   two URLs of it) gets one client: the second copy finds the first and does nothing. */
if (!window.PgEvents) {
  const api = { Client: Client, Region: Region, client: null, fetcher: null, regions: [], connect: (options) => new Client(options) };
  window.PgEvents = api;
  if (document.readyState === "loading") document.addEventListener("DOMContentLoaded", () => boot(api));
  else boot(api);
}
