// The client's connection handling (pgevents/static/pgevents/client.js) against a scripted
// WebSocket, run by `node --test`: what it does on each close code the server sends.
import assert from "node:assert/strict";
import { afterEach, beforeEach, mock, test } from "node:test";

/** A WebSocket the test drives: records what the client sends, closes with a given code. */
class FakeSocket {
  static OPEN = 1;
  static opened = [];
  constructor(url) {
    this.url = url;
    this.readyState = 0;
    this.sent = [];
    FakeSocket.opened.push(this);
  }
  send(text) {
    this.sent.push(JSON.parse(text));
  }
  close() {
    this.readyState = 3;
  }
  // -- the server's side --
  open() {
    this.readyState = FakeSocket.OPEN;
    this.onopen();
  }
  say(msg) {
    this.onmessage({ data: JSON.stringify(msg) });
  }
  end(code) {
    this.readyState = 3;
    if (this.onclose) this.onclose({ code }); // null once the client closed it itself
  }
}

const seen = []; // DOM events the client dispatched: [name, detail]
const indicator = { dataset: {}, textContent: "" };
globalThis.WebSocket = FakeSocket;
globalThis.location = new URL("http://page.test/people/");
Object.defineProperty(globalThis, "navigator", { value: { onLine: true }, configurable: true });
globalThis.window = { addEventListener() {} };
globalThis.document = {
  body: { dispatchEvent: (e) => seen.push([e.type, e.detail]) },
  querySelectorAll: () => [indicator],
};
const errors = [];
console.error = (text) => errors.push(text);

const { Client } = await import("../../pgevents/static/pgevents/client.js");

beforeEach(() => {
  FakeSocket.opened = [];
  seen.length = 0;
  errors.length = 0;
  mock.timers.enable({ apis: ["setTimeout"] });
});
afterEach(() => mock.timers.reset());

function live(channels) {
  const client = new Client({});
  for (const c of channels) client.subscribe(c);
  const socket = FakeSocket.opened.at(-1);
  socket.open();
  for (const c of channels) socket.say({ type: "subscribed", channel: c, last_event_id: 10 });
  assert.equal(client.state, "live");
  return [client, socket];
}

function subscribes(socket) {
  return socket.sent.filter((m) => m.type === "subscribe");
}

test("4401: the session ended; the page is told and nothing reconnects", () => {
  const [client, socket] = live(["people"]);
  socket.end(4401);
  assert.equal(client.state, "ended");
  assert.equal(indicator.dataset.state, "ended");
  assert.ok(seen.some(([name]) => name === "pgevents:ended"));
  mock.timers.tick(60_000);
  assert.equal(FakeSocket.opened.length, 1); // never back as an anonymous visitor
  client.subscribe("other");
  assert.equal(FakeSocket.opened.length, 1);
});

test("error session_ended (as SSE sends it) ends the client the same way", () => {
  const [client, socket] = live(["people"]);
  socket.say({ type: "error", code: "session_ended", message: "the session has ended; log in again" });
  assert.equal(client.state, "ended");
  socket.end(4401);
  mock.timers.tick(60_000);
  assert.equal(FakeSocket.opened.length, 1);
});

test("4403/4404: the refused subscription is reported and not retried; the others resume", () => {
  for (const [code, error] of [
    [4403, "forbidden"],
    [4404, "unknown_channel"],
  ]) {
    FakeSocket.opened = [];
    const [client, socket] = live(["people"]);
    client.subscribe("secret");
    socket.say({ type: "error", code: error, channel: "secret", message: "no" });
    assert.equal(client.state, "refused");
    socket.end(code);
    mock.timers.tick(10_000);
    const again = FakeSocket.opened.at(-1);
    assert.notEqual(again, socket);
    again.open();
    assert.deepEqual(
      subscribes(again).map((m) => m.channel),
      ["people"],
    );
    assert.ok(errors.some((e) => e.includes('subscription to "secret" refused (' + error + ")")));
    assert.ok(seen.some(([name, d]) => name === "pgevents:refused" && d.channel === "secret"));
    client.close();
  }
});

test("a refusing close with nothing else to follow stops retrying altogether", () => {
  const client = new Client({});
  client.subscribe("secret");
  const socket = FakeSocket.opened[0];
  socket.open();
  socket.end(4403); // no error frame named it: every pending subscription was refused
  assert.equal(client.state, "refused");
  mock.timers.tick(60_000);
  assert.equal(FakeSocket.opened.length, 1);
});

test("4429: reconnects only after a longer pause", () => {
  const [client, socket] = live(["people"]);
  socket.end(4429);
  mock.timers.tick(2_000);
  assert.equal(FakeSocket.opened.length, 1); // a plain failure would be back within 250 ms
  mock.timers.tick(3_000);
  assert.equal(FakeSocket.opened.length, 2);
  client.close();
});

test("4408: back at once, resuming from the last id seen", () => {
  const [client, socket] = live(["people"]);
  socket.say({ type: "event", channel: "people", id: 11, op: "INSERT", row: { pk: 1 } });
  socket.say({ type: "event", channel: "people", id: 12, op: "INSERT", row: { pk: 2 } });
  socket.end(4408);
  mock.timers.tick(250);
  const again = FakeSocket.opened.at(-1);
  assert.notEqual(again, socket);
  again.open();
  assert.deepEqual(subscribes(again), [{ type: "subscribe", channel: "people", last_event_id: 12 }]);
  again.say({ type: "event", channel: "people", id: 12, op: "INSERT", row: { pk: 2 } }); // replayed twice
  again.say({ type: "event", channel: "people", id: 13, op: "INSERT", row: { pk: 3 } });
  const ids = seen.filter(([name]) => name === "pgevents:people").map(([, d]) => d.id);
  assert.deepEqual(ids, [11, 12, 13]);
  client.close();
});

test("a dropped connection retries with growing delays and resumes every channel", () => {
  const [client, socket] = live(["people", "books"]);
  socket.end(1006);
  assert.equal(client.state, "reconnecting");
  mock.timers.tick(250);
  const second = FakeSocket.opened.at(-1);
  second.end(1006); // the server is still away
  mock.timers.tick(250);
  assert.equal(FakeSocket.opened.at(-1), second); // the second delay is longer
  mock.timers.tick(250);
  const third = FakeSocket.opened.at(-1);
  assert.notEqual(third, second);
  third.open();
  assert.deepEqual(
    subscribes(third).map((m) => [m.channel, m.last_event_id]),
    [
      ["people", 10],
      ["books", 10],
    ],
  );
  client.close();
});
