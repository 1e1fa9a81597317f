// Unit tests: the backoff, the reconnect policy, and the client driven by a
// fake WebSocket (no network).
import { test } from "node:test";
import assert from "node:assert/strict";
import { backoffDelay, reconnectPlan, WsedgeClient, WsedgeError } from "../index.js";
import { waitFor, nextEvent } from "./helpers.js";

test("backoffDelay: full jitter within [0, min(cap, base*2^n)]", () => {
  for (let n = 0; n < 40; n++) {
    const ceiling = Math.min(20_000, 500 * 2 ** n);
    assert.equal(backoffDelay(n, 500, 20_000, () => 0), 0);
    assert.ok(Math.abs(backoffDelay(n, 500, 20_000, () => 0.999999) - ceiling) < 0.1, `n=${n}`);
    for (let i = 0; i < 50; i++) {
      const d = backoffDelay(n);
      assert.ok(d >= 0 && d <= ceiling, `n=${n} d=${d}`);
    }
  }
  assert.equal(backoffDelay(3, 100, 10_000, () => 0.5), 400);
  assert.equal(backoffDelay(1e6, 100, 10_000, () => 0.5), 5_000); // no overflow to NaN
});

test("reconnectPlan: 4000 and 4001 stop; 4003 fetches a token; a hint wins over the backoff", () => {
  const r = () => 0.5;
  assert.equal(reconnectPlan({ code: 4000, attempt: 0, random: r }).reconnect, false);
  assert.equal(reconnectPlan({ code: 4001, attempt: 3, random: r }).reconnect, false);
  assert.equal(reconnectPlan({ code: 4001, attempt: 0, hintMs: 100, random: r }).reconnect, false);

  assert.deepEqual(reconnectPlan({ code: 4003, attempt: 0, random: r }), { reconnect: true, delay: 0, tokenReason: "expired" });
  assert.deepEqual(reconnectPlan({ code: 4003, attempt: 2, random: r }), { reconnect: true, delay: 1000, tokenReason: "expired" });

  assert.deepEqual(reconnectPlan({ code: 1012, attempt: 5, hintMs: 3000, hintJitter: 1000, random: r }),
    { reconnect: true, delay: 3500, tokenReason: "reconnect" });
  assert.deepEqual(reconnectPlan({ code: 1006, attempt: 1, random: r }), { reconnect: true, delay: 500, tokenReason: "reconnect" });
  assert.deepEqual(reconnectPlan({ code: 1001, attempt: 10, random: r }), { reconnect: true, delay: 10_000, tokenReason: "reconnect" });
});

// FakeWS stands in for a WebSocket; the test plays the server.
function fakeWebSocket() {
  const sockets = [];
  class FakeWS {
    constructor(url) {
      this.url = new URL(url);
      this.readyState = 0;
      this.sent = [];
      this.closedWith = null;
      sockets.push(this);
    }
    send(s) { this.sent.push(JSON.parse(s)); }
    close(code, reason) { this.closedWith = { code, reason }; this.readyState = 3; }
    // server side
    open() { this.readyState = 1; this.onopen?.({}); }
    recv(obj) { this.onmessage?.({ data: JSON.stringify(obj) }); }
    serverClose(code, reason = "") { this.readyState = 3; this.onclose?.({ code, reason }); }
    last() { return this.sent[this.sent.length - 1]; }
  }
  return { FakeWS, sockets };
}

function client(FakeWS, extra = {}) {
  return new WsedgeClient({ url: "ws://edge.test/ws", user: "alice", WebSocket: FakeWS, pingInterval: 0,
    backoffBase: 10, backoffCap: 40, random: () => 0.5, ...extra });
}

test("requests resolve with the ack and reject with the server's code", async () => {
  const { FakeWS, sockets } = fakeWebSocket();
  const c = client(FakeWS);
  const connected = c.connect();
  await waitFor(() => sockets.length === 1);
  assert.equal(sockets[0].url.searchParams.get("user"), "alice");
  sockets[0].open();
  await connected;
  const pub = c.publish("r", 1);
  const req = sockets[0].last();
  assert.deepEqual({ ...req, id: undefined }, { type: "publish", room: "r", data: 1, id: undefined });
  sockets[0].recv({ type: "error", id: req.id, code: "not_member", message: "join first" });
  await assert.rejects(pub, (err) => err instanceof WsedgeError && err.code === "not_member");

  const timed = c.send("bob", "x", { timeout: 20 });
  await assert.rejects(timed, { code: "timeout" });
  c.close();
  await assert.rejects(c.send("bob", "x"), { code: "offline" });
});

