// Laravel Echo (broadcaster "pusher") on top of pusher-js against `waas dev`: public, private
// and presence channels with Echo's own API, whispers, and events from the server side.

import { test, before, after } from "node:test";
import assert from "node:assert/strict";
import Echo from "laravel-echo";
import Pusher from "pusher-js";
import { startWaas, publish, pusherOptions, APP } from "./support.mjs";

let server;
before(async () => {
  server = await startWaas();
});
after(async () => {
  await server?.stop();
});

function echo(user) {
  const client = new Pusher(APP, pusherOptions(server, { user }));
  return new Echo({ broadcaster: "pusher", key: APP, client });
}

/** Resolves when `register(cb)` calls back, or fails after 10 s. */
function called(register) {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error("no callback within 10 s")), 10_000);
    register((...args) => {
      clearTimeout(t);
      resolve(args);
    });
  });
}

test("Echo listens on public and private channels to events the server broadcasts", async () => {
  const e = echo({ user_id: "1", user_info: { name: "One" } });
  try {
    await called((cb) => e.channel("orders").subscribed(cb));
    const [order] = await Promise.all([
      called((cb) => e.channel("orders").listen(".OrderShipped", cb)),
      publish(server, "orders", "OrderShipped", { id: 7 }),
    ]);
    assert.deepEqual(order[0], { id: 7 });
    const priv = e.private("user.1");
    await called((cb) => priv.subscribed(cb));
    // Laravel's namespaced event names, as Laravel broadcasts them.
    const [got] = await Promise.all([
      called((cb) => priv.listen("InvoicePaid", cb)),
      publish(server, "private-user.1", "App\\Events\\InvoicePaid", { amount: 10 }),
    ]);
    assert.deepEqual(got[0], { amount: 10 });
  } finally {
    e.disconnect();
  }
});

test("Echo presence: here, joining, whispers and leaving", async () => {
  const a = echo({ user_id: "10", user_info: { name: "Ann" } });
  const b = echo({ user_id: "20", user_info: { name: "Ben" } });
  try {
    const roomA = a.join("room.1");
    const [here] = await called((cb) => roomA.here(cb));
    assert.deepEqual(here, [{ name: "Ann" }]);
    const joining = called((cb) => roomA.joining(cb));
    const roomB = b.join("room.1");
    const [hereB] = await called((cb) => roomB.here(cb));
    assert.equal(hereB.length, 2);
    assert.deepEqual((await joining)[0], { name: "Ben" });
    const whisper = called((cb) => roomA.listenForWhisper("typing", cb));
    roomB.whisper("typing", { name: "Ben" });
    assert.deepEqual((await whisper)[0], { name: "Ben" });
    const leaving = called((cb) => roomA.leaving(cb));
    b.leave("room.1");
    assert.deepEqual((await leaving)[0], { name: "Ben" });
  } finally {
    a.disconnect();
    b.disconnect();
  }
});
