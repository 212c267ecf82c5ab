// The client's pure decisions (pgevents/static/pgevents/logic.js), run by `node --test`.
import assert from "node:assert/strict";
import { test } from "node:test";

import {
  accept,
  backoffDelay,
  closeAction,
  compare,
  fill,
  matchingRows,
  parseRegion,
  RATE_LIMITED_DELAY,
  RegionConfigError,
  regionDecision,
  resumePoint,
  sseRefusal,
} from "../../pgevents/static/pgevents/logic.js";

test("backoff doubles from 250 ms, caps at 10 s, and is jittered between half and all", () => {
  const low = (n) => backoffDelay(n, {}, () => 0);
  const high = (n) => backoffDelay(n, {}, () => 1);
  assert.deepEqual([1, 2, 3, 4].map(high), [250, 500, 1000, 2000]);
  assert.deepEqual([1, 2, 3, 4].map(low), [125, 250, 500, 1000]);
  assert.equal(high(7), 10000);
  assert.equal(high(30), 10000);
  assert.equal(high(1000), 10000); // no overflow however long it fails
  assert.equal(low(30), 5000);
  for (let i = 0; i < 200; i++) {
    const d = backoffDelay(3);
    assert.ok(d >= 500 && d <= 1000, String(d));
  }
});

test("backoff honours the client's own delays and the rate-limit floor", () => {
  assert.equal(backoffDelay(1, { minDelay: 100, maxDelay: 300 }, () => 1), 100);
  assert.equal(backoffDelay(9, { minDelay: 100, maxDelay: 300 }, () => 1), 300);
  assert.equal(backoffDelay(1, { floor: RATE_LIMITED_DELAY }, () => 0), RATE_LIMITED_DELAY / 2);
  assert.equal(backoffDelay(1, { floor: RATE_LIMITED_DELAY }, () => 1), RATE_LIMITED_DELAY);
});

test("close codes: ended, refused, slow down, resume, retry", () => {
  assert.equal(closeAction(4401), "ended");
  for (const code of [4400, 4403, 4404, 4413]) assert.equal(closeAction(code), "refuse", String(code));
  assert.equal(closeAction(4429), "slow");
  assert.equal(closeAction(4408), "resume");
  for (const code of [1000, 1001, 1006, 1011, 4503]) assert.equal(closeAction(code), "retry", String(code));
});

test("an SSE refusal by status stops retrying; other statuses are passing failures", () => {
  assert.equal(sseRefusal(400), "bad_request");
  assert.equal(sseRefusal(403), "forbidden");
  assert.equal(sseRefusal(404), "unknown_channel");
  for (const status of [500, 502, 503, 504, 429]) assert.equal(sseRefusal(status), null);
});

test("region attributes are read, with defaults", () => {
  const region = parseRegion({
    pgeventsChannel: "people",
    pgeventsRowSrc: "/people/row/{key}/",
    pgeventsKey: "pk",
    pgeventsSince: "42",
    pgeventsFilter: '{"status": "open"}',
  });
  assert.equal(region.channel, "people");
  assert.equal(region.keyName, "pk");
  assert.equal(region.since, 42);
  assert.deepEqual(region.filter, { status: "open" });
  assert.equal(region.delay, 50);
  assert.equal(region.insert, "append");
  const plain = parseRegion({ pgeventsChannel: "c" });
  assert.equal(plain.since, null);
  assert.equal(plain.keyName, "id");
  assert.equal(plain.rowSrc, null);
  assert.equal(plain.filter, null);
});

test("a malformed region attribute is an error naming it", () => {
  const bad = [
    [{}, /data-pgevents-channel is empty/],
    [{ pgeventsChannel: "c", pgeventsFilter: "{oops" }, /data-pgevents-filter is not JSON/],
    [{ pgeventsChannel: "c", pgeventsFilter: "[1]" }, /must be a JSON object/],
    [{ pgeventsChannel: "c", pgeventsSince: "soon" }, /data-pgevents-since must be an integer/],
    [{ pgeventsChannel: "c", pgeventsDebounce: "-5" }, /data-pgevents-debounce must be at least 0/],
    [{ pgeventsChannel: "c", pgeventsInsert: "middle" }, /data-pgevents-insert must be append or prepend/],
    [{ pgeventsChannel: "c", pgeventsRowSrc: "/row/" }, /has no \{key\} placeholder/],
  ];
  for (const [dataset, message] of bad) {
    assert.throws(() => parseRegion(dataset), (err) => err instanceof RegionConfigError && message.test(err.message));
  }
});