test("4000 and 4001 end the client: no new socket", async () => {
  for (const code of [4000, 4001]) {
    const { FakeWS, sockets } = fakeWebSocket();
    const c = client(FakeWS);
    const connected = c.connect();
    await waitFor(() => sockets.length === 1);
    sockets[0].open();
    await connected;
    const closed = nextEvent(c, "close");
    sockets[0].serverClose(code, code === 4000 ? "replaced" : "kicked");
    assert.deepEqual(await closed, { code, reason: code === 4000 ? "replaced" : "kicked", reconnect: false });
    assert.equal(c.state, "closed");
    // The backoff here is at most 40 ms: after 200 ms a reconnect would show.
    await new Promise((r) => setTimeout(r, 200));
    assert.equal(sockets.length, 1, `close ${code} must not reconnect`);
  }
});

test("1012 after a reconnect hint waits after_ms, not the backoff", async () => {
  const { FakeWS, sockets } = fakeWebSocket();
  const c = client(FakeWS, { hintJitter: 0 });
  const connected = c.connect();
  await waitFor(() => sockets.length === 1);
  sockets[0].open();
  await connected;
  const reconnecting = nextEvent(c, "reconnecting");
  sockets[0].recv({ type: "reconnect", after_ms: 300 });
  const closedAt = Date.now();
  sockets[0].serverClose(1012, "service restart");
  assert.equal((await reconnecting).delay, 300);
  await waitFor(() => sockets.length === 2, 2000);
  assert.ok(Date.now() - closedAt >= 290, `reconnected after ${Date.now() - closedAt} ms`);
  sockets[1].open();
  // Without a hint the next close uses the backoff again.
  const again = nextEvent(c, "reconnecting");
  sockets[1].serverClose(1012, "service restart");
  assert.ok((await again).delay <= 10);
  c.close();
});

test("4003 asks the token callback for a fresh token and reconnects with it", async () => {
  const { FakeWS, sockets } = fakeWebSocket();
  const reasons = [];
  let n = 0;
  const c = client(FakeWS, { token: async ({ reason }) => { reasons.push(reason); return "tok" + ++n; } });
  const connected = c.connect();
  await waitFor(() => sockets.length === 1);
  assert.equal(sockets[0].url.searchParams.get("token"), "tok1");
  assert.equal(sockets[0].url.searchParams.get("user"), null);
  sockets[0].open();
  await connected;
  sockets[0].serverClose(4003, "token expired");
  await waitFor(() => sockets.length === 2);
  assert.equal(sockets[1].url.searchParams.get("token"), "tok2");
  assert.deepEqual(reasons, ["connect", "expired"]);

  // refresh() without an argument asks the callback and sends it.
  sockets[1].open();
  const refreshed = c.refresh();
  await waitFor(() => sockets[1].sent.length === 1);
  assert.deepEqual({ ...sockets[1].last(), id: 0 }, { type: "refresh", token: "tok3", id: 0 });
  sockets[1].recv({ type: "error", id: sockets[1].last().id, code: "bad_token", message: "expired" });
  await assert.rejects(refreshed, { code: "bad_token" });
  c.close();
});

test("the ping watchdog drops a silent connection and reconnects", async () => {
  const { FakeWS, sockets } = fakeWebSocket();
  const c = client(FakeWS, { pingInterval: 30, pingTimeout: 30 });
  const connected = c.connect();
  await waitFor(() => sockets.length === 1);
  sockets[0].open();
  await connected;
  // Answered pings keep it.
  for (let i = 0; i < 3; i++) {
    await waitFor(() => sockets[0].sent.length > i);
    assert.equal(sockets[0].sent[i].type, "ping");
    sockets[0].recv({ type: "pong", id: sockets[0].sent[i].id });
  }
  assert.equal(sockets.length, 1);
  // Then the link goes silent.
  const closed = nextEvent(c, "close");
  assert.deepEqual(await closed, { code: 4100, reason: "ping timeout", reconnect: true });
  assert.deepEqual(sockets[0].closedWith, { code: 4100, reason: "ping timeout" });
  await waitFor(() => sockets.length === 2);
  c.close();
});

