// Coalesced, jittered fetching for per-user regions (pgevents/static/pgevents/fetcher.js).
import assert from "node:assert/strict";
import { afterEach, beforeEach, mock, test } from "node:test";

import { Fetcher, MAX_URLS, MIN_WINDOW, outcome } from "../../pgevents/static/pgevents/fetcher.js";

beforeEach(() => mock.timers.enable({ apis: ["setTimeout"] }));
afterEach(() => mock.timers.reset());

/** A server answering fragments requests: every URL 200 with its own path, /gone/ 404. */
function server() {
  const asked = [];
  const fetch = async (url) => {
    asked.push(url);
    const u = new URL(url, "http://page.test");
    if (u.pathname !== "/pgevents/fragments/") {
      return { ok: true, status: u.pathname === "/gone/" ? 404 : 200, text: async () => "<p>" + u.pathname + "</p>" };
    }
    const fragments = u.searchParams.getAll("u").map((p) => ({ url: p, status: p === "/gone/" ? 404 : p === "/bug/" ? 500 : 200, html: "<p>" + p + "</p>" }));
    return { ok: true, status: 200, json: async () => ({ fragments }) };
  };
  return { asked, fetch };
}

async function settle() {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

test("every URL asked for within the window goes in one request", async () => {
  const { asked, fetch } = server();
  const fetcher = new Fetcher("/pgevents/fragments/", 100, { fetch, random: () => 0.5 });
  const results = Promise.all([fetcher.get("/row/1/"), fetcher.get("/row/2/"), fetcher.get("/row/1/"), fetcher.get("/gone/")]);
  mock.timers.tick(MIN_WINDOW + 49);
  assert.equal(asked.length, 0); // still gathering: MIN_WINDOW + 0.5 × 100 ms
  mock.timers.tick(1);
  await settle();
  assert.deepEqual(await results, ["<p>/row/1/</p>", "<p>/row/2/</p>", "<p>/row/1/</p>", null]);
  assert.equal(asked.length, 1);
  assert.equal(asked[0], "/pgevents/fragments/?u=%2Frow%2F1%2F&u=%2Frow%2F2%2F&u=%2Fgone%2F");
});

test("the window is jittered between MIN_WINDOW and MIN_WINDOW + jitter", () => {
  for (const [r, expected] of [[0, MIN_WINDOW], [1, MIN_WINDOW + 250]]) {
    const { asked, fetch } = server();
    const fetcher = new Fetcher("/pgevents/fragments/", 250, { fetch, random: () => r });
    fetcher.get("/a/");
    mock.timers.tick(expected - 1);
    assert.equal(asked.length, 0);
    mock.timers.tick(1);
    assert.equal(asked.length, 1);
  }
});

test("more URLs than one request carries are split; a failing URL fails alone", async () => {
  const { asked, fetch } = server();
  const fetcher = new Fetcher("/pgevents/fragments/", 0, { fetch });
  const urls = Array.from({ length: MAX_URLS + 3 }, (_, i) => "/row/" + i + "/");
  const all = Promise.all(urls.map((u) => fetcher.get(u)));
  const bug = assert.rejects(fetcher.get("/bug/"), /fetch \/bug\/: 500/);
  mock.timers.tick(MIN_WINDOW);
  await settle();
  assert.equal((await all).length, MAX_URLS + 3);
  await bug;
  assert.equal(asked.length, 2);
});

test("without the endpoint each URL is fetched by itself, at once", async () => {
  const { asked, fetch } = server();
  const fetcher = new Fetcher("", 100, { fetch });
  assert.equal(await fetcher.get("/row/1/"), "<p>/row/1/</p>");
  assert.equal(await fetcher.get("/gone/"), null);
  assert.deepEqual(asked, ["/row/1/", "/gone/"]);
});

test("statuses: 2xx is HTML, 404/410 gone, anything else an error", () => {
  assert.equal(outcome("/a/", 200, "x"), "x");
  assert.equal(outcome("/a/", 404, ""), null);
  assert.equal(outcome("/a/", 410, ""), null);
  assert.throws(() => outcome("/a/", 302, ""), /302/);
  assert.throws(() => outcome("/a/", 500, ""), /500/);
});
