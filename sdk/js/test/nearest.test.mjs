// The `nearest` option (`docs/regions.md`) against a real cluster (control-plane on PostgreSQL,
// two gateways over NATS with history in JetStream), each gateway reached through a proxy that
// delays its packets like a link to another region: the client picks the nearer one although it
// is listed second, fails over to the farther when the nearer goes away, and moves back once it
// returns, with every message of a steady stream delivered once, in order.

import assert from "node:assert/strict";
import net from "node:net";
import { test } from "node:test";
import { Backoff, Client, RejectedError, ServerClient } from "../dist/index.js";
import { startCluster } from "./cluster.mjs";
import { nextEvent, within } from "./support.mjs";

/** A TCP proxy to `target` delaying each direction by `delayMs`; `cut()` drops and refuses. */
async function startDelayProxy(target, delayMs) {
  const i = target.lastIndexOf(":");
  const [host, port] = [target.slice(0, i), Number(target.slice(i + 1))];
  const pairs = new Set();
  let down = false;
  const later = (f) => (delayMs > 0 ? setTimeout(f, delayMs) : f());
  const server = net.createServer((client) => {
    if (down) return client.destroy();
    const upstream = net.connect(port, host);
    const pair = { client, upstream };
    pairs.add(pair);
    client.setNoDelay(true);
    upstream.setNoDelay(true);
    client.on("data", (d) => later(() => upstream.destroyed || upstream.write(d)));
    upstream.on("data", (d) => later(() => client.destroyed || client.write(d)));
    const close = () => {
      client.destroy();
      upstream.destroy();
      pairs.delete(pair);
    };
    client.on("error", close).on("close", close);
    upstream.on("error", close).on("close", close);
  });
  await new Promise((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `ws://127.0.0.1:${server.address().port}`,
    cut() {
      down = true;
      for (const p of pairs) {
        p.client.destroy();
        p.upstream.destroy();
      }
      pairs.clear();
    },
    restore() {
      down = false;
    },
    close() {
      this.cut();
      return new Promise((resolve) => server.close(resolve));
    },
  };
}

test("nearest: picks the nearer gateway, fails over, moves back, nothing lost or doubled", async () => {
  const cluster = await startCluster(2);
  const proxies = [];
  // Closed in `finally` too: its re-probe timer would keep the test process alive after a failure.
  let client;
  try {
    const app = await cluster.createApp("tsnearest", { limits: { history_size: 20000 } });
    const [a, b] = cluster.gateways;
    const far = await startDelayProxy(a.addr, 40);
    const near = await startDelayProxy(b.addr, 0);
    proxies.push(far, near);
    client = await Client.connect({
      urls: [far.url, near.url],
      app: app.id,
      token: app.apiKey,
      nearest: true,
      probeSamples: 3,
      reprobeIntervalMs: 200,
      backoff: new Backoff({ initialMs: 20, maxMs: 200 }),
      subscriptionCapacity: 100000,
    });
    const unrecovered = [];
    client.on("unrecovered", (e) => unrecovered.push(e.channel));
    assert.ok(client.url.startsWith(far.url) === false && client.url.startsWith(near.url), `connected to ${client.url}`);
    const sub = await client.subscribe("feed.n");
    const publisher = new ServerClient(a.http, app.id, app.apiKey);

    const received = [];
    let stop = false;
    const publishing = (async () => {
      let n = 0;
      while (!stop) {
        n++;
        await publisher.publish("feed.n", "n", { n });
        await new Promise((r) => setTimeout(r, 2));
      }
      return n;
    })();
    let total;
    const reading = (async () => {
      for await (const m of sub) {
        received.push(m.data.n);
        if (total !== undefined && received.length === total) return;
      }
    })();
    const count = async (n) => {
      while (received.length < n) await new Promise((r) => setTimeout(r, 10));
    };

    await within(count(300), 20_000, "300 messages on the near gateway");
    const onFar = nextEvent(client, "connected", (e) => e.url.startsWith(far.url), 20_000);
    near.cut();
    await onFar;
    const backOnNear = nextEvent(client, "connected", (e) => e.url.startsWith(near.url), 20_000);
    near.restore();
    await backOnNear;
    const after = received.length;
    await within(count(after + 200), 20_000, "messages after moving back");
    stop = true;
    total = await publishing;
    if (received.length < total) await within(reading, 20_000, "every message");
    assert.deepEqual(received.slice(0, total), Array.from({ length: total }, (_, i) => i + 1), "all, in order, once");
    assert.equal(received.length, total, "none twice");
    assert.deepEqual(unrecovered, []);
    assert.ok(client.url.startsWith(near.url));
  } finally {
    await client?.close();
    for (const p of proxies) await p.close();
    await cluster.stop();
  }
});

test("nearest: a token every gateway refuses fails the connect with the server's reason", async () => {
  const cluster = await startCluster(2);
  try {
    const app = await cluster.createApp("tsnearestbad");
    const [a, b] = cluster.gateways;
    await assert.rejects(
      Client.connect({ urls: [a.url, b.url], app: app.id, token: "not-a-jwt", nearest: true }),
      (e) => e instanceof RejectedError && e.code === "invalid_token",
    );
  } finally {
    await cluster.stop();
  }
});