test("pingTimeout 0 turns the heartbeat off: no ping, no watchdog", async () => {
  const { FakeWS, sockets } = fakeWebSocket();
  const c = client(FakeWS, { pingInterval: 20, pingTimeout: 0 });
  const connected = c.connect();
  await waitFor(() => sockets.length === 1);
  sockets[0].open();
  await connected;
  // Ten ping periods of silence: with a watchdog of 0 the old client sent
  // a ping at 20 ms and dropped the link at once.
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(sockets[0].sent.length, 0);
  assert.equal(sockets[0].closedWith, null);
  assert.equal(sockets.length, 1);
  c.close();
});

test("rejoin after a reconnect: plain without history, since + recovered/gap with offsets", async () => {
  const { FakeWS, sockets } = fakeWebSocket();
  const c = client(FakeWS);
  const events = [];
  for (const e of ["rejoined", "recovered", "gap"]) c.on(e, ({ room }) => events.push(`${e}:${room}`));
  const connected = c.connect();
  await waitFor(() => sockets.length === 1);
  const s0 = sockets[0];
  s0.open();
  await connected;

  const j1 = c.join("plain");
  s0.recv({ type: "ack", id: s0.last().id });
  await j1;
  const j2 = c.join("hist");
  s0.recv({ type: "ack", id: s0.last().id, offset: 7, epoch: "e1" });
  await j2;
  const j3 = c.join("lost");
  s0.recv({ type: "ack", id: s0.last().id, offset: 0, epoch: "e9" });
  await j3;
  s0.recv({ type: "message", from: "bob", room: "hist", data: "x", offset: 8 });
  s0.recv({ type: "message", room: "hist", data: "y", offset: 9, epoch: "e2" });
  assert.deepEqual(c.rooms, ["plain", "hist", "lost"]);

  s0.serverClose(1006);
  await waitFor(() => sockets.length === 2);
  const s1 = sockets[1];
  const opened = nextEvent(c, "open");
  s1.open();
  await waitFor(() => s1.sent.length === 1);
  assert.deepEqual({ ...s1.last(), id: 0 }, { type: "join", room: "plain", id: 0 });
  s1.recv({ type: "ack", id: s1.last().id });
  await waitFor(() => s1.sent.length === 2);
  assert.deepEqual({ ...s1.last(), id: 0 }, { type: "join", room: "hist", since: { offset: 9, epoch: "e2" }, id: 0 });
  s1.recv({ type: "ack", id: s1.last().id, offset: 9, epoch: "e2", recovered: true });
  await waitFor(() => s1.sent.length === 3);
  assert.deepEqual({ ...s1.last(), id: 0 }, { type: "join", room: "lost", since: { offset: 0, epoch: "e9" }, id: 0 });
  s1.recv({ type: "ack", id: s1.last().id, offset: 40, epoch: "e10", recovered: false });
  assert.deepEqual(await opened, { reconnect: true });
  assert.deepEqual(events, ["rejoined:plain", "rejoined:hist", "recovered:hist", "rejoined:lost", "gap:lost"]);

  // leave() forgets the room: the next reconnect does not rejoin it.
  const l = c.leave("hist");
  s1.recv({ type: "ack", id: s1.last().id });
  await l;
  assert.deepEqual(c.rooms, ["plain", "lost"]);
  c.close();
});

test("a rate_limited rejoin is retried; a refused one drops the room and reports it", { timeout: 10_000 }, async () => {
  const { FakeWS, sockets } = fakeWebSocket();
  const c = client(FakeWS);
  const errors = [];
  c.on("error", (err) => errors.push(err));
  const connected = c.connect();
  await waitFor(() => sockets.length === 1);
  sockets[0].open();
  await connected;
  for (const room of ["a", "b"]) {
    const j = c.join(room);
    sockets[0].recv({ type: "ack", id: sockets[0].last().id });
    await j;
  }
  sockets[0].serverClose(1006);
  await waitFor(() => sockets.length === 2);
  const s1 = sockets[1];
  const opened = nextEvent(c, "open");
  s1.open();
  await waitFor(() => s1.sent.length === 1);
  s1.recv({ type: "error", id: s1.last().id, code: "rate_limited", message: "slow down" });
  await waitFor(() => s1.sent.length === 2, 3000);
  assert.equal(s1.last().room, "a");
  s1.recv({ type: "ack", id: s1.last().id });
  await waitFor(() => s1.sent.length === 3);
  assert.equal(s1.last().room, "b");
  s1.recv({ type: "error", id: s1.last().id, code: "too_many_rooms", message: "full" });
  await opened;
  assert.deepEqual(c.rooms, ["a"]);
  assert.deepEqual(errors.map((e) => [e.code, e.room]), [["too_many_rooms", "b"]]);
  c.close();
});