test("events are taken once, in id order; events without ids always pass", () => {
  const sub = { lastEventId: null };
  assert.equal(accept(sub, { id: 5 }), true);
  assert.equal(accept(sub, { id: 5 }), false); // a replay overlapping live delivery
  assert.equal(accept(sub, { id: 3 }), false);
  assert.equal(accept(sub, { id: 6 }), true);
  assert.equal(sub.lastEventId, 6);
  assert.equal(accept(sub, { id: null }), true); // a plain NOTIFY of a non-durable channel
  assert.equal(accept(undefined, { id: 1 }), true);
  const taken = [];
  const other = { lastEventId: 10 };
  for (const id of [9, 10, 11, 11, 12, 8, 13]) if (accept(other, { id })) taken.push(id);
  assert.deepEqual(taken, [11, 12, 13]);
});

test("regions rendered at different ids resume from the oldest", () => {
  assert.equal(resumePoint(null, 7), 7);
  assert.equal(resumePoint(7, 3), 3);
  assert.equal(resumePoint(3, 7), 3);
  assert.equal(resumePoint(3, null), 3);
  assert.equal(resumePoint(null, undefined), null);
});

test("region matching: a row patch, the rows showing a referenced row, or a reload", () => {
  const region = { keyName: "pk", rowSrc: "/row/{key}/" };
  assert.deepEqual(regionDecision(region, { op: "INSERT", row: { pk: 4 } }, []), { patch: "4", op: "INSERT" });
  assert.deepEqual(regionDecision(region, { type: "leave", old: { pk: 4 } }, []), { patch: "4", op: "DELETE" });
  assert.deepEqual(regionDecision(region, { op: "TRUNCATE" }, []), { reload: true });
  assert.deepEqual(regionDecision(region, { op: "NOTIFY", row: null }, []), { reload: true });
  assert.deepEqual(regionDecision({ keyName: "pk", rowSrc: null }, { op: "INSERT", row: { pk: 1 } }, []), {
    reload: true,
  });
  const rows = [
    { key: "1", fields: '{"author_id": 7}' },
    { key: "2", fields: '{"author_id": 8}' },
    { key: "3", fields: undefined },
  ];
  assert.deepEqual(regionDecision(region, { op: "UPDATE", row: { author_id: 7 } }, rows), { rows: ["1"] });
  assert.deepEqual(regionDecision(region, { op: "UPDATE", row: { shelf_id: 1 } }, rows), { reload: true });
  assert.equal(matchingRows([{ key: "1", fields: "{bad" }], { a: 1 }), null);
});

test("ordering: numbers numerically, text alphabetically; row URLs are encoded", () => {
  assert.deepEqual(["10", "9", "100"].sort(compare), ["9", "10", "100"]);
  assert.deepEqual(["b", "a", "C"].sort(compare), ["a", "b", "C"]);
  assert.equal(fill("/row/{key}/", "a b/c"), "/row/a%20b%2Fc/");
});

test("shared regions: the HTML the server sent decides, or nothing was sent for this region", async () => {
  const { sharedDecision, addRegion } = await import("../../pgevents/static/pgevents/logic.js");
  const region = parseRegion({ pgeventsChannel: "people", pgeventsShared: "tok", pgeventsRegion: "r1" });
  assert.equal(region.shared, "tok");
  assert.equal(region.regionId, "r1");
  assert.deepEqual(sharedDecision(region, { html: { r1: { op: "row", key: 5, html: "<tr></tr>" } } }), {
    patch: "5",
    html: "<tr></tr>",
  });
  assert.deepEqual(sharedDecision(region, { html: { r1: { op: "row", key: "5", html: null } } }), { patch: "5", html: null });
  assert.deepEqual(sharedDecision(region, { html: { r1: { op: "region", html: "<p>3</p>" } } }), { region: "<p>3</p>" });
  assert.deepEqual(sharedDecision(region, { html: { r1: { op: "skip" } } }), { skip: true });
  assert.equal(sharedDecision(region, { html: { other: { op: "skip" } } }), null); // the server could not render it
  assert.equal(sharedDecision(region, {}), null);
  assert.equal(sharedDecision(parseRegion({ pgeventsChannel: "c" }), { html: { r1: { op: "skip" } } }), null);
  assert.throws(() => parseRegion({ pgeventsChannel: "c", pgeventsShared: "tok" }), /needs data-pgevents-region/);
  assert.deepEqual(addRegion(addRegion(addRegion([], "a"), "b"), "a"), ["a", "b"]);
});
