// Recovery across gateways in a real cluster (control-plane on PostgreSQL, two gateways over
// NATS with history in JetStream): a subscriber's gateway is killed mid-stream; the SDK moves to
// the other gateway, resubscribes with its position and ends with every message, in order, once
// (issue #7's scenario, from TypeScript).

import assert from "node:assert/strict";
import { test } from "node:test";
import { Backoff, Client, ServerClient } from "../dist/index.js";
import { startCluster } from "./cluster.mjs";
import { nextEvent, within } from "./support.mjs";

test("a killed gateway: the client fails over, recovers from JetStream history, nothing lost or doubled", async () => {
  const cluster = await startCluster(2);
  try {
    const app = await cluster.createApp("tsapp", { limits: { history_size: 5000 } });
    const [a, b] = cluster.gateways;
    const client = await Client.connect({
      urls: [a.url, b.url],
      app: app.id,
      token: app.apiKey,
      backoff: new Backoff({ initialMs: 50, maxMs: 200 }),
    });
    const unrecovered = [];
    client.on("unrecovered", (e) => unrecovered.push(e.channel));
    assert.ok(client.url.includes(a.addr));
    const sub = await client.subscribe("feed.k");
    const publisher = new ServerClient(b.http, app.id, app.apiKey);

    const N = 1000;
    const received = [];
    const all = (async () => {
      for await (const m of sub) {
        received.push(m.data.n);
        if (received.length === N) return;
      }
    })();
    let moved;
    for (let n = 1; n <= N; n++) {
      if (n === 300) {
        moved = nextEvent(client, "connected");
        await a.stop("SIGKILL");
      }
      await publisher.publish("feed.k", "n", { n });
    }
    const event = await moved;
    assert.ok(event.url.includes(b.addr), `moved to ${event.url}`);
    await within(all, 20_000, "every message");
    assert.deepEqual(received, Array.from({ length: N }, (_, i) => i + 1), "all, in order, no duplicates");
    assert.deepEqual(unrecovered, []);
    await client.close();
  } finally {
    await cluster.stop();
  }
});
