// The protocol state, frame by frame, without a socket (as the Rust SDK's session tests).

import assert from "node:assert/strict";
import { test } from "node:test";
import { Deferred } from "../dist/deferred.js";
import { Session } from "../dist/session.js";
import { Subscription } from "../dist/subscription.js";

function setup() {
  const s = new Session(2);
  s.onConnect();
  s.takeNotices();
  return s;
}
const frames = (s) => s.takeOutbox().map((t) => JSON.parse(t));
const msg = (channel, offset) => ({ op: "message", channel, event: "e", data: { n: offset }, ts: 1, offset });
const sub = (channel, id = 1, capacity = 8) => new Subscription(channel, id, capacity, async () => {});
function drain(sub) {
  const out = [];
  for (;;) {
    const m = sub.buffer.shift();
    if (!m) return out;
    out.push(m.offset);
  }
}

test("recovery: since is sent, held and recovered messages are de-duplicated by offset", () => {
  const s = setup();
  const a = sub("c");
  s.subscribe("c", a, new Deferred());
  let [f] = frames(s);
  s.onFrame({ op: "ack", id: f.id, offset: 5, epoch: "E" });
  s.onFrame(msg("c", 6));
  s.onFrame(msg("c", 7));
  assert.deepEqual(drain(a), [6, 7]);

  s.onDisconnect();
  s.onConnect();
  [f] = frames(s);
  assert.deepEqual(f.since, { offset: 7, epoch: "E" }, "resubscribes from the last delivered");
  // The server resends 7 (delivered already) and recovers 8, 9 before the ack.
  s.onFrame(msg("c", 7));
  s.onFrame(msg("c", 8));
  s.onFrame(msg("c", 9));
  assert.deepEqual(drain(a), [], "held until the ack says the epoch");
  s.onFrame({ op: "ack", id: f.id, offset: 9, epoch: "E", recovered: true });
  assert.deepEqual(drain(a), [8, 9]);
  assert.deepEqual(s.takeNotices().map((n) => n.type), ["all_live"]);
  s.onFrame(msg("c", 9));
  s.onFrame(msg("c", 10));
  assert.deepEqual(drain(a), [10]);
});

test("a new epoch starts from nothing and is reported unrecovered", () => {
  const s = setup();
  const a = sub("c");
  s.subscribe("c", a, new Deferred());
  let [f] = frames(s);
  s.onFrame({ op: "ack", id: f.id, offset: 40, epoch: "E1" });
  s.onFrame(msg("c", 41));
  drain(a);
  s.onDisconnect();
  s.onConnect();
  [f] = frames(s);
  s.onFrame(msg("c", 1));
  s.onFrame({ op: "ack", id: f.id, offset: 1, epoch: "E2", recovered: false });
  assert.deepEqual(drain(a), [1], "offset 1 of the new epoch is not a duplicate of 41");
  assert.deepEqual(
    s.takeNotices().map((n) => [n.type, n.channel]),
    [
      ["unrecovered", "c"],
      ["all_live", undefined],
    ],
  );
});

test("publishes in flight fail on disconnect; offline ones queue up to the limit", async () => {
  const s = setup();
  const inFlight = new Deferred();
  s.publish("c", "e", 1, inFlight);
  s.takeOutbox();
  s.onDisconnect();
  await assert.rejects(inFlight.promise, (e) => e.kind === "disconnected");
  const q = [new Deferred(), new Deferred(), new Deferred()];
  for (const d of q) s.publish("c", "e", 1, d);
  await assert.rejects(q[2].promise, (e) => e.kind === "disconnected");
  s.onConnect();
  const out = frames(s);
  assert.deepEqual(
    out.map((f) => f.op),
    ["publish", "publish"],
  );
  s.onFrame({ op: "ack", id: out[0].id, offset: 7 });
  assert.equal(await q[0].promise, 7);
});

test("a refused resubscribe ends the stream and is reported", () => {
  const s = setup();
  const a = sub("c");
  s.subscribe("c", a, new Deferred());
  let [f] = frames(s);
  s.onFrame({ op: "ack", id: f.id });
  s.onDisconnect();
  s.onConnect();
  [f] = frames(s);
  s.onFrame({ op: "error", id: f.id, code: "forbidden", message: "no" });
  const notices = s.takeNotices();
  assert.equal(notices[0].type, "resubscribe_failed");
  assert.equal(notices[0].error.code, "forbidden");
  assert.equal(a.closed, true);
});

test("a full subscription buffer drops the newest and counts", () => {
  const s = setup();
  const a = sub("c", 1, 2);
  s.subscribe("c", a, new Deferred());
  const [f] = frames(s);
  s.onFrame({ op: "ack", id: f.id });
  for (let i = 1; i <= 5; i++) s.onFrame(msg("c", i));
  assert.equal(a.dropped, 3);
  assert.deepEqual(drain(a), [1, 2]);
});

test("heartbeat: one ping at a time, any answer clears it", () => {
  const s = setup();
  s.sendHeartbeat();
  s.sendHeartbeat();
  const out = frames(s);
  assert.equal(out.length, 1);
  assert.ok(s.heartbeatOutstanding());
  s.onFrame({ op: "pong", id: out[0].id });
  assert.ok(!s.heartbeatOutstanding());
});
