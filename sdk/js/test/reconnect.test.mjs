// Reconnects against real `waas dev` processes: recovery with nothing lost or duplicated after
// a network outage, `unrecovered` after a server restart (a new epoch), failover between
// gateway URLs, dead-server detection by client pings, the offline queue and local timeouts.

import assert from "node:assert/strict";
import { test } from "node:test";
import { Backoff, Client, ReconnectFailedError, RejectedError, TimeoutError } from "../dist/index.js";
import { API_KEY, APP, deadUrl, nextEvent, startProxy, startWaas, take, token, within } from "./support.mjs";

const fast = new Backoff({ initialMs: 50, maxMs: 200 });

test("after a network outage the client resubscribes with its position and recovers every missed message once, in order", async () => {
  const server = await startWaas();
  const proxy = await startProxy(server.addr);
  const client = await Client.connect({ url: proxy.url, app: APP, token: await token(server, "r"), backoff: fast });
  const unrecovered = [];
  client.on("unrecovered", (e) => unrecovered.push(e.channel));
  try {
    const sub = await client.subscribe("feed.a");
    const before = [];
    for (let i = 0; i < 3; i++) before.push(await server.rest.publish("feed.a", "n", { i }));
    assert.deepEqual(
      (await take(sub, 3)).map((m) => m.offset),
      before,
    );

    const disconnected = nextEvent(client, "disconnected");
    proxy.cut();
    await disconnected;
    assert.equal(client.state, "reconnecting");
    // Published while the client is away: only the server's history has them.
    const missed = [];
    for (let i = 3; i < 10; i++) missed.push(await server.rest.publish("feed.a", "n", { i }));
    // A publish made offline is held and sent once connected.
    const queued = client.publish("feed.a", "n", { i: 10 });

    const connected = nextEvent(client, "connected");
    proxy.restore();
    await connected;
    const own = await queued;
    const got = await take(sub, 8);
    assert.deepEqual(
      got.map((m) => m.offset),
      [...missed, own],
      "missed messages first, in order, then the queued publish",
    );
    assert.deepEqual(
      got.map((m) => m.data.i),
      [3, 4, 5, 6, 7, 8, 9, 10],
    );
    const live = await server.rest.publish("feed.a", "n", { i: 11 });
    const [next] = await take(sub, 1);
    assert.equal(next.offset, live, "nothing delivered twice");
    assert.deepEqual(unrecovered, []);
  } finally {
    await client.close();
    await proxy.close();
    await server.stop();
  }
});

test("a restarted server (new epoch) reports unrecovered, and the subscription goes on", async () => {
  let server = await startWaas();
  const port = server.port;
  const client = await Client.connect({ url: server.url, app: APP, token: API_KEY, backoff: fast });
  try {
    const sub = await client.subscribe("feed.b");
    await server.rest.publish("feed.b", "n", 1);
    await take(sub, 1);
    const disconnected = nextEvent(client, "disconnected");
    await server.stop();
    assert.equal((await disconnected).code, 1001, "SIGTERM closes with going away");
    const unrecovered = nextEvent(client, "unrecovered", (e) => e.channel === "feed.b");
    server = await startWaas({ port });
    await unrecovered;
    const offset = await server.rest.publish("feed.b", "n", 2);
    const [m] = await take(sub, 1);
    assert.deepEqual([m.offset, m.data], [offset, 2]);
  } finally {
    await client.close();
    await server.stop();
  }
});

test("failover: the first connect skips a dead URL, reconnects rotate to the next gateway", async () => {
  const a = await startWaas();
  const b = await startWaas();
  const dead = await deadUrl();
  try {
    const first = await Client.connect({ urls: [dead, b.url], app: APP, token: API_KEY, backoff: fast });
    assert.ok(first.url.includes(b.addr));
    await first.close();

    const client = await Client.connect({ urls: [a.url, b.url], app: APP, token: API_KEY, backoff: fast });
    assert.ok(client.url.includes(a.addr));
    const sub = await client.subscribe("feed.c");
    const connected = nextEvent(client, "connected");
    await a.stop();
    const event = await connected;
    assert.ok(event.url.includes(b.addr), `reconnected to ${event.url}`);
    const offset = await b.rest.publish("feed.c", "n", "from b");
    const [m] = await take(sub, 1);
    assert.deepEqual([m.offset, m.data], [offset, "from b"]);
    await client.close();
  } finally {
    await a.stop();
    await b.stop();
  }
});

test("a server that stops answering is detected by client pings and replaced", async () => {
  const server = await startWaas();
  const proxy = await startProxy(server.addr);
  const client = await Client.connect({
    url: proxy.url,
    app: APP,
    token: API_KEY,
    backoff: fast,
    pingIntervalMs: 200,
    pingTimeoutMs: 300,
  });
  try {
    const sub = await client.subscribe("feed.d");
    const disconnected = nextEvent(client, "disconnected");
    const connected = nextEvent(client, "connected");
    proxy.freeze();
    const lost = await disconnected;
    assert.match(lost.reason, /no pong/);
    await connected;
    const offset = await server.rest.publish("feed.d", "n", 1);
    const [m] = await take(sub, 1);
    assert.equal(m.offset, offset);
  } finally {
    await client.close();
    await proxy.close();
    await server.stop();
  }
});

