// Integration tests against a real wsedge built from this repository.
import { after, before, describe, test } from "node:test";
import assert from "node:assert/strict";
import WebSocket from "ws";
import { WsedgeClient } from "../index.js";
import { nextEvent, waitFor } from "./helpers.js";
import { buildWsedge, startWsedge } from "./server.js";

let build;
before(async () => { build = await buildWsedge(); }, { timeout: 300_000 });
after(() => build?.cleanup());

const clients = new Set();
function client(url, user, extra = {}) {
  const c = new WsedgeClient({ url, user, WebSocket, backoffBase: 20, backoffCap: 200, requestTimeout: 3000, ...extra });
  clients.add(c);
  return c;
}
function closeClients() { for (const c of clients) c.close(); clients.clear(); }

/** Collects a client's messages; until(pred) waits for one matching. */
function inbox(c) {
  const got = [];
  c.on("message", (m) => got.push(m));
  return { got, until: (pred, ms = 5000) => waitFor(() => got.some(pred), ms, "a matching message") };
}

async function adminJSON(srv, method, path) {
  const r = await fetch(srv.admin + path, { method });
  return { status: r.status, body: r.status === 204 ? null : await r.json() };
}

describe("against a running wsedge", { timeout: 60_000 }, () => {
  let srv;
  before(async () => { srv = await startWsedge(build.bin); });
  after(async () => { closeClients(); await srv?.stop(); });

  test("connect, send with ack, message delivered with from", { timeout: 10_000 }, async () => {
    const alice = client(srv.url, "alice");
    const bob = client(srv.url, "bob");
    const bobIn = inbox(bob);
    await Promise.all([alice.connect(), bob.connect()]);
    const ack = await alice.send("bob", { text: "hi" });
    assert.equal(ack.type, "ack");
    await bobIn.until((m) => m.from === "alice");
    assert.deepEqual(bobIn.got[0], { type: "message", from: "alice", data: { text: "hi" } });
    assert.equal((await alice.ping()).type, "pong");
    await assert.rejects(alice.send("nobody", 1), { code: "not_connected" });
  });

  test("join, publish to the room, leave; publish without joining is not_member", { timeout: 10_000 }, async () => {
    const carol = client(srv.url, "carol");
    const dave = client(srv.url, "dave");
    const carolIn = inbox(carol);
    const daveIn = inbox(dave);
    await Promise.all([carol.connect(), dave.connect()]);
    await assert.rejects(carol.publish("room1", "early"), (err) => err.code === "not_member" && err.message.includes("not_member"));
    await carol.join("room1");
    await dave.join("room1");
    await carol.publish("room1", { n: 1 });
    // The sender's own copy is written before its ack.
    assert.ok(carolIn.got.some((m) => m.room === "room1" && m.from === "carol"));
    await daveIn.until((m) => m.room === "room1" && m.data?.n === 1);
    assert.deepEqual((await adminJSON(srv, "GET", "/v1/rooms/room1")).body.users, ["carol", "dave"]);
    await carol.leave("room1");
    assert.deepEqual(carol.rooms, []);
    assert.deepEqual((await adminJSON(srv, "GET", "/v1/rooms/room1")).body.users, ["dave"]);
    await assert.rejects(carol.publish("room1", "gone"), { code: "not_member" });
  });

  test("kicked through the admin API (4001): closed for good, no reconnect", { timeout: 10_000 }, async () => {
    const erin = client(srv.url, "erin");
    await erin.connect();
    let reconnecting = 0;
    erin.on("reconnecting", () => reconnecting++);
    const closed = nextEvent(erin, "close");
    assert.equal((await adminJSON(srv, "DELETE", "/v1/users/erin")).status, 204);
    assert.deepEqual(await closed, { code: 4001, reason: "kicked", reconnect: false });
    assert.equal(erin.state, "closed");
    // With a 20-200 ms backoff a reconnect would have happened by now.
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(reconnecting, 0);
    assert.equal((await adminJSON(srv, "GET", "/v1/users/erin")).status, 404);
  });

  test("replaced by a second connection of the same user (4000): the first stops, the second stays", { timeout: 10_000 }, async () => {
    const first = client(srv.url, "frank");
    await first.connect();
    const closed = nextEvent(first, "close");
    const second = client(srv.url, "frank");
    await second.connect();
    assert.deepEqual(await closed, { code: 4000, reason: "replaced", reconnect: false });
    await assert.rejects(first.connect(), { code: "closed" });
    await new Promise((r) => setTimeout(r, 500));
    assert.equal(second.state, "open");
    assert.equal((await second.ping()).type, "pong");
  });
});