test("calls made while the server is unreachable time out locally; close() ends everything", async () => {
  const server = await startWaas();
  const proxy = await startProxy(server.addr);
  const client = await Client.connect({ url: proxy.url, app: APP, token: API_KEY, backoff: fast, requestTimeoutMs: 300 });
  try {
    const sub = await client.subscribe("feed.e");
    const disconnected = nextEvent(client, "disconnected");
    proxy.cut();
    await disconnected;
    await assert.rejects(client.subscribe("feed.f"), (e) => e instanceof TimeoutError && e.operation === "subscribe");
    await assert.rejects(client.history("feed.e"), (e) => e.kind === "disconnected");
    const closed = nextEvent(client, "closed");
    await client.close();
    assert.equal((await closed).error, undefined);
    assert.equal((await sub.next()).done, true);
  } finally {
    await proxy.close();
    await server.stop();
  }
});

test("with a token provider, an expired token (4501) is replaced and the subscription goes on", async () => {
  const server = await startWaas();
  let minted = 0;
  const client = await Client.connect({
    url: server.url,
    app: APP,
    backoff: fast,
    tokenProvider: async () => {
      minted++;
      return token(server, "renewing", { subscribe: [">"], publish: [">"] }, { ttl: minted === 1 ? 1 : 3600 });
    },
  });
  try {
    const sub = await client.subscribe("feed.g");
    const lost = await nextEvent(client, "disconnected");
    assert.equal(lost.code, 4501, "the server closes at exp");
    await nextEvent(client, "connected");
    assert.equal(minted, 2, "a fresh token for the reconnect");
    const offset = await server.rest.publish("feed.g", "n", 1);
    const [m] = await take(sub, 1);
    assert.equal(m.offset, offset);
  } finally {
    await client.close();
    await server.stop();
  }
});

test("maxReconnectAttempts gives up with ReconnectFailedError; publishes beyond the rate are rate_limited", async () => {
  const server = await startWaas({ args: ["--publish-rate", "1", "--publish-burst", "2"] });
  const proxy = await startProxy(server.addr);
  const client = await Client.connect({ url: proxy.url, app: APP, token: API_KEY, backoff: fast, maxReconnectAttempts: 2 });
  try {
    const results = await Promise.allSettled([1, 2, 3, 4].map((i) => client.publish("feed.h", "n", i)));
    const refused = results.filter((r) => r.status === "rejected");
    assert.ok(refused.length >= 1, "beyond the burst");
    for (const r of refused) assert.ok(r.reason instanceof RejectedError && r.reason.code === "rate_limited", String(r.reason));

    const closed = nextEvent(client, "closed");
    proxy.cut();
    const { error } = await closed;
    assert.ok(error instanceof ReconnectFailedError, String(error));
    assert.equal(error.attempts, 2);
    assert.equal(client.state, "closed");
    await assert.rejects(client.publish("feed.h", "n", 5), ReconnectFailedError);
  } finally {
    await client.close();
    await proxy.close();
    await server.stop();
  }
});

test("2,000 numbered messages published steadily through three outages arrive all, in order, once", async () => {
  const server = await startWaas({ args: ["--history-size", "5000"] });
  const proxy = await startProxy(server.addr);
  const client = await Client.connect({ url: proxy.url, app: APP, token: API_KEY, backoff: fast });
  const unrecovered = [];
  client.on("unrecovered", (e) => unrecovered.push(e));
  let reconnects = 0;
  client.on("connected", () => reconnects++);
  try {
    const sub = await client.subscribe("feed.steady");
    const N = 2000;
    const received = [];
    const all = (async () => {
      for await (const m of sub) {
        received.push(m.data.n);
        if (received.length === N) return;
      }
    })();
    for (let n = 1; n <= N; n++) {
      if (n % 500 === 0 && n < N) {
        const lost = nextEvent(client, "disconnected");
        proxy.cut();
        await lost;
      }
      // Publishing goes on while the subscriber is away; it comes back 50 messages later.
      if (n > 500 && n % 500 === 50) {
        const back = nextEvent(client, "connected");
        proxy.restore();
        await back;
      }
      await server.rest.publish("feed.steady", "n", { n });
    }
    await within(all, 20_000, "every message");
    assert.equal(received.length, N);
    assert.deepEqual(received, Array.from({ length: N }, (_, i) => i + 1), "all, in order, no duplicates");
    assert.deepEqual(unrecovered, []);
    assert.equal(reconnects, 3);
  } finally {
    await client.close();
    await proxy.close();
    await server.stop();
  }
});