test("reconnects after the server restarts, rejoins its rooms and gets what is published there", { timeout: 30_000 }, async (t) => {
  let srv = await startWsedge(build.bin);
  t.after(async () => { closeClients(); await srv.stop(); });
  const gina = client(srv.url, "gina");
  const ginaIn = inbox(gina);
  await gina.connect();
  await gina.join("lobby");
  await gina.join("news");

  const reopened = nextEvent(gina, "open", 20_000);
  const rejoined = [];
  gina.on("rejoined", ({ room }) => rejoined.push(room));
  await srv.kill();
  srv = await startWsedge(build.bin, { port: srv.port, adminPort: srv.adminPort });
  assert.deepEqual(await reopened, { reconnect: true });
  assert.deepEqual(rejoined, ["lobby", "news"]);
  assert.deepEqual((await adminJSON(srv, "GET", "/v1/users/gina")).body.rooms, ["lobby", "news"]);

  const hank = client(srv.url, "hank");
  await hank.connect();
  await hank.join("lobby");
  await hank.publish("lobby", "after restart");
  await ginaIn.until((m) => m.room === "lobby" && m.from === "hank" && m.data === "after restart");
  const push = await fetch(srv.admin + "/v1/rooms/news/messages", { method: "POST", body: '"pushed"' });
  assert.deepEqual(await push.json(), { delivered: 1 });
  await ginaIn.until((m) => m.room === "news" && m.data === "pushed");
});

test("a 503 at the upgrade (server full) is retried with the backoff until there is room", { timeout: 20_000 }, async (t) => {
  const srv = await startWsedge(build.bin, { args: ["-max-conns", "1"] });
  t.after(async () => { closeClients(); await srv.stop(); });
  const ivy = client(srv.url, "ivy");
  await ivy.connect();
  const jack = client(srv.url, "jack");
  const retries = [];
  jack.on("reconnecting", (ev) => retries.push(ev));
  const jackIn = jack.connect();
  await waitFor(() => retries.length >= 3, 10_000, "three retries");
  assert.equal(jack.state, "connecting");
  for (const [i, r] of retries.entries()) {
    assert.equal(r.code, 1006);
    assert.ok(r.delay >= 0 && r.delay <= Math.min(200, 20 * 2 ** i), `retry ${i} waits ${r.delay}`);
  }
  ivy.close();
  await jackIn;
  assert.equal((await jack.ping()).type, "pong");
});

test("a dropped connection rejoins with since and recovers what was published meanwhile, once, in order", { timeout: 30_000 }, async (t) => {
  const srv = await startWsedge(build.bin);
  t.after(async () => { closeClients(); await srv.stop(); });
  const push = (data) => fetch(srv.admin + "/v1/rooms/rec/messages", { method: "POST", body: JSON.stringify(data) });
  const kim = client(srv.url, "kim");
  const kimIn = inbox(kim);
  await kim.connect();
  const ack = await kim.join("rec");
  assert.equal(ack.offset, 0);
  assert.equal(typeof ack.epoch, "string");
  await push(1);
  await kimIn.until((m) => m.data === 1);
  assert.equal(kimIn.got[0].offset, 1);

  const closed = nextEvent(kim, "close");
  const recovered = nextEvent(kim, "recovered", 20_000);
  kim._ws.terminate(); // the tunnel: no close frame, the client reconnects
  await closed;
  for (const n of [2, 3, 4]) await push(n);
  const { room, ack: rejoin } = await recovered;
  assert.equal(room, "rec");
  assert.equal(rejoin.recovered, true);
  await push(5);
  await kimIn.until((m) => m.data === 5);
  assert.deepEqual(kimIn.got.map((m) => [m.offset, m.data]), [[1, 1], [2, 2], [3, 3], [4, 4], [5, 5]]);

  // A restart is a new epoch: the rejoin says gap.
  const gap = nextEvent(kim, "gap", 20_000);
  await srv.kill();
  const srv2 = await startWsedge(build.bin, { port: srv.port, adminPort: srv.adminPort });
  t.after(() => srv2.stop());
  assert.equal((await gap).ack.recovered, false);
});
